"""The job's Ray actors: the Ray Data actor stage that hosts one replica (`GenerateStage`), the progress
actor every replica reports to (`progress_actor`), and the driver's loop that reads it (`watch`).

A stage decodes its block (`batchgen.core.blocks`), runs the records through the replica's record pool
(`batchgen.core.flow`) and suspect lane (`batchgen.core.suspects`), and writes the record found to kill
its engine as an error row; the progress actor keeps the job's shared tally and ledgers (`batchgen.core.stats`,
`batchgen.core.ledger`), so the early stop (`TooManyErrors`) and the crash counts hold across replicas.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

from batchgen.core.blocks import Decoder, assemble, gather
from batchgen.core.deadline import in_thread
from batchgen.core.failures import root_cause
from batchgen.core.flow import EngineDied, RecordPool
from batchgen.core.ledger import CrashLedger, HandedOut
from batchgen.core.suspects import KILLS_ALONE, MAX_DEATHS, SuspectLane
from batchgen.core.stats import Tally
from batchgen.record.contract import RecordError
from batchgen.record.rows import error_row
from batchgen.spec.job import JobSpec
from batchgen.spec.placement import shortfall
from batchgen.views.progress import Snapshot

UNANSWERED_S = 10.0  # seconds the progress actor may take to answer before the display says the cluster is lost


class TooManyErrors(RuntimeError):
    """Raised in a replica to stop the job early: the share of failed records passed errors.max_fraction."""


class EngineRefused(RuntimeError):
    """Raised in a replica whose engine did not start (its factory raised): the job ends, saying on which
    node and the root cause, instead of Ray's traceback of the actor's creation."""


class ReplicaLike(Protocol):
    """What hosts the engine in a stage: `submit(records, ids) -> futures of rows`, `model_name`, `close()`
    (`batchgen.engine.replica.Replica`; tests and benchmarks hand a stand-in)."""

    model_name: str

    def submit(self, records: list[dict], ids: list[str]) -> list[Future]:
        """Starts each record; its Future resolves to its row, or raises `EngineDied`."""

    def close(self) -> None:
        """Stops the engine."""


class GenerateStage:
    """A Ray Data actor hosting one replica. Each call puts its batch's records into the replica's pool and
    returns as many rows as it put in, of whichever records finished first (`batchgen.core.flow`), so the
    engine's load is set by records in flight, not by batches, and no long record holds a batch back."""

    def __init__(self, spec_json: str, progress, decoder: Decoder, budgeted: bool, replica_factory):
        import ray

        spec = JobSpec.model_validate_json(spec_json)
        try:
            self.replica = replica_factory(spec, budgeted)
        except Exception as error:
            node = ray.util.get_node_ip_address()
            raise EngineRefused(f"a replica's engine did not start on node {node}: {root_cause(error)}") from error
        progress.ready.remote(time.time())
        self.progress = progress
        self.decode = decoder
        self.pool = RecordPool()
        # Everything goes onto the engine through the lane: records that were on an engine when it died are
        # narrowed down to the one that kills it (`batchgen.core.suspects`), and at a death the lane knows
        # which records the engine died with.
        self.lane = SuspectLane(self.replica.submit, spec.scaling.records_in_flight)
        self.begun: set[str] = set()  # records this process began and has not handed out
        self.begun_lock = threading.Lock()
        self.dying = threading.Lock()

    def __call__(self, block):
        import ray

        batch = self.decode(block)
        model = self.replica.model_name
        begun, fresh, suspects = [], [], []
        for i, (deaths, alone, handed_out) in enumerate(ray.get(self.progress.begin.remote(batch.ids, batch.positions))):
            if handed_out:  # a retried batch: another call of the replica that died already returned this row
                continue
            begun.append(batch.ids[i])
            if isinstance(batch.records[i], RecordError):
                self.pool.add([error_row(batch.ids[i], model, batch.records[i])], (batch, i))
            elif alone >= KILLS_ALONE or deaths >= MAX_DEATHS:
                how = f"{alone} times while this record ran alone on it" if alone >= KILLS_ALONE else \
                    f"{deaths} times while this record ran"
                error = RecordError("engine_crash", f"the engine died {how}")
                self.pool.add([error_row(batch.ids[i], model, error)], (batch, i))
            elif deaths:
                suspects.append((i, deaths))
            else:
                fresh.append(i)
        with self.begun_lock:
            self.begun.update(begun)
        futures = self.lane.suspects([batch.records[i] for i, _ in suspects], [batch.ids[i] for i, _ in suspects],
                                     [deaths for _, deaths in suspects])
        futures += self.lane.fresh([batch.records[i] for i in fresh], [batch.ids[i] for i in fresh])
        for i, future in zip([i for i, _ in suspects] + fresh, futures):
            self.pool.submit(future, (batch, i))
        try:
            taken = self.pool.take(len(begun))
        except EngineDied:
            self._died()
        rows, columns = gather(taken)
        ids = [record_rows[0]["id"] for record_rows, _ in taken]
        positions = None if batch.positions is None else [b.positions[i] for _, (b, i) in taken]
        with self.begun_lock:
            self.begun.difference_update(ids)
        verdict = ray.get(self.progress.taken.remote(ids, positions, len(rows), sum(r["error"] is not None for r in rows),
                                                     sum(r["completion_tokens"] for r in rows), self.engine_tokens()))
        if verdict:  # stop the job instead of burning GPU hours on a broken input
            raise TooManyErrors(verdict)
        return assemble(rows, columns, self.decode.passthrough)

    def engine_tokens(self) -> tuple[str, dict] | None:
        """This replica's engine counters so far (`Replica.engine_tokens`: prompt, cached and generated
        tokens), named by its actor; None for a replica that keeps none (the pipeline tests' stand-in)."""
        import ray

        counts = getattr(self.replica, "engine_tokens", None)
        return None if counts is None else (ray.get_runtime_context().get_actor_id()[:12], dict(counts))

    def _died(self) -> None:
        """The engine is gone: tells the progress actor which records it died with (and which this process
        began without starting them: no death for those), then ends the process. Only a new process can
        host a new engine: Ray restarts this actor and retries its batches."""
        import ray

        # Every call waiting on the engine sees its death: one reports it, once, and ends the process.
        self.dying.acquire()
        on_engine = self.lane.on_engine()
        with self.begun_lock:
            waiting = sorted(self.begun.difference(on_engine))
        try:
            ray.get(self.progress.died.remote(on_engine, waiting), timeout=10)
        finally:  # unsaid, each record this process began counts one death (`CrashLedger`)
            os._exit(1)

def progress_actor(max_fraction: float, min_records: int):
    """Starts the job's progress actor (no CPU slot): its tally judges the early stop with `max_fraction`
    and `min_records` (`errors` in the spec). Records with positions (a job's, after its input scan) whose
    row was handed out in this pass are a retried batch's and are not run again; without positions
    (`batchgen.generate`: a Dataset may repeat ids) every row runs."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    class Progress:
        """The job's shared counters (`stats.Tally`) and ledgers (`ledger.CrashLedger`, `HandedOut`), for
        replicas in other processes: two round trips per batch. Its memory: one bit per input record
        (`HandedOut`), and ids only for records running or on an engine that died."""

        def __init__(self):
            self.tally = Tally(max_fraction, min_records)
            self.ledger = CrashLedger()
            self.handed_out = HandedOut(0)

        def begin(self, ids: list[str], positions: list[int] | None) -> list[tuple[int, int, bool]]:
            """Per record: the engine deaths it was on the engine for, those alone on it, and whether its row
            was already handed out (then it is not begun: it must not run again)."""
            handed = [False] * len(ids) if positions is None else self.handed_out.contains(positions)
            counts = iter(self.ledger.begin([rid for rid, done in zip(ids, handed) if not done]))
            return [(0, 0, True) if done else (*next(counts), False) for done in handed]

        def died(self, on_engine: list[str], waiting: list[str]) -> None:
            """A replica's engine died with `on_engine` on it; `waiting` it had begun but not started."""
            self.ledger.died(on_engine, waiting)

        def new_pass(self, records: int) -> None:
            """Forgets the handed-out records: a pass runs only what the checkpoint has not committed, so a
            record handed out in an earlier pass whose block never reached the writer (its replica died
            between handing it out and returning) must run again, not be skipped for good. `records`: the
            input's positions (`Positions.size`)."""
            self.handed_out = HandedOut(records)

        def ready(self, at: float) -> None:
            """A replica's engine is up (the first one starts the generation clock)."""
            self.tally.ready(at)

        def taken(self, ids: list[str], positions: list[int] | None, rows: int, errors: int, tokens: int,
                  engine: tuple[str, dict] | None = None) -> str:
            """Records (`ids`, at `positions`) whose rows a replica handed to the writer, with their error rows
            and tokens, and the replica's engine counters so far (`engine`: its name and
            `Replica.engine_tokens`); returns the early-stop verdict ("" to go on)."""
            self.ledger.end(ids)
            if positions is not None:
                self.handed_out.add(positions)
            if engine:  # counters only grow: a call's older snapshot arriving late keeps the newer one
                name, counts = engine
                seen = self.tally.engines.get(name, {})
                self.tally.engines[name] = {k: max(v, seen.get(k, 0)) for k, v in counts.items()}
            return self.tally.add(len(ids), rows, errors, tokens)

        def snapshot(self) -> Tally:
            """The tally so far."""
            return self.tally

    # On the driver's node: an actor elsewhere would die with its node (a plain actor is not restarted) and
    # take the job with it, while the driver's node going down ends the job anyway.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return Progress.options(scheduling_strategy=here).remote()


def watch(progress, committed: Callable[[], int], scaling, started: float, total: int, done_before: int,
          report: Callable[[Snapshot], None], stop: threading.Event, every: float = 2.0) -> None:
    """Reports a progress snapshot every `every` seconds until `stop` is set, and once more then (a driver
    thread's loop over the progress actor). Records count as done once the output has committed them
    (`committed()`, all runs'): rows a replica handed out can still be lost with its node. Counting lists
    the checkpoint, so it runs at most every tenth of the time since the last count took, however many
    files the checkpoint holds. While the cluster's live nodes cannot hold the job (`scaling`'s need), the
    snapshot says what it waits for; when the cluster stops answering (its head lost: Ray ends the driver
    about a minute later, with no word of its own), it says that, what is kept and how to resume."""
    import ray

    def ask() -> tuple[Tally, str]:
        return ray.get(progress.snapshot.remote()), shortfall(scaling, ray.cluster_resources())

    records, counted_at, count_s, tally, asking = done_before, 0.0, 0.0, Tally(0, 1), None
    while True:
        stopping = stop.wait(every)
        if stopping or time.monotonic() - counted_at >= 10 * count_s:
            counted_at = time.monotonic()
            records = committed()
            count_s = time.monotonic() - counted_at
        # A lost head can hold a call to Ray for a minute or more: the question waits in a thread of its own,
        # and the display says the cluster is lost while no answer comes.
        asking = asking or in_thread(ask, "batchgen-cluster-question")
        try:
            tally, waiting = asking.result(timeout=UNANSWERED_S)
            asking = None
        except Exception as error:  # no answer in time, or the cluster's own error
            asking = None if asking.done() else asking
            waiting = (f"the Ray cluster stopped answering ({type(error).__name__}): if its head is lost this run "
                       f"ends; what it committed is kept, and the same command run again on a live cluster resumes")
        now = time.time()
        report(Snapshot(records=records - done_before, errors=tally.errors, completion_tokens=tally.completion_tokens,
                        total=total, done_before=done_before, elapsed_s=now - started,
                        generating_s=None if tally.first_ready is None else now - tally.first_ready, waiting=waiting))
        if stopping:  # the job's last snapshot was just reported
            return

