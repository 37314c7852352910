"""Input files written by hand and read as a job reads them (scan, then blocks), with no engine and no Ray,
for the job core's pure tests."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen.core.blocks import assemble, decode
from batchgen.core.reading import read_file
from batchgen.core.scan import scan
from batchgen.core.storage import InputSet, open_fs
from batchgen.record.contract import RecordError
from batchgen.record.rows import error_row
from batchgen.spec.job import JobSpec


def write_lines(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def inputs_at(uri, fmt="auto"):
    fs, path = open_fs(str(uri))
    return fs, InputSet.find(fs, path, fmt)


def scanned(uri, fmt="auto"):
    fs, inputs = inputs_at(uri, fmt)
    result = scan(inputs, (b for f in inputs.files for b in read_file(fs, inputs, f, scan=True)))
    return fs, inputs, result


def output_table(uri, fmt="auto") -> pa.Table:
    """What the job writes for these inputs, with every record an error row (no engine needed)."""
    fs, inputs, result = scanned(uri, fmt)
    tables = []
    for f in inputs.files:
        for block in read_file(fs, inputs, f, frozenset(result.duplicate_errors)):
            batch = decode(block, result.passthrough, result.duplicate_errors)
            rows = [error_row(rid, "m", RecordError("x", "y")) for rid in batch.ids]
            tables.append(assemble(rows, batch.passthrough, result.passthrough))
    return tables


def write_prefix(tables, folder):
    folder.mkdir()
    for n, table in enumerate(tables):
        pq.write_table(table, folder / f"part-{n}.parquet")


def spec_for(input_uri, output_uri, **sections) -> JobSpec:
    return JobSpec.model_validate({"name": "t", "model": {"path": "toy:nemotron-h"}, "input": {"uri": str(input_uri)},
                                   "output": {"uri": str(output_uri)}, **sections})
