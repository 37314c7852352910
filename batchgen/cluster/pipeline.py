"""The distributed job, as a thin Ray Data adapter around the job core:

    input files --scan (ids, passthrough types)--> duplicates, one output schema
    input files --Ray Data read--> blocks --map_batches on an actor pool (one replica each)--> output blocks
                --Ray Data write (streamed, checkpointed)--> output.uri/*.parquet, then _stats.json, _SUCCESS

Nothing is shuffled or materialized: Ray Data streams blocks from the readers through the replicas to the
writers, so the driver's memory stays flat as the input grows. Each input row yields exactly one output
row, an answer or an error row (`blocks`); the prefix (`prefix`) decides whether this run starts, resumes
or is refused; the stats are counted from what was written (`stats`), and `_SUCCESS` is written last,
only when the share of failed records stayed within `errors.max_fraction`.

`run()` takes a replica factory, `(spec, budgeted) -> replica`: anything with `submit(records, ids) ->
futures of rows`, `model_name` and `close()` hosts the engine (tests and benchmarks hand it a stand-in, nothing is patched).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol

from batchgen.engine import placement
from batchgen.core.blocks import assemble, decode, gather, schema
from batchgen.core.flow import EngineDied, RecordPool
from batchgen.core.ledger import CrashLedger, HandedOut
from batchgen.record.openai_batch import dumps, output_lines
from batchgen.core.passthrough import Passthrough
from batchgen.core.prefix import BATCH_OUTPUT, Manifest, OutputPrefix, PrefixRefused
from batchgen.views.progress import Snapshot
from batchgen.record.contract import RecordError
from batchgen.record.rows import error_row
from batchgen.core.scan import scan
from batchgen.spec.job import JobSpec
from batchgen.core.stats import JobStats, Tally
from batchgen.core.storage import InputSet, open_fs, ray_dataset

ENGINE_MAX_CRASHES = 3  # engine deaths a record may run through before it is written as an error row
# The engine's process environment, set through Ray's runtime environment (never this process's): the
# budget processor uses vLLM's V1 logits-processor interface, which Model Runner V2 (the GPU default)
# rejects; tokenizers' own threads fight the engine's for the replica's cores.
ENGINE_ENV = {"VLLM_USE_V2_MODEL_RUNNER": "0", "TOKENIZERS_PARALLELISM": "false"}


class JobFailed(RuntimeError):
    """The job ran (or was refused) and must not be taken as a success; the message says why."""


class TooManyErrors(RuntimeError):
    """Raised in a replica to stop the job early: the share of failed records passed errors.max_fraction."""


class ReplicaLike(Protocol):
    model_name: str

    def submit(self, records: list[dict], ids: list[str]) -> list[Future]:
        """Starts each record; its Future resolves to its row, or raises `EngineDied`."""

    def close(self) -> None: ...


def vllm_replica(spec: JobSpec, budgeted: bool) -> ReplicaLike:
    """The default replica factory: one vLLM engine (`batchgen.engine.replica.Replica`), with the budget processor
    when `budgeted` (a record or the spec's defaults set `max_thinking_tokens`)."""
    from batchgen.engine.replica import Replica

    engine = {**spec.engine, **placement.engine_args(spec.scaling, spec.engine)}
    return Replica(spec.model, engine, spec.budget, spec.defaults, budgets=budgeted, seed=spec.seed)


class GenerateStage:
    """A Ray Data actor hosting one replica. Each call puts its batch's records into the replica's pool and
    returns as many rows as it put in, of whichever records finished first (`batchgen.core.flow`), so the
    engine's load is set by records in flight, not by batches, and no long record holds a batch back."""

    def __init__(self, spec_json: str, progress, duplicates, passthrough: dict, budgeted: bool, replica_factory):
        spec = JobSpec.model_validate_json(spec_json)
        self.replica = replica_factory(spec, budgeted)
        progress.ready.remote(time.time())
        self.progress = progress
        self.duplicates = duplicates
        self.passthrough = Passthrough.from_json(passthrough)
        self.openai_input = spec.input.format == "openai"
        self.pool = RecordPool()
        # Records that were running when an engine died run one at a time, so the one that kills the
        # engine is found and, after ENGINE_MAX_CRASHES deaths, written as an error row instead of looping.
        self.suspects = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchgen-suspects")

    def __call__(self, block):
        import ray

        batch = decode(block, self.passthrough, self.duplicates, openai=self.openai_input)
        model = self.replica.model_name
        added = 0
        fresh = []
        for i, (crashes, handed_out) in enumerate(ray.get(self.progress.begin.remote(batch.ids))):
            if handed_out:  # a retried batch: another call of the replica that died already returned this row
                continue
            added += 1
            if isinstance(batch.records[i], RecordError):
                self.pool.add([error_row(batch.ids[i], model, batch.records[i])], (batch, i))
            elif crashes >= ENGINE_MAX_CRASHES:
                error = RecordError("engine_crash", f"the engine died {crashes} times while this record ran")
                self.pool.add([error_row(batch.ids[i], model, error)], (batch, i))
            elif crashes:
                self.pool.submit(self.suspects.submit(self._alone, batch.records[i], batch.ids[i]), (batch, i))
            else:
                fresh.append(i)
        for i, future in zip(fresh, self.replica.submit([batch.records[i] for i in fresh], [batch.ids[i] for i in fresh])):
            self.pool.submit(future, (batch, i))
        try:
            taken = self.pool.take(added)
        except EngineDied:
            # Only a new process can host a new engine: Ray restarts this actor and retries its batches.
            os._exit(1)
        rows, columns = gather(taken)
        verdict = ray.get(self.progress.taken.remote(
            [record_rows[0]["id"] for record_rows, _ in taken], len(rows), sum(r["error"] is not None for r in rows),
            sum(r["completion_tokens"] for r in rows)))
        if verdict:  # stop the job instead of burning GPU hours on a broken input
            raise TooManyErrors(verdict)
        return assemble(rows, columns, self.passthrough)

    def _alone(self, record: dict, rid: str) -> list[dict]:
        return self.replica.submit([record], [rid])[0].result()


def _init_ray(actor_logs: bool) -> None:
    import ray

    if not ray.is_initialized():
        # RAY_ADDRESS, when set, names the cluster; otherwise a local Ray is started for this job ("local":
        # never a stray cluster that happens to run on this machine). A local Ray gets at least 4 CPU slots:
        # reader tasks, the checkpoint filter, replicas and writers each hold one, and on a 2-core machine
        # they would wait on each other forever; the replicas' real work is the engine's, not the slot's.
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address or "local", num_cpus=None if address else max(4, os.cpu_count() or 1),
                 log_to_driver=actor_logs)


def _progress_actor(max_fraction: float, min_records: int):
    import ray

    @ray.remote(num_cpus=0)
    class Progress:
        """The job's shared counters (`stats.Tally`) and ledgers (`ledger.CrashLedger`, `HandedOut`), for
        replicas in other processes: two round trips per batch."""

        def __init__(self):
            self.tally = Tally(max_fraction, min_records)
            self.ledger = CrashLedger()
            self.handed_out = HandedOut()

        def begin(self, ids: list[str]) -> list[tuple[int, bool]]:
            """Per record: the engine deaths it ran through, and whether its row was already handed out
            (then it is not begun: it must not run again)."""
            handed = [rid in self.handed_out for rid in ids]
            crashes = self.ledger.begin([rid for rid, done in zip(ids, handed) if not done])
            counts = iter(crashes)
            return [(0, True) if done else (next(counts), False) for done in handed]

        def ready(self, at: float) -> None:
            self.tally.ready(at)

        def taken(self, ids: list[str], rows: int, errors: int, tokens: int) -> str:
            """Records (`ids`) whose rows a replica handed to the writer, with their error rows and tokens;
            returns the early-stop verdict ("" to go on)."""
            self.ledger.end(ids)
            self.handed_out.add(ids)
            return self.tally.add(len(ids), rows, errors, tokens)

        def snapshot(self) -> Tally:
            return self.tally

    return Progress.remote()


def _watch(progress, started: float, total: int, done_before: int, report: Callable[[Snapshot], None],
           stop: threading.Event, every: float = 2.0):
    import ray

    while True:
        stopping = stop.wait(every)
        tally, now = ray.get(progress.snapshot.remote()), time.time()
        report(Snapshot(records=tally.records, errors=tally.errors, completion_tokens=tally.completion_tokens,
                        total=total, done_before=done_before, elapsed_s=now - started,
                        generating_s=None if tally.first_ready is None else now - tally.first_ready))
        if stopping:  # the job's last snapshot was just reported
            return


@contextmanager
def _data_context() -> Iterator:
    """Ray Data's context for this job, restored afterwards (the caller's process may run other jobs)."""
    from ray.data import DataContext

    context = DataContext.get_current()
    saved = context.enable_progress_bars, context.checkpoint_config, context.target_max_block_size
    context.enable_progress_bars = False
    # A replica call's rows stay one block, so a record's rows (its samples, its budgets) go into one data
    # file and one checkpoint commit: Ray Data would split a map output past 1.5x this size, and a kill
    # between the two halves' commits would leave a resumed record short of rows. A call's output is at
    # most `batch_size` records' rows, so the block stays bounded.
    context.target_max_block_size = None
    try:
        yield context
    finally:
        context.enable_progress_bars, context.checkpoint_config, context.target_max_block_size = saved


def run(spec: JobSpec, report: Callable[[Snapshot], None] | None = None, allow_changed_spec: bool = False,
        replica_factory: Callable[[JobSpec, bool], ReplicaLike] = vllm_replica, actor_logs: bool = False) -> JobStats:
    """Runs the job to completion and returns its stats; raises JobFailed when it must not count as done
    (refused prefix, early stop, too many failed records). Run again onto the same output, it resumes:
    finished records are skipped, the rest run. `report` gets a progress snapshot every 2 s once the input
    is scanned; `actor_logs` sends the replicas' logs (vLLM's) to this process's stderr."""
    import ray

    from batchgen.engine.models import TOY_MODEL, resolve_path

    started = time.time()
    in_fs, in_path = open_fs(spec.input.uri, spec.storage)
    inputs = InputSet.find(in_fs, in_path, spec.input.format)
    prefix = OutputPrefix(spec.output.uri, spec.storage)
    manifest = Manifest.of(spec, inputs)
    try:
        state = prefix.state(manifest, allow_changed_spec)
    except PrefixRefused as error:
        raise JobFailed(str(error)) from None
    if state == "done":
        return dataclasses.replace(prefix.read_stats(), already_complete=True)
    prefix.clear_staging()
    skipped = prefix.committed_records() if state == "resume" else 0
    prefix.write_manifest(manifest)
    if spec.model.path == TOY_MODEL:
        resolve_path(TOY_MODEL)  # built once here, not by every replica at the same time
    _init_ray(actor_logs)
    stop, watcher = threading.Event(), None
    with _data_context() as context:
        progress = _progress_actor(spec.errors.max_fraction, spec.errors.min_records)
        # Duplicates are judged on the whole input, finished records included, so the scan runs unfiltered.
        scanned = scan(inputs, ray_dataset(in_fs, inputs, scan=True).iter_batches(batch_size=None, batch_format="pyarrow"))
        prefix.write_manifest(manifest, scanned.records)
        if report:
            watcher = threading.Thread(target=_watch, args=(progress, started, scanned.records, skipped, report, stop),
                                       daemon=True)
            watcher.start()
        context.checkpoint_config = prefix.checkpoint_config()
        try:
            # A replica that dies may leave records that no retried batch holds any more (`flow`): another
            # pass over what the checkpoint has not committed runs them, while passes make progress.
            # The checkpoint's ids are read once per pass (its count at the start is `skipped`'s).
            before, committed = -1, skipped
            while committed < scanned.records:
                if committed == before:
                    raise JobFailed(f"{scanned.records - committed} records have no row after a pass that added "
                                    f"none; run the job again to resume them")
                before = committed
                _generate_and_write(spec, in_fs, inputs, prefix, scanned, progress, replica_factory)
                committed = prefix.committed_records()
        except Exception:
            verdict = ray.get(progress.snapshot.remote()).verdict
            if not verdict:
                raise
            prefix.write_stats(_stats(spec, inputs, prefix, started, skipped, prefix.committed_records(), progress))
            raise JobFailed(verdict + _see_errors(spec)) from None
        finally:
            stop.set()
            if watcher:
                watcher.join(timeout=30)
    stats = _stats(spec, inputs, prefix, started, skipped, committed, progress)
    prefix.write_stats(stats)
    if failed := stats.failed_share(spec.errors.max_fraction):
        raise JobFailed(failed + _see_errors(spec))
    if spec.output.format == "openai":
        prefix.write_lines(BATCH_OUTPUT, (dumps(line) for line in output_lines(prefix.rows(), spec.name, int(started))))
    prefix.write_success()
    return stats


def _see_errors(spec: JobSpec) -> str:
    return (f". See the error rows by code with `batchgen inspect {spec.output.uri}`; fix the input, or raise "
            "errors.max_fraction, and run again: finished records are kept")


def _generate_and_write(spec: JobSpec, in_fs, inputs: InputSet, prefix: OutputPrefix, scanned, progress,
                        replica_factory) -> None:
    """One pass: the input records the checkpoint has not committed, through the replicas, to the prefix."""
    budgeted = scanned.budgeted or spec.defaults.max_thinking_tokens is not None
    generated = _generation(spec, ray_dataset(in_fs, inputs, frozenset(scanned.duplicates)), progress,
                            scanned.duplicates, scanned.passthrough, budgeted, replica_factory)
    data_format = "jsonl" if spec.output.format == "jsonl" else "parquet"  # openai: Parquet, then the lines
    options = dict(filesystem=prefix.arrow_fs(), min_rows_per_file=spec.output.min_rows_per_file,
                   filename_provider=prefix.filename_provider(data_format))
    if data_format == "parquet":
        generated.write_parquet(prefix.path, schema=schema(scanned.passthrough), **options)
    else:
        generated.write_json(prefix.path, **options)


def _stats(spec: JobSpec, inputs: InputSet, prefix: OutputPrefix, started: float, skipped: int, records: int,
           progress) -> JobStats:
    import ray

    tally = ray.get(progress.snapshot.remote())
    # Counted from what was written, not from what the replicas reported: retried work would count twice.
    return JobStats.build(
        job=spec.name, model=spec.model.path, input_files=len(inputs.files), files=len(prefix.data_files()),
        counts=prefix.row_counts(), records=records, skipped=skipped, started=started,
        first_ready=tally.first_ready, generated_tokens=tally.completion_tokens, now=time.time())


def _generation(spec: JobSpec, dataset, progress, duplicates, passthrough: Passthrough, budgeted: bool,
                replica_factory):
    """The input dataset through the replica pool."""
    from ray.data import ActorPoolStrategy

    scaling = spec.scaling
    # Ray Data gives an actor task whole input blocks and runs a task's batches one after another, so a
    # 250-row block would be four calls in a row, not four at once: as the input's last blocks are handed
    # out, fewer calls run and the engine empties long before the input ends. Blocks of exactly one batch
    # (a streaming repartition: no shuffle, nothing materialized) make every call its own task.
    return dataset.repartition(target_num_rows_per_block=scaling.batch_size, strict=True).map_batches(
        GenerateStage,
        fn_constructor_args=(spec.model_dump_json(), progress, duplicates, passthrough.to_json(), budgeted,
                             replica_factory),
        batch_size=scaling.batch_size,
        batch_format="pyarrow",
        # Several calls run in each actor at once, on threads, sharing its record pool (`batchgen.core.flow`): as
        # many as keep `records_in_flight` records on the engine (`ScalingSpec.batches_in_flight`).
        compute=ActorPoolStrategy(
            size=scaling.replicas,
            max_tasks_in_flight_per_actor=scaling.batches_in_flight,
            max_concurrent_calls_per_actor=scaling.batches_in_flight,
            enable_true_multi_threading=True,
        ),
        **placement.ray_args(scaling),  # GPUs, or a placement group per replica for tensor parallelism
        runtime_env={"env_vars": {**ENGINE_ENV, "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING")}},
    )
