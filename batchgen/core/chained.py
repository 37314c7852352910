"""A chained job: another job's output prefix read as the input of this one (an LLM judge, a rewrite pass,
a self-check over the first job's answers). Pure logic over Arrow and fsspec.

The first job must have finished (`_SUCCESS`): then every data file under its prefix is committed and
whole, and the prefix no longer changes under this job's resume. Its answer rows are the records (its
error rows too with `input.include_errors`), each named by the first job's row key, `id#sample_index`,
with `@max_thinking_tokens` when the row ran with a budget (unique: it is the first job's key). Its
columns are the records' columns, for the templates and passed through, except that the ones that would
steer this job (`id`, `max_thinking_tokens`, `reasoning`) and its key (`sample_index`) are renamed
`source_<name>` (the join key back to the first job's rows), and the per-token and accounting columns
(`logprobs`, token counts, `model`, ...) are left out unless `input.columns` names them. A first job
that was itself chained already holds `source_id`: its own `id` becomes `source_source_id`.
"""

from __future__ import annotations

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from batchgen.core.prefix import JOB_FILE, SUCCESS_FILE, data_files
from batchgen.core.storage import format_of

RENAMED = ("id", "sample_index", "max_thinking_tokens", "reasoning")
KEY = ("id", "sample_index", "max_thinking_tokens")
LEFT_OUT = ("logprobs", "model", "prompt_tokens", "reasoning_tokens", "completion_tokens", "thinking_budget_hit",
            "reasoning_end")


def renames(names: list[str]) -> dict[str, str]:
    """A first job's columns as this job sees them: `source_id` for `id` (and the other `RENAMED`), the
    others as they are; a name already taken (a chained job's own output holds `source_id`) gets another
    `source_` in front, as passthrough columns get `input_`."""
    taken = set(names)
    mapping = {}
    for name in names:
        if name in RENAMED:
            new = f"source_{name}"
            while new in taken:
                new = f"source_{new}"
            taken.add(new)
            mapping[name] = new
        else:
            mapping[name] = name
    return mapping


def is_job_output(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """Whether `path` is a batchgen job's output prefix (it holds the job's manifest)."""
    return fs.exists(f"{path.rstrip('/')}/{JOB_FILE}")


def committed_files(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    """The data files of a finished job's output prefix. Raises ValueError for a job that has not finished
    or wrote JSON Lines."""
    path = path.rstrip("/")
    if not fs.exists(f"{path}/{SUCCESS_FILE}"):
        raise ValueError(f"input.uri: the job at {path} has not finished (no {SUCCESS_FILE}): run it to the end "
                         "first (batchgen run ... resumes it), then this job reads its answers")
    files = data_files(fs, path)  # not `_batch_output.jsonl` (openai format): batchgen's own files start with _
    if not files:
        raise ValueError(f"input.uri: the job at {path} wrote no data files")
    if any(format_of(f) != "parquet" for f in files):
        raise ValueError(f"input.uri: the job at {path} wrote JSON Lines; a chained job reads Parquet output "
                         "(output.format parquet or openai)")
    return files


def read_columns(names: list[str], wanted: frozenset[str] | None, scan: bool, budget: str | None) -> list[str]:
    """The columns to read of a first job's data file (`names`): its key and `finish_reason` always; in
    scan mode only those and the column `budget` (this job's name) comes from; else `wanted` (by either
    name) or all but `LEFT_OUT`."""
    always = [*KEY, "finish_reason"]
    mapping = renames(names)
    if scan:
        chosen = always + [n for n in names if mapping[n] == budget]
    elif wanted is None:
        chosen = [n for n in names if n not in LEFT_OUT]
    else:
        chosen = [n for n in names if n in wanted or mapping[n] in wanted or n in always]
    return [n for n in names if n in chosen]


def answers(table: pa.Table, include_errors: bool, names: list[str]) -> tuple[pa.Table, list[str]]:
    """A first job's rows (read from a file whose columns are `names`) as this job's records: error rows
    dropped unless `include_errors` (a record that could not run: `finish_reason` "error"; an answer
    whose tool calls or structured check failed has an `error` too, and is an answer), columns renamed
    (`renames`), and each row's key text."""
    if not include_errors:
        table = table.filter(pc.not_equal(table.column("finish_reason"), "error"))
    keys = []
    for rid, sample, budget in zip(*(table.column(c).to_pylist() for c in KEY)):
        key = rid if sample is None else f"{rid}#{sample}"
        keys.append(key if budget is None else f"{key}@{budget}")
    mapping = renames(names)
    return table.rename_columns([mapping[n] for n in table.column_names]), keys


def renamed(schema: pa.Schema, names: list[str]) -> pa.Schema:
    """A first job's file schema (of a file whose columns are `names`) as this job's columns."""
    mapping = renames(names)
    return pa.schema([field.with_name(mapping[field.name]) for field in schema])
