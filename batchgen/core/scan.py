"""The input scan: one pass over the whole input before any record runs, for what no single batch can
know: which rows reuse an id (a later use is a `duplicate_id` error row), and the passthrough columns and
types every output file will share. `run` scans with Ray Data, `validate` in-process; both read through
`reading.read_stream` in scan mode, which yields only ids, locations and types (Parquet: the `id` column
and the file's schema), so the scan is cheap next to generation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from batchgen.core.identity import DuplicateFinder
from batchgen.core.passthrough import Passthrough, PassthroughTypes
from batchgen.core.positions import Positions
from batchgen.record.contract import RecordError
from batchgen.record.rows import OUTPUT_FIELDS
from batchgen.core.reading import BUDGETED, INDEX, SOURCE, TYPES
from batchgen.core.storage import InputSet


@dataclass(frozen=True)
class ScanResult:
    """`duplicate_errors`: (file, number) of every later use of an id -> its error; `passthrough`: the prefix's
    passthrough columns; `records`: how many input rows there are; `budgeted`: whether any record sets
    `max_thinking_tokens` (the replicas register the budget processor only then, or for the defaults');
    `positions`: every record's place as an integer (`batchgen.core.positions`); `ids`: every id's
    digest, spilled to disk, to find a checkpoint's records by when a job resumes (`close` frees it)."""

    duplicate_errors: dict[tuple[str, int], RecordError]
    passthrough: Passthrough
    records: int
    budgeted: bool
    positions: Positions
    ids: DuplicateFinder

    def close(self) -> None:
        self.ids.close()


def scan(inputs: InputSet, blocks: Iterable[pa.Table]) -> ScanResult:
    """Folds scan-mode blocks (any order, any grouping) into the scan's result."""
    finder = DuplicateFinder(inputs.files, inputs.names)
    types = PassthroughTypes()
    # Blocks arrive in any order; passthrough columns are ordered by the file and line that first had them.
    # Each scan block carries its schema; only each distinct one's first place is kept (a few, not one per
    # block: 20,000 blocks for ten million records).
    first_at: dict[bytes, tuple[int, int]] = {}
    rank = {path: n for n, path in enumerate(inputs.files)}
    records, budgeted, extents = 0, False, {}
    for block in blocks:
        sources, numbers = block.column(SOURCE).to_pylist(), block.column(INDEX).to_pylist()
        finder.add(block.column("id").to_pylist(), sources, numbers)
        for last in block.group_by(SOURCE).aggregate([(INDEX, "max")]).to_pylist():
            extents[last[SOURCE]] = max(extents.get(last[SOURCE], 0), last[f"{INDEX}_max"] + 1)
        records += block.num_rows
        budgeted = budgeted or pc.any(block.column(BUDGETED)).as_py() is True
        for i, serialized in enumerate(block.column(TYPES).to_pylist()):
            if serialized is not None:
                at = (rank[sources[i]], numbers[i])
                first_at[serialized] = min(at, first_at.get(serialized, at))
    for serialized, _ in sorted(first_at.items(), key=lambda item: item[1]):
        types.add(pa.ipc.read_schema(pa.py_buffer(serialized)))
    return ScanResult(finder.duplicate_errors(), Passthrough.build(types, OUTPUT_FIELDS), records, budgeted,
                      Positions(inputs.files, extents), finder)
