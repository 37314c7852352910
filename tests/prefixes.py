"""Output prefixes written by hand, as a job leaves them (manifest, data file, stats, `_SUCCESS`), for the
pure tests of what reads them (`survey`, `report`)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen.core.prefix import Manifest, OutputPrefix
from batchgen.core.stats import JobStats
from batchgen.core.storage import InputSet, open_fs
from batchgen.record.contract import RecordError
from batchgen.record.rows import OUTPUT_SCHEMA, answer_row, error_row
from batchgen.spec.job import JobSpec

MODEL = "toy:nemotron-h"


def answer(rid, mode, reasoning, completion, finish="stop", ended=None):
    return answer_row(record_id=rid, model=MODEL, mode=mode, reasoning_text="thinking" if mode == "on" else None,
                      content="an answer", finish_reason=finish, reasoning_end=ended, prompt_tokens=10,
                      reasoning_tokens=reasoning, completion_tokens=completion)


ROWS = [
    answer("budget-1", "on", 300, 340, ended="budget_line_break"),
    answer("cut-1", "on", 512, 512, finish="length", ended="length"),  # max_tokens hit while still reasoning
    answer("on-1", "on", 40, 60, ended="model"),
    answer("on-2", "on", 41, 70, ended="model"),
    answer("off-1", "off", 0, 25),
    answer("<b>x</b>", "off", 0, 5),
    error_row("bad-1", MODEL, RecordError("missing_prompt", "a record needs exactly one of prompt or messages")),
    error_row("bad-2", MODEL, RecordError("invalid_type", "max_tokens: Input should be a valid integer (got '<abc>')")),
    error_row("bad-3", MODEL, RecordError("missing_prompt", "a record needs exactly one of prompt or messages")),
]
STATS = JobStats(job="report-test", model=MODEL, input_files=1, records=9, ok=6, errors=3,
                 errors_by_code={"invalid_type": 1, "missing_prompt": 2}, prompt_tokens=60, completion_tokens=1012,
                 reasoning_tokens=893, files=1, skipped_already_done=0, wall_time_s=16.0, tokens_per_s=63.3,
                 engine_startup_s=12.5, generation_time_s=3.5, generation_tokens_per_s=289.1, rows=9)


def write_prefix(tmp_path, rows, records, finished=False, grade: dict | None = None) -> str:
    """An output prefix as a job leaves it: manifest, data file (if any rows), and when `finished` the
    stats and `_SUCCESS`; the job's spec beside it, as `spec.json` (with `grade` as its grade section)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "in.jsonl").write_text('{"prompt": "x"}\n' * records)
    out = tmp_path / "out"
    document = {"name": "report-test", "model": {"path": MODEL}, "input": {"uri": str(tmp_path / "in.jsonl")},
                "output": {"uri": str(out)}} | ({"grade": grade} if grade else {})
    (tmp_path / "spec.json").write_text(json.dumps(document))
    spec = JobSpec.model_validate(document)
    fs, path = open_fs(str(tmp_path / "in.jsonl"))
    prefix = OutputPrefix(str(out))
    prefix.write_manifest(Manifest.of(spec, InputSet.find(fs, path, "auto")), records=records)
    if rows:
        pq.write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), out / "part-0.parquet")
    if finished:
        prefix.write_stats(STATS)
        prefix.write_success()
    return str(out)
