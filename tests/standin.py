"""A deterministic stand-in replica for the pipeline-logic tests (`tests/cluster/test_stage.py`): no model,
no vLLM, only the record contract and the row contract. A job gets it as its replica factory
(`run(spec, replica_factory=StandIn)`); everything else runs for real (Ray Data, the actor pool, the
progress actor and its ledgers, checkpointing, writers).

Each record is answered from its own fields (passed through to its row like any other field):

- `delay`: seconds before its row (or its engine death) arrives, so batches overlap on the replica;
- `die`: "once" kills the engine the first time the record runs in any process (a marker file named after
  the record's id, in the directory the spec's `engine.standin_markers` names, says it already did);
  "always" kills it every time. A death fails the Future of every record on the engine with `EngineDied`,
as a real replica's does.

A spec's `engine.standin_refuse` makes every replica's engine refuse to start, raising a RuntimeError with
that message, as a vLLM engine that cannot get its memory does.

A valid record's row is an answer whose content is `echo: <its last message>`, so a test can tell that a
row belongs to its record.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, InvalidStateError
from pathlib import Path

from batchgen.core.flow import EngineDied
from batchgen.record.contract import RecordError, normalize
from batchgen.record.rows import answer_row, error_row

MODEL = "standin:pipeline-logic"
MARKERS = "standin_markers"  # the spec's `engine` key naming the marker directory of `die: once`
DEATHS = "deaths.log"  # in the marker directory: a line per engine death, naming the record that caused it
REFUSE = "standin_refuse"  # the spec's `engine` key: every engine refuses to start, with this message


class StandIn:
    """`(spec, budgeted) -> replica`: `submit(records, ids)` -> one Future per record, resolving to its one row."""

    def __init__(self, spec, budgeted: bool = False):
        if refusal := spec.engine.get(REFUSE):
            raise RuntimeError(refusal)
        self.model_name = MODEL
        self.defaults = spec.defaults
        markers = spec.engine.get(MARKERS)
        self.markers = Path(markers) if markers else None
        self.timers: list[threading.Timer] = []
        self.lock = threading.Lock()
        self.running: set[Future] = set()

    def submit(self, records: list[dict], ids: list[str]) -> list[Future]:
        return [self._start(raw, rid) for raw, rid in zip(records, ids)]

    def _start(self, raw: dict, rid: str) -> Future:
        future: Future = Future()
        with self.lock:
            self.running.add(future)
        future.add_done_callback(self._forget)
        settle = self._outcome(raw, rid)

        def outcome(future: Future) -> None:
            try:
                settle(future)
            except InvalidStateError:  # the engine died first: the death is this record's outcome
                pass

        delay = raw.get("delay")
        if isinstance(delay, (int, float)) and delay > 0:
            timer = threading.Timer(delay, outcome, args=(future,))
            timer.daemon = True
            self.timers.append(timer)
            timer.start()
        else:
            outcome(future)
        return future

    def _outcome(self, raw: dict, rid: str):
        request = normalize(raw, self.defaults, row_id=rid)
        if isinstance(request, RecordError):
            return lambda future: future.set_result([error_row(rid, self.model_name, request)])
        if self._dies(raw.get("die"), rid):
            return lambda future: self._die(future, rid)
        prompt = str(request.messages[-1]["content"])
        row = answer_row(record_id=rid, model=self.model_name, mode="off", reasoning_text=None,
                         content=f"echo: {prompt}", finish_reason="stop", reasoning_end=None,
                         prompt_tokens=len(prompt.split()), reasoning_tokens=0, completion_tokens=len(prompt.split()) + 1)
        return lambda future: future.set_result([row])

    def _forget(self, future: Future) -> None:
        with self.lock:
            self.running.discard(future)

    def _die(self, future: Future, rid: str) -> None:
        """The engine dies, and with it every record on it, as a vLLM engine fails every request it holds."""
        with self.lock:
            doomed = [future, *(f for f in self.running if f is not future)]
        if self.markers is not None:  # a line per death, for tests that count them
            with open(self.markers / DEATHS, "a") as log:
                log.write(rid + "\n")
        error = EngineDied(f"stand-in engine killed by record {rid}")
        for each in doomed:
            try:
                each.set_exception(error)
            except InvalidStateError:  # it finished first
                pass

    def _dies(self, how, rid: str) -> bool:
        if how == "always":
            return True
        if how != "once":
            return False
        if self.markers is None:
            raise ValueError(f"record {rid} has die: once, but the spec's engine sets no {MARKERS}")
        try:  # exclusive create: exactly one run of the record, in whichever process, dies
            os.close(os.open(self.markers / rid, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def close(self) -> None:
        for timer in self.timers:
            timer.cancel()
