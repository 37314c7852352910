"""Input files written by hand and read as a job reads them (scan, then blocks), with no engine and no Ray,
for the job core's pure tests."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen.core.blocks import Decoder, assemble, decode
from batchgen.core.columns import job_inputs
from batchgen.core.prompts import prompt_plan
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


def job_read(spec: JobSpec) -> tuple[list[str], list, pa.Table]:
    """What a job's replicas get from its input, read as `run` and `validate` read it (its columns, its
    prompt section): the row ids, the records (rendered by the templates, or why not) and the output
    table with every record an error row (so its passthrough columns can be looked at)."""
    fs, inputs = job_inputs(spec)
    result = scan(inputs, (b for f in inputs.files for b in read_file(fs, inputs, f, scan=True)))
    decoder = Decoder(result.passthrough, result.duplicate_errors, inputs.format == "openai", inputs.columns,
                      prompt_plan(spec))
    ids, records, tables = [], [], []
    for f in inputs.files:
        for block in read_file(fs, inputs, f, frozenset(result.duplicate_errors)):
            batch = decoder(block)
            ids += batch.ids
            records += batch.records
            rows = [error_row(rid, "m", RecordError("x", "y")) for rid in batch.ids]
            tables.append(assemble(rows, batch.passthrough, result.passthrough))
    return ids, records, pa.concat_tables(tables)


LAKE_ROWS = {
    "en": [{"qid": 1, "question": "What is 2 plus 3?", "context": "Add the numbers.", "answer": "5", "n": 7},
           {"qid": 2, "question": "Name a prime number.", "context": None, "answer": "7", "n": 1},
           {"qid": 3, "question": "What is 4 times 2?", "context": "Multiply.", "answer": "8", "n": 2}],
    "fr": [{"qid": 4, "question": "Combien font 1 plus 1 ?", "context": "Ajoutez.", "answer": "2", "n": 3},
           {"qid": 5, "question": "Un nombre pair ?", "context": None, "answer": "4", "n": 5}],
}
LAKE_EXAMPLES = [{"id": "x1", "question": "What is 1 plus 1?", "answer": "2"},
                 {"id": "x2", "question": "What is 3 plus 3?", "answer": "6"},
                 {"id": "x3", "question": "What is 5 minus 1?", "answer": "4"}]
LAKE_PROMPT = {
    "system": "You answer questions in {{ lang }}.",
    "user": "Context: {{ context }}\nQuestion: {{ question }}",
    "examples": {"k": 2, "user": "Context: none\nQuestion: {{ question }}", "assistant": "{{ answer }}"},
}


def write_lake_table(folder, fs=None) -> None:
    """A lake table as data teams keep one: Hive-partitioned Parquet (lang=en/, lang=fr/) with their own
    columns (an integer `qid`, `context` null in some rows, a domain column named like a record field, `n`),
    and a JSONL file of few-shot examples beside it (`examples.jsonl`). `fs`: an fsspec filesystem (local
    when None); `folder` a path on it."""
    import fsspec

    fs = fs or fsspec.filesystem("file")
    for lang, rows in LAKE_ROWS.items():
        fs.makedirs(f"{folder}/table/lang={lang}", exist_ok=True)
        with fs.open(f"{folder}/table/lang={lang}/part-0.parquet", "wb") as handle:
            pq.write_table(pa.Table.from_pylist(rows), handle)
    with fs.open(f"{folder}/examples.jsonl", "w") as handle:
        handle.write("".join(json.dumps(e) + "\n" for e in LAKE_EXAMPLES))
