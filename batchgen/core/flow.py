"""Record flow inside one replica: records, not batches, keep the engine full (pure logic, threads only).

Ray Data hands a replica batches, and a batch's call must return rows. If a call returned its own
records' rows, a batch would hold its place until its longest record ended, and the engine would run a
handful of long reasoning traces while hundreds of records waited outside it. So a call here puts its
records into the replica's pool (each record is its own engine request at once) and returns as many rows
as it put in, of whichever records have finished, in the order they finished: a long record holds no
call and no other record's row back; it is returned by whichever call is waiting when it ends. In and out
balance over a replica's life, so the last call returns the last rows and nothing is left behind.

With K calls in flight of N records each, the engine holds about (K - 1) x N records whatever their
lengths; the job sets K from `scaling.records_in_flight`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable
from concurrent.futures import Future


class EngineDied(RuntimeError):
    """A replica's engine is gone: this replica cannot generate any more (only a new process can host a new
    engine, so its actor must be replaced)."""


class RecordPool:
    """Finished records, each as its rows (one per sample and budget) with the tag its submitter gave it
    (which batch and row it came from), handed out first finished, first out. Thread-safe: Ray Data calls a
    replica from several threads."""

    def __init__(self) -> None:
        self._done: deque[tuple[list[dict], Hashable]] = deque()
        self._failure: BaseException | None = None
        self._ready = threading.Condition()
        self.in_flight = 0  # submitted and not finished

    def add(self, rows: list[dict], tag) -> None:
        """A record's rows that needed no engine (an error row): finished at once."""
        with self._ready:
            self._done.append((rows, tag))
            self._ready.notify_all()

    def submit(self, future: Future, tag) -> None:
        """A record running on the engine; its rows join the pool when `future` resolves. A future that
        fails (the engine died) fails every later `take` of this pool: the replica must be replaced."""
        with self._ready:
            self.in_flight += 1
        future.add_done_callback(lambda f: self._finish(f, tag))

    def _finish(self, future: Future, tag) -> None:
        with self._ready:
            self.in_flight -= 1
            error = future.exception()
            if error is not None:
                self._failure = self._failure or error
            else:
                self._done.append((future.result(), tag))
            self._ready.notify_all()

    def take(self, count: int) -> list[tuple[list[dict], Hashable]]:
        """Waits until `count` records have finished and returns their rows (first finished first); raises
        the first engine failure instead, if there was one."""
        with self._ready:
            self._ready.wait_for(lambda: self._failure is not None or len(self._done) >= count)
            if self._failure is not None:
                raise self._failure
            return [self._done.popleft() for _ in range(count)]
