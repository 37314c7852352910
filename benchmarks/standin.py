"""A STAND-IN ENGINE for the benchmarks of scale (occupancy, streaming memory, replicas): no model, no vLLM.

It is GPU-like on purpose: continuous batching with a fixed time per decode step for up to `max_num_seqs`
sequences (decode is memory-bound on a GPU, so a step costs about the same for 10 sequences as for 200),
records joining and leaving at step boundaries, each record running for its `max_tokens` steps. It sleeps
instead of computing, so eight replicas fit on two cores and what is measured is batchgen around the
engine. A job gets it as its replica factory (`run(spec, replica_factory=StandInReplica)`); everything
else in the job runs for real: readers, actor pool, checkpointing, writers. It logs its occupancy (running
sequences per step) as benchmark events. Never used by a test that claims to test generation.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import Future

from batchgen.record.contract import RecordError, normalize
from batchgen.record.rows import answer_row, error_row
from batchgen.spec.job import JobSpec
from benchmarks.events import log_event

STEP_SECONDS = "BATCHGEN_STANDIN_STEP_SECONDS"  # one decode step, for all running sequences at once
DEFAULT_MAX_TOKENS = 16


class StandInReplica:
    """`submit(records, ids)` -> one Future per record, resolved (to its one row: samples are not
    modelled) when its last step ran."""

    def __init__(self, spec: JobSpec, budgeted: bool = False):  # budgets are not modelled: lengths are given
        self.model_name = f"stand-in:{spec.model.path}"
        self.defaults = spec.defaults
        self.max_num_seqs = int(spec.engine.get("max_num_seqs", 256))
        self.step_seconds = float(os.environ.get(STEP_SECONDS, "0.02"))
        self._waiting: deque = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._steps, daemon=True).start()

    def submit(self, records: list[dict], ids: list[str]) -> list[Future]:
        futures = []
        for raw, rid in zip(records, ids):
            future = Future()
            request = normalize(raw, self.defaults, row_id=rid)
            if isinstance(request, RecordError):
                future.set_result([error_row(rid, self.model_name, request)])
            else:
                with self._lock:
                    self._waiting.append((future, rid, request, request.max_tokens or DEFAULT_MAX_TOKENS))
            futures.append(future)
        log_event("submitted", len(records))
        return futures

    def _steps(self) -> None:
        running: list[list] = []  # [future, id, request, tokens left, tokens in all]
        occupancy, window_start = [], time.time()
        while not self._stop.is_set():
            with self._lock:
                while self._waiting and len(running) < self.max_num_seqs:
                    future, rid, request, tokens = self._waiting.popleft()
                    running.append([future, rid, request, tokens, tokens])
            if running:
                occupancy.append(len(running))
            time.sleep(self.step_seconds)
            for seq in running:
                seq[3] -= 1
            for future, rid, request, _, tokens in [s for s in running if s[3] <= 0]:
                future.set_result([answer_row(
                    record_id=rid, model=self.model_name, mode="off", reasoning_text=None,
                    content=" ".join(["token"] * min(tokens, 64)), finish_reason="length", reasoning_end=None,
                    prompt_tokens=len(str(request.messages[-1]["content"]).split()), reasoning_tokens=0,
                    completion_tokens=tokens)])
            running = [s for s in running if s[3] > 0]
            if time.time() - window_start >= 0.5 and occupancy:  # one event per half second, not per step
                # With it, the stand-in's own CPU so far: the pipeline benchmark counts everything but it.
                log_event("occupancy", sum(occupancy) / len(occupancy) / self.max_num_seqs, len(occupancy),
                          time.thread_time())
                occupancy, window_start = [], time.time()

    def close(self) -> None:
        self._stop.set()


def install() -> None:
    """Ray's worker_process_setup_hook: instruments the readers (no behaviour changed) so that every worker
    logs when it finishes reading an input file."""
    import batchgen.core.reading

    reader = batchgen.core.reading.read_stream

    def logged(stream, path, *args, **kwargs):
        yield from reader(stream, path, *args, **kwargs)
        log_event("read", path)

    batchgen.core.reading.read_stream = logged
