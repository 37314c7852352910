"""batchgen as a library: what `import batchgen` offers a notebook or a program (`batchgen/__init__.py`
names them). `run` and `validate` are the CLI's `run` and `validate` as calls; `generate` is the replica
stage for people who already build Ray Data pipelines.

A spec is given as a YAML file's path, a dict (as YAML reads it) or a `JobSpec`, with keyword overrides of
whole sections merged into it (`output={"uri": ...}` changes the output's uri and keeps its format).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from batchgen.cluster.pipeline import JobFailed, ReplicaLike, replica_stage, run as run_job, vllm_replica
from batchgen.cluster.stage import progress_actor
from batchgen.cluster.validation import Report, validate_job
from batchgen.core.blocks import Decoder
from batchgen.core.columns import InputColumns
from batchgen.core.passthrough import Passthrough, PassthroughTypes
from batchgen.core.prompts import prompt_plan
from batchgen.core.reading import dataset_block
from batchgen.core.stats import JobStats
from batchgen.record.rows import OUTPUT_FIELDS
from batchgen.spec.job import JobSpec, SpecError, merged, parse_spec, read_document
from batchgen.views.logs import captured
from batchgen.views.progress import Snapshot

__all__ = ["JobResult", "as_spec", "generate", "run", "validate"]


@dataclass(frozen=True)
class JobResult:
    """What `run` gives back: the job's `stats` (`JobStats`: records, rows, errors by code, tokens, times),
    the `output` prefix its rows are under (`output.uri`), and `log`, the file Ray's and vLLM's logs went
    to (None with `verbose=True`: they went to this process's stderr)."""

    stats: JobStats
    output: str
    log: Path | None


def _document(spec: str | Path | dict | JobSpec) -> dict:
    if isinstance(spec, (str, Path)):
        return read_document(spec)
    if isinstance(spec, JobSpec):
        return spec.model_dump(mode="json")
    if not isinstance(spec, dict):
        raise SpecError(f"a job spec is a YAML file's path, a dict or a JobSpec, not {type(spec).__name__}")
    return spec  # `merged` and `parse_spec` copy, never change it


def as_spec(spec: str | Path | dict | JobSpec, overrides: dict[str, Any] | None = None) -> JobSpec:
    """A validated JobSpec from a YAML file's path, a spec document or a JobSpec, with `overrides` (spec
    sections or keys: a dict value is merged into the section, anything else replaces it). Raises
    SpecError naming every offending key."""
    if isinstance(spec, JobSpec) and not overrides:
        return spec
    return parse_spec(merged(_document(spec), overrides or {}))


def run(spec: str | Path | dict | JobSpec, /, *, allow_changed_spec: bool = False, verbose: bool = False,
        progress: Callable[[Snapshot], None] | None = None, **overrides: Any) -> JobResult:
    """Runs a job to the end, as `batchgen run` does, and returns its `JobResult`; run again onto the same
    output, it resumes (finished records are skipped) or, complete, does nothing
    (`result.stats.already_complete`). `progress` gets a `Snapshot` every 2 s; Ray's and vLLM's logs go
    to a log file (`result.log`) unless `verbose`. A local Ray started here stays up for the next call
    (`ray.shutdown()` ends it); with `RAY_ADDRESS` set the job runs on that cluster.

        result = batchgen.run("jobs/demo.yaml", output={"uri": "out/try-2/"}, scaling={"replicas": 2})
        print(result.stats.records, result.stats.errors_by_code, result.output)

    Raises SpecError for a spec that cannot run, JobFailed when the job must not count as done (the
    message says why and where the log is), FileNotFoundError or ValueError for an input that cannot be
    read."""
    job = as_spec(spec, overrides)
    with captured(job.name, verbose) as logs:
        try:
            stats = run_job(job, report=progress, allow_changed_spec=allow_changed_spec, actor_logs=True)
        except JobFailed as error:
            raise JobFailed(f"{error}{logs.hint()}") from error
    return JobResult(stats, job.output.uri, logs.path)


def validate(spec: str | Path | dict | JobSpec, /, *, show: int = 2, **overrides: Any) -> Report:
    """Checks a job without an engine or a GPU, as `batchgen validate` does: every record read, templated
    and prepared as the replicas would, and a `Report` of what would fail (`report.errors` by code,
    `report.bad` the first bad records) and the first `show` prompts as the engine will see them
    (`report.prompts`, each with `.prompt`). Raises SpecError, FileNotFoundError, ValueError, and OSError
    when the model's tokenizer cannot be loaded."""
    return validate_job(as_spec(spec, overrides), show)


def generate(dataset, spec: str | Path | dict | JobSpec, /, *,
             replica_factory: Callable[[JobSpec, bool], ReplicaLike] = vllm_replica, **overrides: Any):
    """The replica stage for a Ray Data pipeline: `dataset` (a `ray.data.Dataset` of records, `prompt` or
    `messages` per row, or of a table's rows with the spec's `prompt` templates) in, a Dataset of output
    rows out (the row contract's columns, then the input's other columns), lazily, as Ray Data does.
    Replicas, reasoning modes, budgets, samples and the split into `reasoning_content` and `content` are a
    job's; the spec's `model`, `engine`, `prompt`, `defaults`, `budget`, `scaling`, `errors` and `seed`
    apply, and `input` and `output` need not be given (`input.id_column` names the id column).

    What stays the job's: a Dataset has no input scan, so a reused id is not an error row (each row with
    it is answered) and a row without an id is named by a digest of its values (identical rows share it,
    and with it their samples' seeds: sample a prompt many times with `n`); nothing is checkpointed, so a
    failed pipeline resumes nothing, and the batches Ray Data retries after a replica's death run again,
    so their rows can come out twice. Every row otherwise comes out once, as an answer or an error row,
    and the pipeline stops (TooManyErrors) when the share of error rows passes `errors.max_fraction`. Use
    `batchgen.run` where exactly-once matters. Needs Ray initialized (a Dataset already has it)."""
    # A Dataset is both the input and the output: the spec's input and output sections may be left out.
    placeholders = {"name": "generate", "input": {"uri": "ray-dataset"}, "output": {"uri": "ray-dataset"}}
    job = parse_spec(merged(merged(placeholders, _document(spec)), overrides))
    columns = InputColumns.of(job)
    schema = dataset.schema()
    fields = [pa.field(name, kind) for name, kind in zip(schema.names, schema.types)]
    types = PassthroughTypes()
    types.add(pa.schema([f for f in fields if f.name in columns.data_fields(schema.names)]))
    passthrough = Passthrough.build(types, OUTPUT_FIELDS)
    budgeted = job.defaults.max_thinking_tokens is not None or columns.budget_column in schema.names
    decoder = Decoder(passthrough, {}, False, columns, prompt_plan(job))
    keyed = dataset.map_batches(dataset_block, fn_args=(columns,), batch_format="pyarrow", batch_size=None)
    progress = progress_actor(job.errors.max_fraction, job.errors.min_records)
    return replica_stage(job, keyed, progress, decoder, budgeted, replica_factory)
