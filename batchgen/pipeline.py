"""The distributed job: read records, generate on a pool of vLLM replicas, write results, account for them.

    input files --Ray Data read--> rows --map_batches on an actor pool (one Replica each)--> output rows
                --Ray Data write (streamed, shard by shard)--> output.uri/*.parquet, then _stats.json, _SUCCESS

Nothing is shuffled or materialized: Ray Data streams blocks from the readers through the replicas to the
writers, so the driver's memory stays flat as the input grows. Each input row yields exactly one output
row, an answer or an error row; `_stats.json` is computed from what was written, and `_SUCCESS` is written
last, only when the share of failed records stayed within `errors.max_fraction`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable

import pyarrow as pa

from batchgen.outputs import OUTPUT_FIELDS, error_row
from batchgen.ledger import CrashLedger, FirstOccurrences
from batchgen.records import INPUT_FIELDS, RecordError, fallback_id, parse_json_line
from batchgen.resume import ResumeRefused, check_output, checkpoint_config, manifest
from batchgen.spec import JobSpec
from batchgen.storage import (
    INDEX, INTERNAL_COLUMNS, JOB_FILE, LINE, SOURCE, STATS_FILE, SUCCESS_FILE, arrow_fs, clear_staging,
    data_files, filename_provider, find_inputs, open_fs, ray_dataset, write_marker,
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


ENGINE_MAX_CRASHES = 3  # engine deaths a record may run through before it is written as an error row


class TooManyErrors(RuntimeError):
    """Raised in a replica to stop the job early: the share of failed records passed errors.max_fraction."""


def decode_batch(
    batch: pa.Table, duplicates: dict[tuple[str, int], RecordError] | None = None
) -> tuple[list[dict | RecordError], list[str], pa.Table]:
    """Input rows as raw records (or why a line is not one), their ids, and the passthrough columns.
    `duplicates` ((file, number) -> error) turns later occurrences of an id into errors."""
    ids = batch.column("id").to_pylist()
    if LINE in batch.column_names:  # JSONL: parse here, on the replica's worker, one error row per bad line
        records = [parse_json_line(line) for line in batch.column(LINE).to_pylist()]
        extras = [{k: v for k, v in r.items() if k not in INPUT_FIELDS} if isinstance(r, dict) else {} for r in records]
        passthrough = pa.Table.from_pylist(extras) if any(extras) else pa.table({})
    else:  # Parquet: passthrough columns are sliced, not rebuilt, so they keep their Parquet types exactly
        keep = [c for c in batch.column_names if c not in INPUT_FIELDS and c not in INTERNAL_COLUMNS]
        passthrough = batch.select(keep)
        records = batch.select([c for c in batch.column_names if c in INPUT_FIELDS and c != "id"]).to_pylist()
    if duplicates:
        positions = zip(batch.column(SOURCE).to_pylist(), batch.column(INDEX).to_pylist())
        records = [duplicates.get(where, r) for r, where in zip(records, positions)]
    return records, ids, passthrough


def find_duplicates(id_blocks, files: list[str]) -> dict[tuple[str, int], RecordError]:
    """From blocks of (id, file, number), the later occurrences of every id used more than once."""
    rank = {path: n for n, path in enumerate(files)}
    seen = FirstOccurrences()
    for block in id_blocks:
        sources, indexes = block.column(SOURCE).to_pylist(), block.column(INDEX).to_pylist()
        seen.add(block.column("id").to_pylist(), [(rank[s], i) for s, i in zip(sources, indexes)])
    return {
        (files[rank_], number): RecordError(
            "duplicate_id", f"its id was already used at {fallback_id(files[first[0]], first[1])}")
        for (rank_, number), first in seen.later_occurrences().items()
    }


def id_columns(batch: pa.Table) -> pa.Table:
    return batch.select(["id", SOURCE, INDEX])


def assemble(rows: list[dict], passthrough: pa.Table) -> pa.Table:
    table = pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)
    for name in passthrough.column_names:
        if name not in OUTPUT_SCHEMA.names:  # an output column wins over a passthrough field of its name
            table = table.append_column(name, passthrough.column(name))
    return table


class GenerateStage:
    """A Ray Data actor: hosts one Replica and turns a batch of input rows into the same number of output rows."""

    def __init__(self, spec_json: str, progress, duplicates=None):
        from batchgen.replica import Replica

        spec = JobSpec.model_validate_json(spec_json)
        self.replica = Replica(spec.model, spec.engine, spec.budget, spec.defaults)
        progress.ready.remote(time.time())
        self.progress = progress
        self.duplicates = duplicates or {}

    def __call__(self, batch: pa.Table) -> pa.Table:
        import ray

        from batchgen.replica import EngineDied

        records, ids, passthrough = decode_batch(batch, self.duplicates)
        runnable = [i for i, r in enumerate(records) if isinstance(r, dict)]
        rows = [error_row(ids[i], self.replica.model_name, r) if isinstance(r, RecordError) else None
                for i, r in enumerate(records)]
        try:
            for i, row in zip(runnable, self._generate([records[i] for i in runnable], [ids[i] for i in runnable])):
                rows[i] = row
        except EngineDied:
            # Only a new process can host a new engine: Ray restarts this actor and retries its batches.
            os._exit(1)
        verdict = ray.get(self.progress.add.remote(
            len(rows), sum(r["error"] is not None for r in rows), sum(r["completion_tokens"] for r in rows)))
        if verdict:  # stop the job instead of burning GPU hours on a broken input
            raise TooManyErrors(verdict)
        return assemble(rows, passthrough)

    def _generate(self, records: list[dict], ids: list[str]) -> list[dict]:
        import ray

        if not any(ray.get(self.progress.begin_unless_crashed.remote(ids))):
            rows = self.replica.generate(records, ids)
            self.progress.end.remote(ids)
            return rows
        # This batch was running when a replica died: one record at a time, so the one that kills the
        # engine is found and, after max_crashes deaths, written as an error row instead of retried forever.
        rows = []
        for record, rid in zip(records, ids):
            (crashes,) = ray.get(self.progress.begin.remote([rid]))
            if crashes >= ENGINE_MAX_CRASHES:
                error = RecordError("engine_crash", f"the engine died {crashes} times while this record ran")
                rows.append(error_row(rid, self.replica.model_name, error))
            else:
                rows.extend(self.replica.generate([record], [rid]))
            ray.get(self.progress.end.remote([rid]))
        return rows


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


def _stats(spec: JobSpec, files: list[str], out_fs, out_path: str, started: float, skipped: int, progress) -> dict:
    import ray

    now = time.time()
    wall = now - started
    stats = {"job": spec.name, "model": spec.model.path, "input_files": len(files),
             **collect_stats(out_fs, out_path, spec.output.format), "skipped_already_done": skipped,
             "wall_time_s": round(wall, 2)}
    stats["tokens_per_s"] = round(stats["completion_tokens"] / wall, 1) if wall else 0.0
    # Throughput without the engine start-up, which dominates small jobs: from the first replica ready to
    # the last file written, over the tokens generated in this run (a resumed job's earlier ones excluded).
    snapshot = ray.get(progress.snapshot.remote())
    first_ready = snapshot["first_ready"] or now
    stats["engine_startup_s"] = round(first_ready - started, 2)
    generation = now - first_ready
    stats["generation_time_s"] = round(generation, 2)
    stats["generation_tokens_per_s"] = round(snapshot["completion_tokens"] / generation, 1) if generation > 0 else 0.0
    return stats


def _init_ray() -> None:
    import ray

    if not ray.is_initialized():
        # RAY_ADDRESS, when set, names the cluster; otherwise a local Ray is started for this job ("local":
        # never a stray cluster that happens to run on this machine). A local Ray gets at least 4 CPU slots:
        # reader tasks, the checkpoint filter, replicas and writers each hold one, and on a 2-core machine
        # they would wait on each other forever; the replicas' real work is the engine's, not the slot's.
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address or "local", num_cpus=None if address else max(4, os.cpu_count() or 1),
                 log_to_driver=os.environ.get("BATCHGEN_ACTOR_LOGS") == "1")


def _progress_actor(max_fraction: float, min_records: int):
    import ray

    @ray.remote(num_cpus=0)
    class Progress:
        """Counts what the replicas report; says when the share of failures means the job must stop; keeps
        the crash ledger (which records were running when a replica died)."""

        def __init__(self):
            self.records = self.errors = self.tokens = 0
            self.verdict = ""
            self.first_ready: float | None = None  # wall clock: replicas run in other processes
            self.ledger = CrashLedger(ENGINE_MAX_CRASHES)

        def begin_unless_crashed(self, ids: list[str]) -> list[int]:
            """Begins the batch if none of its records has been through an engine death (one round trip)."""
            counts = self.ledger.peek(ids)
            if not any(counts):
                self.ledger.begin(ids)
            return counts

        def begin(self, ids: list[str]) -> list[int]:
            return self.ledger.begin(ids)

        def end(self, ids: list[str]) -> None:
            self.ledger.end(ids)

        def ready(self, at: float) -> None:
            self.first_ready = min(at, self.first_ready or at)

        def add(self, records: int, errors: int, tokens: int) -> str:
            self.records += records
            self.errors += errors
            self.tokens += tokens
            if not self.verdict and self.records >= min_records and self.errors > max_fraction * self.records:
                self.verdict = (f"stopped early: {self.errors} of the first {self.records} records failed, "
                                f"more than errors.max_fraction {max_fraction}")
            return self.verdict

        def snapshot(self) -> dict:
            return {"records": self.records, "errors": self.errors, "completion_tokens": self.tokens,
                    "verdict": self.verdict, "first_ready": self.first_ready}

    return Progress.remote()


def _watch(progress, started: float, report: Callable[[dict], None], stop: threading.Event, every: float = 2.0):
    import ray

    while not stop.wait(every):
        snapshot = ray.get(progress.snapshot.remote())
        report({**snapshot, "elapsed_s": time.time() - started})


def run(spec: JobSpec, report: Callable[[dict], None] | None = None, allow_changed_spec: bool = False) -> dict:
    """Runs the job to completion and returns its stats; raises JobFailed when it must not count as done.
    Run again onto the same output, it resumes: finished records are skipped, the rest run."""
    import ray
    from ray.data import DataContext

    from batchgen.models import TOY_MODEL, resolve_path

    started = time.time()
    in_fs, in_path = open_fs(spec.input.uri, spec.storage)
    files, fmt = find_inputs(in_fs, in_path, spec.input.format)
    out_fs, out_path = open_fs(spec.output.uri, spec.storage)
    try:
        state = check_output(spec, out_fs, out_path, allow_changed_spec)
    except ResumeRefused as error:
        raise JobFailed(str(error)) from None
    if state == "done":
        return {**json.loads(out_fs.cat_file(f"{out_path.rstrip('/')}/{STATS_FILE}")), "already_complete": True}
    clear_staging(out_fs, out_path)
    skipped = collect_stats(out_fs, out_path, spec.output.format)["records"] if state == "resume" else 0
    write_marker(out_fs, out_path, JOB_FILE, manifest(spec))
    if spec.model.path == TOY_MODEL:
        resolve_path(TOY_MODEL)  # built once here, not by every replica at the same time
    _init_ray()
    context = DataContext.get_current()
    context.enable_progress_bars = False
    progress = _progress_actor(spec.errors.max_fraction, spec.errors.min_records)
    # Duplicates are judged on the whole input, finished records included, so this pass runs unfiltered.
    id_blocks = ray_dataset(in_fs, files, fmt).map_batches(id_columns, batch_format="pyarrow")
    duplicates = find_duplicates(id_blocks.iter_batches(batch_size=None, batch_format="pyarrow"), files)
    stop = threading.Event()
    if report:
        threading.Thread(target=_watch, args=(progress, started, report, stop), daemon=True).start()
    context.checkpoint_config = checkpoint_config(out_fs, out_path)
    try:
        generated = _generation(spec, ray_dataset(in_fs, files, fmt, frozenset(duplicates)), progress, duplicates)
        writer = generated.write_parquet if spec.output.format == "parquet" else generated.write_json
        writer(out_path, filesystem=arrow_fs(out_fs), filename_provider=filename_provider(spec.output.format))
    except Exception:
        verdict = ray.get(progress.snapshot.remote())["verdict"]
        if not verdict:
            raise
        write_marker(out_fs, out_path, STATS_FILE, _stats(spec, files, out_fs, out_path, started, skipped, progress))
        raise JobFailed(verdict) from None
    finally:
        context.checkpoint_config = None
        stop.set()
    stats = _stats(spec, files, out_fs, out_path, started, skipped, progress)
    write_marker(out_fs, out_path, STATS_FILE, stats)
    if stats["records"] and stats["errors"] / stats["records"] > spec.errors.max_fraction:
        raise JobFailed(
            f"{stats['errors']} of {stats['records']} records failed, more than errors.max_fraction "
            f"{spec.errors.max_fraction}: {stats['errors_by_code']}"
        )
    write_marker(out_fs, out_path, SUCCESS_FILE)
    return stats


def _generation(spec: JobSpec, dataset, progress, duplicates):
    """The input dataset through the replica pool, regrouped into file-sized blocks."""
    from ray.data import ActorPoolStrategy

    scaling = spec.scaling
    generated = dataset.map_batches(
        GenerateStage,
        fn_constructor_args=(spec.model_dump_json(), progress, duplicates),
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
    # Regrouping output blocks into file-sized ones goes through Ray's block concatenation, which fills a
    # passthrough field that some JSONL records lack with nulls; Ray's Parquet writer would refuse to put
    # blocks whose columns differ into one file.
    return generated.map_batches(_same, batch_size=spec.output.min_rows_per_file, batch_format="pyarrow")
