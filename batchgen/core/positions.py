"""Record positions: every input record's place as one integer, and sets of records as bitmaps of them.

The job keeps per-record state in two places whose size would otherwise grow with the input: the rows a
pass has handed out (the progress actor, `ledger.HandedOut`) and the records the checkpoint has
committed when a resume starts (`batchgen.cluster.ray_io`'s checkpoint filter). Keyed by id they cost
tens of bytes a record (70 MB a million in a Python set of hashes; Ray's own filter holds the ids as a
NumPy string array); keyed by position, one bit: 12.5 MB for 100 million records, and exact.

A record's position is its file's base (the sum of the earlier files' extents, in the input's file
order) plus its number in the file: its line (JSONL, 1-based, so line 0 of every file is never used) or
row (Parquet, 0-based). A file's extent is its largest number plus one, as the input scan saw it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class Positions:
    """Maps (file, number) to positions 0 .. `size` - 1. `extents`: each input file's largest record
    number plus one, in the input's file order (files with no record may be left out)."""

    def __init__(self, files: Sequence[str], extents: dict[str, int]):
        self.files = list(files)
        sizes = np.array([extents.get(path, 0) for path in self.files], dtype=np.int64)
        self.bases = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else sizes
        self.size = int(sizes.sum())
        self._rank = {path: n for n, path in enumerate(self.files)}

    def of(self, paths: pa.Array | pa.ChunkedArray, numbers: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The positions (int64) of rows given their files' paths and their numbers, aligned."""
        numbers = np.asarray(numbers.to_numpy(zero_copy_only=False) if hasattr(numbers, "to_numpy") else numbers,
                             dtype=np.int64)
        encoded = pc.dictionary_encode(paths)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        ranks = np.array([self._rank[p] for p in encoded.dictionary.to_pylist()], dtype=np.int64)
        return self.bases[ranks[encoded.indices.to_numpy(zero_copy_only=False)]] + numbers

    def of_ranks(self, ranks: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """The positions of rows given their files' ranks in `files` and their numbers."""
        return self.bases[ranks] + numbers


class PositionSet:
    """A set of positions below `size`, one bit each (a NumPy bit array: 125 MB for a billion)."""

    def __init__(self, size: int, bits: np.ndarray | None = None):
        self.size = size
        self.bits = np.zeros((size + 7) // 8, dtype=np.uint8) if bits is None else bits

    def add(self, positions: np.ndarray) -> None:
        positions = np.asarray(positions, dtype=np.int64)
        np.bitwise_or.at(self.bits, positions >> 3, (1 << (positions & 7)).astype(np.uint8))

    def contains(self, positions: np.ndarray) -> np.ndarray:
        """Per position, whether it is in the set (bool array, aligned)."""
        positions = np.asarray(positions, dtype=np.int64)
        return (self.bits[positions >> 3] >> (positions & 7).astype(np.uint8) & 1).astype(bool)

    def __len__(self) -> int:
        return int(np.unpackbits(self.bits).sum())
