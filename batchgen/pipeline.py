"""The distributed job: read records, generate on a pool of vLLM replicas, write results, account for them.

    input files --Ray Data read--> rows --map_batches on an actor pool (one Replica each)--> output rows
                --Ray Data write (streamed, shard by shard)--> output.uri/*.parquet, then _stats.json, _SUCCESS

Nothing is shuffled or materialized: Ray Data streams blocks from the readers through the replicas to the
writers, so the driver's memory stays flat as the input grows. Each input row yields exactly one output
row, an answer or an error row; `_stats.json` is computed from what was written, and `_SUCCESS` is written
last, only when the share of failed records stayed within `errors.max_fraction`.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import PurePosixPath

import pyarrow as pa

from batchgen.outputs import OUTPUT_FIELDS, error_row
from batchgen.records import INPUT_FIELDS, RecordError, parse_json_line, record_id
from batchgen.spec import JobSpec
from batchgen.storage import (
    INDEX, INTERNAL_COLUMNS, LINE, SOURCE, STATS_FILE, SUCCESS_FILE, arrow_fs, data_files, filename_provider,
    find_inputs, open_fs, ray_dataset, write_marker,
)

TOOL_CALL = pa.struct([("id", pa.string()), ("name", pa.string()), ("arguments", pa.string())])
OUTPUT_SCHEMA = pa.schema([
    ("id", pa.string()), ("reasoning", pa.string()), ("reasoning_content", pa.string()), ("content", pa.string()),
    ("tool_calls", pa.list_(TOOL_CALL)), ("finish_reason", pa.string()), ("thinking_budget_hit", pa.bool_()),
    ("prompt_tokens", pa.int64()), ("reasoning_tokens", pa.int64()), ("completion_tokens", pa.int64()),
    ("error", pa.string()), ("model", pa.string()),
])
assert tuple(OUTPUT_SCHEMA.names) == OUTPUT_FIELDS, "the Arrow schema and the output record disagree"


class JobFailed(RuntimeError):
    """The job ran but must not be taken as a success (say, too many records failed)."""


def fallback_id(source: str, index: int) -> str:
    """The id of a record that has none: its file's name and its line (JSONL) or row (Parquet) number."""
    return f"{PurePosixPath(source).name}:{index}"


def decode_batch(batch: pa.Table) -> tuple[list[dict | RecordError], list[str], pa.Table]:
    """Input rows as raw records (or why a line is not one), their ids, and the passthrough columns."""
    sources, indexes = batch.column(SOURCE).to_pylist(), batch.column(INDEX).to_pylist()
    if LINE in batch.column_names:  # JSONL: parse here, on the replica's worker, one error row per bad line
        records = [parse_json_line(line) for line in batch.column(LINE).to_pylist()]
        extras = [{k: v for k, v in r.items() if k not in INPUT_FIELDS} if isinstance(r, dict) else {} for r in records]
        passthrough = pa.Table.from_pylist(extras) if any(extras) else pa.table({})
    else:  # Parquet: passthrough columns are sliced, not rebuilt, so they keep their Parquet types exactly
        keep = [c for c in batch.column_names if c not in INPUT_FIELDS and c not in INTERNAL_COLUMNS]
        passthrough = batch.select(keep)
        records = batch.select([c for c in batch.column_names if c in INPUT_FIELDS]).to_pylist()
    ids = [
        record_id(r, fallback_id(s, i)) if isinstance(r, dict) else fallback_id(s, i)
        for r, s, i in zip(records, sources, indexes)
    ]
    return records, ids, passthrough


def assemble(rows: list[dict], passthrough: pa.Table) -> pa.Table:
    table = pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)
    for name in passthrough.column_names:
        if name not in OUTPUT_SCHEMA.names:  # an output column wins over a passthrough field of its name
            table = table.append_column(name, passthrough.column(name))
    return table


class GenerateStage:
    """A Ray Data actor: hosts one Replica and turns a batch of input rows into the same number of output rows."""

    def __init__(self, spec_json: str, progress=None):
        from batchgen.replica import Replica

        spec = JobSpec.model_validate_json(spec_json)
        self.replica = Replica(spec.model, spec.engine, spec.budget, spec.defaults)
        self.progress = progress

    def __call__(self, batch: pa.Table) -> pa.Table:
        records, ids, passthrough = decode_batch(batch)
        runnable = [i for i, r in enumerate(records) if isinstance(r, dict)]
        rows = [error_row(ids[i], self.replica.model_name, r) if isinstance(r, RecordError) else None
                for i, r in enumerate(records)]
        generated = self.replica.generate([records[i] for i in runnable], [ids[i] for i in runnable])
        for i, row in zip(runnable, generated):
            rows[i] = row
        if self.progress is not None:
            self.progress.add.remote(len(rows), sum(r["error"] is not None for r in rows),
                                     sum(r["completion_tokens"] for r in rows))
        return assemble(rows, passthrough)


def _same(table: pa.Table) -> pa.Table:
    return table


def collect_stats(fs, prefix: str, fmt: str) -> dict:
    """Counts from what was written (not from what the replicas reported: retried work would count twice)."""
    import pyarrow.dataset as pads

    files = data_files(fs, prefix)
    columns = ["error", "prompt_tokens", "completion_tokens", "reasoning_tokens"]
    errors: Counter[str] = Counter()
    totals = Counter()
    if files:
        dataset = pads.dataset(files, filesystem=arrow_fs(fs), format="json" if fmt == "jsonl" else "parquet")
        for batch in dataset.to_batches(columns=columns):
            totals["records"] += batch.num_rows
            for name in columns[1:]:
                totals[name] += sum(v or 0 for v in batch.column(name).to_pylist())
            errors.update(e.split(":", 1)[0] for e in batch.column("error").to_pylist() if e)
    return {
        "records": totals["records"],
        "ok": totals["records"] - sum(errors.values()),
        "errors": sum(errors.values()),
        "errors_by_code": dict(sorted(errors.items())),
        "prompt_tokens": totals["prompt_tokens"],
        "completion_tokens": totals["completion_tokens"],
        "reasoning_tokens": totals["reasoning_tokens"],
        "files": len(files),
    }


def _init_ray() -> None:
    import ray

    if not ray.is_initialized():
        # RAY_ADDRESS, when set, names the cluster; otherwise a local Ray is started for this job ("local":
        # never a stray cluster that happens to run on this machine).
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local",
                 log_to_driver=os.environ.get("BATCHGEN_ACTOR_LOGS") == "1")


def _progress_actor():
    import ray

    @ray.remote(num_cpus=0)
    class Progress:
        def __init__(self):
            self.records = self.errors = self.tokens = 0

        def add(self, records: int, errors: int, tokens: int) -> None:
            self.records += records
            self.errors += errors
            self.tokens += tokens

        def snapshot(self) -> dict:
            return {"records": self.records, "errors": self.errors, "completion_tokens": self.tokens}

    return Progress.remote()


def _watch(progress, started: float, report: Callable[[dict], None], stop: threading.Event, every: float = 2.0):
    import ray

    while not stop.wait(every):
        snapshot = ray.get(progress.snapshot.remote())
        report({**snapshot, "elapsed_s": time.monotonic() - started})


def run(spec: JobSpec, report: Callable[[dict], None] | None = None) -> dict:
    """Runs the job to completion and returns its stats; raises JobFailed when it must not count as done."""
    from ray.data import ActorPoolStrategy, DataContext

    from batchgen.models import TOY_MODEL, resolve_path

    started = time.monotonic()
    in_fs, in_path = open_fs(spec.input.uri, spec.storage)
    files, fmt = find_inputs(in_fs, in_path, spec.input.format)
    out_fs, out_path = open_fs(spec.output.uri, spec.storage)
    if data_files(out_fs, out_path):
        raise JobFailed(f"output.uri {spec.output.uri} already holds results: write to a new prefix")
    if spec.model.path == TOY_MODEL:
        resolve_path(TOY_MODEL)  # built once here, not by every replica at the same time
    _init_ray()
    DataContext.get_current().enable_progress_bars = False
    progress = _progress_actor()
    scaling = spec.scaling
    dataset = ray_dataset(in_fs, files, fmt).map_batches(
        GenerateStage,
        fn_constructor_args=(spec.model_dump_json(), progress),
        batch_size=scaling.batch_size,
        batch_format="pyarrow",
        # Several batches run in each actor at once, on threads (Replica.generate is thread-safe): the engine
        # keeps working on one batch's long reasoning while the next batches' records join it.
        compute=ActorPoolStrategy(
            size=scaling.replicas,
            max_tasks_in_flight_per_actor=scaling.batches_in_flight,
            max_concurrent_calls_per_actor=scaling.batches_in_flight,
            enable_true_multi_threading=True,
        ),
        num_gpus=scaling.gpus_per_replica,
        num_cpus=scaling.cpus_per_replica,
        runtime_env={"env_vars": {"VLLM_USE_V2_MODEL_RUNNER": "0", "TOKENIZERS_PARALLELISM": "false",
                                  "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING")}},
    )
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(progress, started, report, stop), daemon=True) if report else None
    if watcher:
        watcher.start()
    # Regrouping output blocks into file-sized ones goes through Ray's block concatenation, which fills a
    # passthrough field that some JSONL records lack with nulls; Ray's Parquet writer would refuse to put
    # blocks whose columns differ into one file.
    files_ds = dataset.map_batches(_same, batch_size=spec.output.min_rows_per_file, batch_format="pyarrow")
    try:
        writer = files_ds.write_parquet if spec.output.format == "parquet" else files_ds.write_json
        writer(out_path, filesystem=arrow_fs(out_fs), filename_provider=filename_provider(spec.output.format))
    finally:
        stop.set()
    wall = time.monotonic() - started
    stats = {
        "job": spec.name, "model": spec.model.path, "input_files": len(files), **collect_stats(out_fs, out_path, spec.output.format),
        "wall_time_s": round(wall, 2),
    }
    stats["tokens_per_s"] = round(stats["completion_tokens"] / wall, 1) if wall else 0.0
    write_marker(out_fs, out_path, STATS_FILE, stats)
    if stats["records"] and stats["errors"] / stats["records"] > spec.errors.max_fraction:
        raise JobFailed(
            f"{stats['errors']} of {stats['records']} records failed, more than errors.max_fraction "
            f"{spec.errors.max_fraction}: {stats['errors_by_code']}"
        )
    write_marker(out_fs, out_path, SUCCESS_FILE)
    return stats
