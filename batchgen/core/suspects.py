"""Records that were on an engine when it died, narrowed down to the one that kills it (pure logic, threads).

After an engine death every record that was on it is a suspect (`ledger.CrashLedger` counts its deaths).
Run one at a time, 512 suspects of long reasoning take hours; run all together, a killer among them takes
every one down with it again. A replica's `SuspectLane` runs them in groups, one group at a time with
nothing else on the engine, a group's width halving with each death its records went through (`width`):
records through one death (a lost node, an engine that fell over by itself) run at full width at once,
while a killer's group halves at each death it causes, so it is alone on the engine after about
log2(records in flight) deaths, and the record whose engine died twice while it ran alone is the killer
(`KILLS_ALONE`). Every other suspect is answered: a death counts only for the records on the engine.

Everything a replica runs goes through its lane (`fresh`, `suspects`), so the lane knows which records are
on the engine when it dies (`on_engine`); fresh records wait while suspects are in the lane.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

KILLS_ALONE = 2  # engine deaths while a record ran alone on it that make it the killer (one may be chance)
# Deaths after which a record is given up on whatever they were: a guard for deaths no replica reported
# (each counts one, never alone), as when a record takes its whole node down every time.
MAX_DEATHS = 16


def width(deaths: int, widest: int) -> int:
    """How many suspects through `deaths` engine deaths (>= 1) run together: `widest` after one, halving
    with each further death, at least one."""
    return max(1, widest >> (deaths - 1))


class SuspectLane:
    """One replica's way onto its engine. `submit(records, ids) -> futures of rows` starts records on the
    engine (the replica's own `submit`); a future that fails means the engine died. `widest`: the most
    suspects run together (the job's records in flight). Thread-safe."""

    def __init__(self, submit: Callable[[list[dict], list[str]], list[Future]], widest: int, settle_s: float = 0.2):
        self._submit = submit
        self._widest = widest
        self._settle_s = settle_s
        self._cond = threading.Condition()
        self._suspects: dict[int, list[tuple[dict, str, Future]]] = {}  # by deaths, in arrival order
        self._held: list[tuple[dict, str, Future]] = []  # fresh records waiting for the suspects to clear
        self._on_engine: set[str] = set()
        self._working = False  # the lane's thread is running groups
        self._dead = False

    def fresh(self, records: list[dict], ids: list[str]) -> list[Future]:
        """Starts records that never met a death now, or once the lane's suspects are through."""
        with self._cond:
            if self._working:
                held = [(record, rid, Future()) for record, rid in zip(records, ids)]
                self._held.extend(held)
                return [proxy for _, _, proxy in held]
        return self._start(records, ids)

    def suspects(self, records: list[dict], ids: list[str], deaths: list[int]) -> list[Future]:
        """Queues records that were on an engine through `deaths` (>= 1 each) deaths; their Futures resolve
        to their rows once their group ran. The first group starts `settle_s` after the lane's first
        suspects, so that the batches a restarted replica is handed at once are grouped together."""
        proxies = [Future() for _ in records]
        with self._cond:
            for record, rid, count, proxy in zip(records, ids, deaths, proxies):
                self._suspects.setdefault(count, []).append((record, rid, proxy))
            if self._working or not proxies:
                return proxies
            self._working = True
        threading.Thread(target=self._work, daemon=True, name="batchgen-suspects").start()
        return proxies

    def on_engine(self) -> list[str]:
        """The records started on the engine and not finished (after a death: those it died with)."""
        with self._cond:
            return sorted(self._on_engine)

    def _work(self) -> None:
        time.sleep(self._settle_s)
        while True:
            with self._cond:
                # A group runs with nothing beside it: fresh records started before the suspects came end first.
                self._cond.wait_for(lambda: self._dead or not self._on_engine)
                if self._dead:
                    return
                if not self._suspects:
                    queue, self._held, self._working = self._held, [], False
                else:
                    deaths = min(self._suspects)
                    size = width(deaths, self._widest)
                    queue, rest = self._suspects[deaths][:size], self._suspects[deaths][size:]
                    if rest:
                        self._suspects[deaths] = rest
                    else:
                        del self._suspects[deaths]
            if queue:
                started = self._start([record for record, _, _ in queue], [rid for _, rid, _ in queue])
                for (_, _, proxy), future in zip(queue, started):
                    future.add_done_callback(lambda done, proxy=proxy: _copy(done, proxy))
            with self._cond:
                if not self._working:
                    return

    def _start(self, records: list[dict], ids: list[str]) -> list[Future]:
        with self._cond:
            self._on_engine.update(ids)
        futures = self._submit(records, ids)
        for rid, future in zip(ids, futures):
            future.add_done_callback(lambda done, rid=rid: self._finished(done, rid))
        return futures

    def _finished(self, future: Future, rid: str) -> None:
        queued = []
        with self._cond:
            if future.exception() is None:
                self._on_engine.discard(rid)
            elif not self._dead:  # the engine died with this record on it: what is queued will not run here
                self._dead = True
                queued = [proxy for queue in (*self._suspects.values(), self._held) for _, _, proxy in queue]
            self._cond.notify_all()
        for proxy in queued:
            proxy.set_exception(future.exception())


def _copy(source: Future, target: Future) -> None:
    if source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())
