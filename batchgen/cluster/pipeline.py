"""The distributed job, as a thin Ray Data adapter around the job core: `run` is the job's steps.

    input files --scan (ids, passthrough types)--> duplicate ids, one output schema
    input files --Ray Data read--> blocks --map_batches on an actor pool (one replica each)--> output blocks
                --Ray Data write (streamed, checkpointed)--> output.uri/*.parquet, then _stats.json, _SUCCESS

Nothing is shuffled or materialized: Ray Data streams blocks from the readers through the replicas to the
writers, so the driver's memory stays flat as the input grows. Each input row yields exactly one output
row, an answer or an error row (`blocks`); the prefix (`prefix`) decides whether this run starts, resumes
or is refused; the stats are counted from what was written (`stats`), and `_SUCCESS` is written last,
only when the share of failed records stayed within `errors.max_fraction`.

`run()` takes a replica factory, `(spec, budgeted) -> replica`: anything with `submit(records, ids) ->
futures of rows`, `model_name` and `close()` hosts the engine (tests and benchmarks hand it a stand-in, nothing is patched).

Owns the job's steps (prefix state, scan, generation passes until the checkpoint holds every record, stats,
markers), the Ray Data context and actor pool they run in, and the default replica factory. The replica
stage and the progress actor are `stage`; Ray's datasource and file names are `ray_io`, its checkpoint
`checkpoint`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from batchgen.cluster.ray_io import filename_provider, json_lines_datasink, ray_dataset
from batchgen.cluster.stage import EngineRefused, GenerateStage, ReplicaLike, progress_actor, watch
from batchgen.core.blocks import Decoder, schema
from batchgen.lake.reading import job_inputs
from batchgen.core.grades import graded, reference_column
from batchgen.core.prefix import BATCH_OUTPUT, CommittedRecords, Manifest, OutputPrefix, PrefixRefused
from batchgen.core.prompts import prompt_plan
from batchgen.core.scan import ScanResult, scan
from batchgen.core.schedule import ordered_block
from batchgen.core.stats import JobStats, prefix_cache
from batchgen.core.failures import raised_in
from batchgen.core.storage import InputSet, unreachable
from batchgen.lake.iceberg import JOB_COLUMN, FilesSchema
from batchgen.lake.types import to_lake
from batchgen.engine import placement
from batchgen.record.openai_batch import dumps, output_lines
from batchgen.record.templates import PromptPlan
from batchgen.spec.job import TABLE_SCHEME, JobSpec
from batchgen.spec.placement import cluster_need
from batchgen.views.progress import Snapshot

__all__ = ["ENGINE_ENV", "JobFailed", "ReplicaLike", "run", "vllm_replica"]

# The engine's process environment, set through Ray's runtime environment (never this process's): the
# budget processor uses vLLM's V1 logits-processor interface, which Model Runner V2 (the GPU default)
# rejects; tokenizers' own threads fight the engine's for the replica's cores.
ENGINE_ENV = {"VLLM_USE_V2_MODEL_RUNNER": "0", "TOKENIZERS_PARALLELISM": "false"}


@contextmanager
def freed_memory_returned(every_s: float = 2.0) -> Iterator[None]:
    """While the block runs, hands the memory this process's C heap has freed back to the OS every
    `every_s` seconds (glibc's `malloc_trim(0)`, from a daemon thread; nothing where libc is not glibc).

    Why by hand: Ray's driver-side bookkeeping allocates and frees per block and per task, and glibc keeps
    what is freed in its arenas' free lists unless asked; the driver's RSS then grows with the blocks a job
    has run through though nothing is held (stand-in job, 512-row blocks, anonymous RSS from 100k to 400k
    records: +28 MiB without, +1 MiB at the end with; `benchmarks/scale.py memory`). No setting of Ray or
    of glibc's tunables (`MALLOC_ARENA_MAX`, the trim threshold) does this: the threshold trims only the
    top of the main heap."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        yield
        return
    stop = threading.Event()

    def trimming() -> None:
        while not stop.wait(every_s):
            trim(0)

    threading.Thread(target=trimming, daemon=True, name="batchgen-malloc-trim").start()
    try:
        yield
    finally:
        stop.set()


class JobFailed(RuntimeError):
    """The job ran (or was refused) and must not be taken as a success; the message says why."""


def vllm_replica(spec: JobSpec, budgeted: bool) -> ReplicaLike:
    """The default replica factory: one vLLM engine (`batchgen.engine.replica.Replica`), with the budget processor
    when `budgeted` (a record or the spec's defaults set `max_thinking_tokens`)."""
    from batchgen.engine.replica import Replica

    engine = {**spec.engine, **placement.engine_args(spec.scaling, spec.engine)}
    return Replica(spec.model, engine, spec.budget, spec.defaults, budget_processor=budgeted, seed=spec.seed)


def _init_ray(actor_logs: bool, scaling) -> None:
    import ray

    if not ray.is_initialized():
        # RAY_ADDRESS, when set, names the cluster; otherwise a local Ray is started for this job ("local":
        # never a stray cluster that happens to run on this machine). A local Ray gets the CPU slots the job
        # holds at once (`spec.placement.cluster_need`: its replicas', the checkpoint filter's, its tasks'), at
        # least 4: on a 2-core machine readers, the filter, replicas and writers would otherwise wait on each
        # other forever; the replicas' real work is the engine's, not the slot's.
        address = os.environ.get("RAY_ADDRESS")
        slots = max(4, os.cpu_count() or 1, math.ceil(cluster_need(scaling)["CPU"]))
        ray.init(address=address or "local", num_cpus=None if address else slots, log_to_driver=actor_logs)


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
    (refused prefix, early stop, too many failed records, a replica's engine that did not start, the input
    or output store no longer answering: each a line that says what to do). Run again onto the same output,
    it resumes: finished records are skipped, the rest run. `report` gets a progress snapshot every 2 s once
    the input is scanned; `actor_logs` sends the replicas' logs (vLLM's) to this process's stderr."""
    try:
        return _run(spec, report, allow_changed_spec, replica_factory, actor_logs)
    except JobFailed:
        raise
    except Exception as error:
        if failure := _why_it_ended(error, spec):
            raise failure from error
        raise


def _why_it_ended(error: Exception, spec: JobSpec) -> JobFailed | None:
    """The job's end as a line a user can act on, for the causes outside the job that a user can fix; None
    for others (the caller shows their root cause)."""
    kept = "what the job committed is kept, and the same command run again resumes"
    if refused := raised_in(error, EngineRefused):
        return JobFailed(f"{refused}. Fix the engine's settings (engine:, scaling:) or the node; {kept}")
    for side, uri in (("output", spec.output.uri), ("input", spec.input.uri)):
        if uri.startswith(TABLE_SCHEME):
            continue  # a table's catalog: its own errors say what happened
        if problem := unreachable(uri, spec.storage):
            return JobFailed(f"the {side} store stopped answering ({uri}: {problem}): {kept} once it answers")
    return None


def _run(spec: JobSpec, report, allow_changed_spec: bool, replica_factory, actor_logs: bool) -> JobStats:
    import ray

    from batchgen.cluster.checkpoint import checkpoint_config

    from batchgen.engine.models import TOY_MODELS, resolve_path

    started = time.time()
    prefix = OutputPrefix(spec.output.uri, spec.storage)
    # A table's snapshot as the output recorded it: a resume reads what the first run read.
    in_fs, inputs = job_inputs(spec, (prefix.read_manifest() or {}).get("input"))
    plan = prompt_plan(spec)
    manifest = Manifest.of(spec, inputs, plan)
    try:
        state = prefix.state(manifest, allow_changed_spec)
    except PrefixRefused as error:
        raise JobFailed(str(error)) from None
    if state == "done":
        if spec.output.format == "iceberg":
            _table_commits(spec, prefix, manifest).finish()  # the table gets what it lacks, usually nothing
        return dataclasses.replace(prefix.read_stats(), already_complete=True)
    prefix.clear_staging()
    skipped = prefix.committed_records() if state == "resume" else 0
    prefix.write_manifest(manifest)
    if spec.model.path in TOY_MODELS:
        resolve_path(spec.model.path)  # built once here, not by every replica at the same time
    _init_ray(actor_logs, spec.scaling)
    stop, watcher = threading.Event(), None
    with _data_context() as context, freed_memory_returned():
        progress = progress_actor(spec.errors.max_fraction, spec.errors.min_records)
        # Duplicates are judged on the whole input, finished records included, so the scan runs unfiltered.
        scanned = scan(inputs, ray_dataset(in_fs, inputs, scan=True).iter_batches(batch_size=None, batch_format="pyarrow"))
        # A grade reference the input lacks refuses the job here, before any engine starts.
        reference = reference_column(spec.grade, scanned.passthrough) if spec.grade else None
        prefix.write_manifest(manifest, scanned.records)
        commits, lake = None, None
        if spec.output.format == "iceberg":
            # Created, evolved or refused here, before any engine starts; then committed into as the job goes.
            commits = _table_commits(spec, prefix, manifest)
            lake = commits.table.prepare(schema(scanned.passthrough), spec.output.table.partition_by)
            commits.start()
        if report:
            watcher = threading.Thread(target=watch, daemon=True, args=(
                progress, CommittedRecords(prefix).count, spec.scaling, started, scanned.records, skipped, report, stop))
            watcher.start()
        context.checkpoint_config = checkpoint_config(prefix, scanned.positions, scanned.ids.committed)
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
                _generate_and_write(spec, in_fs, inputs, prefix, scanned, plan, progress, replica_factory, reference,
                                    lake)
                committed = prefix.committed_records()
            if commits:
                commits.finish()
        except Exception:
            if commits:
                commits.finish_quietly()  # what the prefix committed reaches the table, whatever ended the job
            verdict = ray.get(progress.snapshot.remote()).verdict
            if not verdict:
                raise
            prefix.write_stats(_stats(spec, inputs, prefix, started, skipped, prefix.committed_records(), progress))
            raise JobFailed(verdict + _see_errors(spec)) from None
        finally:
            stop.set()
            scanned.close()
            if watcher:
                watcher.join(timeout=30)
    stats = _stats(spec, inputs, prefix, started, skipped, committed, progress)
    if commits:
        stats = dataclasses.replace(stats, table={"identifier": spec.output.table.identifier,
                                                  "commits": commits.commits})
    prefix.write_stats(stats)
    if failed := stats.failed_share(spec.errors.max_fraction):
        raise JobFailed(failed + _see_errors(spec))
    if spec.output.format == "openai":
        prefix.write_lines(BATCH_OUTPUT, (dumps(line) for line in output_lines(prefix.rows(), spec.name, int(started))))
    prefix.write_success()
    return stats


def _table_commits(spec: JobSpec, prefix: OutputPrefix, manifest: Manifest):
    """The job's commits into its table (`lake.commits`), at the spec's cadence, its snapshots named."""
    from batchgen.lake.commits import TableCommits
    from batchgen.lake.iceberg import IcebergTable, snapshot_properties

    table = spec.output.table
    properties = snapshot_properties(spec.name, manifest.fingerprint, prefix.url(prefix.path))
    return TableCommits(IcebergTable(table, spec.storage), prefix, properties, table.commit_every_rows,
                        table.commit_every_s)


def _see_errors(spec: JobSpec) -> str:
    return (f". See the error rows by code with `batchgen inspect {spec.output.uri}`; fix the input, or raise "
            "errors.max_fraction, and run again: finished records are kept")


def _generate_and_write(spec: JobSpec, in_fs, inputs: InputSet, prefix: OutputPrefix, scanned: ScanResult,
                        plan: PromptPlan | None, progress, replica_factory, reference: str | None,
                        lake: FilesSchema | None = None) -> None:
    """One pass: the input records the checkpoint has not committed, through the replicas, to the prefix;
    graded against the output column `reference` where the spec grades (`core.grades.reference_column`);
    for a table (`lake`), each block in the table's types with the job's name (`lake.types.to_lake`)."""
    import ray

    ray.get(progress.new_pass.remote(scanned.positions.size))
    budgeted = scanned.budgeted or spec.defaults.max_thinking_tokens is not None
    decoder = Decoder(scanned.passthrough, scanned.duplicate_errors, inputs.format == "openai", inputs.columns, plan,
                      scanned.positions)
    generated = replica_stage(spec, ray_dataset(in_fs, inputs, frozenset(scanned.duplicate_errors)), progress,
                              decoder, budgeted, replica_factory)
    if spec.grade:
        # Graded in the write tasks (Ray Data fuses this map with the write), not on the replicas' actors:
        # grading never takes the engine's CPU, and math-verify's timeouts (signal alarms) need a task's
        # main thread, which the replicas' threaded calls are not.
        generated = generated.map_batches(graded, batch_size=None, batch_format="pyarrow", zero_copy_batch=True,
                                          fn_kwargs={"grade": spec.grade, "reference": reference})
    if lake:
        generated = generated.map_batches(to_lake, batch_size=None, batch_format="pyarrow", zero_copy_batch=True,
                                          fn_kwargs={"schema": lake.schema, "constants": {JOB_COLUMN: spec.name}})
    data_format = "jsonl" if spec.output.format == "jsonl" else "parquet"  # openai, iceberg: Parquet
    options = dict(filesystem=prefix.arrow_fs(), min_rows_per_file=spec.output.min_rows_per_file,
                   filename_provider=filename_provider(data_format))
    if data_format == "parquet":
        generated.write_parquet(prefix.path, schema=lake.schema if lake else schema(scanned.passthrough), **options)
    else:
        generated.write_datasink(json_lines_datasink(prefix.path, scanned.passthrough.json_text, **options))


def _stats(spec: JobSpec, inputs: InputSet, prefix: OutputPrefix, started: float, skipped: int, records: int,
           progress) -> JobStats:
    import ray

    tally = ray.get(progress.snapshot.remote())
    # Counted from what was written, not from what the replicas reported: retried work would count twice.
    stats = JobStats.build(
        job=spec.name, model=spec.model.path, input_files=len(inputs.files), files=len(prefix.data_files()),
        counts=prefix.row_counts(), records=records, skipped=skipped, started=started,
        first_ready=tally.first_ready, generated_tokens=tally.completion_tokens, now=time.time())
    return dataclasses.replace(stats, prefix_cache=prefix_cache(tally.engines))


def replica_stage(spec: JobSpec, dataset, progress, decoder: Decoder, budgeted: bool, replica_factory):
    """`dataset` (blocks of input rows, as `reading.read_stream` makes them) through the pool of replicas:
    a Ray Dataset of output blocks (`blocks.schema(decoder.passthrough)`), lazily. `progress`: the job's
    progress actor (`stage.progress_actor`); `budgeted`: the replicas register the budget processor."""
    from ray.data import ActorPoolStrategy

    scaling = spec.scaling
    if scaling.order == "scheduled":
        # Each block of the read in the order its records should run: no shuffle, nothing held past the block.
        # Ray Data fuses it into the read's tasks on a first pass; on a resumed or later one the checkpoint's
        # filter (an actor stage) sits between them and it runs as tasks of its own. The decoder goes
        # without the scan's positions and duplicates, which the order does not read.
        light = dataclasses.replace(decoder, positions=None, duplicate_errors={})
        dataset = dataset.map_batches(ordered_block, batch_size=None, batch_format="pyarrow", zero_copy_batch=True,
                                      fn_kwargs={"decoder": light, "defaults": spec.defaults,
                                                 "grace_tokens": spec.budget.grace_tokens})
    # Ray Data gives an actor task whole input blocks and runs a task's batches one after another, so a
    # 250-row block would be four calls in a row, not four at once: as the input's last blocks are handed
    # out, fewer calls run and the engine empties long before the input ends. Blocks of exactly one batch
    # (a streaming repartition: no shuffle, nothing materialized) make every call its own task.
    return dataset.repartition(target_num_rows_per_block=scaling.batch_size, strict=True).map_batches(
        GenerateStage,
        fn_constructor_args=(spec.model_dump_json(), progress, decoder, budgeted, replica_factory),
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
