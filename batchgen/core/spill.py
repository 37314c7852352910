"""Spilled buckets: fixed-width NumPy rows appended in any order, kept on local disk in 256 files by the
first byte of their `digest` field, and read back one bucket at a time.

The input scan sees every record's id once (`ledger.FirstOccurrences`); held in memory, 28 bytes a
record would make a 100-million-record job's driver hold 2.8 GB. Spilled, it holds one write buffer and
then one bucket, 1/256 of the rows (11 MB at 100 million). Written by hand because neither tool at hand
fits: Ray Data's `groupby` would shuffle every id through the object store a second time, and pyarrow's
`group_by` works in memory. The digests are BLAKE2b, so the buckets are even.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BUCKETS = 256
BUFFER_ROWS = 1 << 18  # rows held before they are written out: 7 MB of 28-byte rows


class SpilledBuckets:
    """Rows of `dtype` (a structured dtype whose first field, `digest`, is bytes: `V16`), spilled to a
    temporary folder that lives as long as this object (or until `close`)."""

    def __init__(self, dtype: np.dtype, buffer_rows: int = BUFFER_ROWS):
        self.dtype = np.dtype(dtype)
        self._folder = tempfile.TemporaryDirectory(prefix="batchgen-spill-")
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._buffer_rows = buffer_rows
        self.rows = 0

    def add(self, rows: np.ndarray) -> None:
        self._pending.append(rows.astype(self.dtype, copy=False))
        self._pending_rows += len(rows)
        self.rows += len(rows)
        if self._pending_rows >= self._buffer_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        rows = np.concatenate(self._pending)
        self._pending, self._pending_rows = [], 0
        first_byte = rows.view(np.uint8).reshape(len(rows), -1)[:, self.dtype.fields["digest"][1]]
        order = np.argsort(first_byte, kind="stable")
        rows, first_byte = rows[order], first_byte[order]
        bounds = np.searchsorted(first_byte, np.arange(BUCKETS + 1))
        for bucket in np.flatnonzero(np.diff(bounds)):
            with open(self._path(bucket), "ab") as out:
                rows[bounds[bucket]:bounds[bucket + 1]].tofile(out)

    def _path(self, bucket: int) -> Path:
        return Path(self._folder.name) / f"{bucket:03d}"

    def buckets(self) -> Iterator[np.ndarray]:
        """Each bucket's rows (one array at a time, in no particular order within it); empty ones too,
        so two spills of the same digests can be walked side by side."""
        self._flush()
        for bucket in range(BUCKETS):
            path = self._path(bucket)
            yield np.fromfile(path, dtype=self.dtype) if path.exists() else np.empty(0, self.dtype)

    def close(self) -> None:
        self._folder.cleanup()
