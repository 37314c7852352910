"""The cadence at which a running job's rows reach its table: `TableCommits` polls the output prefix for
data files Ray Data's checkpoint has committed, and registers those the table lacks in one append commit
once `commit_every_rows` rows wait, or the oldest has waited `commit_every_s` seconds; `finish` commits
the rest when the job ends.

Exactly once, by construction: a data file goes into the table only once its checkpoint commit made it
final (`OutputPrefix.final_commits`), and what the table holds is read from the table when this
starts (`IcebergTable.files_of`), so a run after any kill adds precisely the committed files the table
lacks, and a rerun of a finished job adds none and makes no snapshot. A reader pinned to any snapshot sees
whole commits (Iceberg's own guarantee).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from batchgen.core.failures import root_cause
from batchgen.core.prefix import OutputPrefix, commit_stem
from batchgen.lake.iceberg import IcebergTable

__all__ = ["TableCommits"]


class TableCommits:
    """Keeps `table` in step with `prefix` while a job runs (`start`, then `finish`), or once (`sync`).
    `properties`: the snapshot summary's batchgen entries (job, fingerprint, version, output). `clock`:
    seconds, monotonic (a test's own clock in pure-logic tests)."""

    def __init__(self, table: IcebergTable, prefix: OutputPrefix, properties: dict[str, str], every_rows: int,
                 every_s: float, clock: Callable[[], float] = time.monotonic):
        self.table, self.prefix, self.properties = table, prefix, properties
        self.every_rows, self.every_s, self.clock = every_rows, every_s, clock
        self.output = prefix.url(prefix.path)
        # the writes (`prefix.commit_stem`) whose files the table holds, read from it at the first poll (it
        # may not exist yet)
        self.held: set[str] | None = None
        self.commits: list[dict] = []  # per commit made: snapshot id, files, rows, seconds it took
        self._rows: dict[str, int] = {}  # write stem -> rows, read once
        self._waiting_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""

    def poll(self, final: bool = False) -> int:
        """Commits what waits when the cadence says so (always, with `final`); returns the files committed.
        Each poll lists `_checkpoint/` once (what waits, and its rows from the checkpoint files' footers,
        read once); the data files are listed only when a commit is due."""
        if self.held is None:
            self.held = {commit_stem(url) for url in self.table.files_of(self.output)}
        waiting = {stem: path for stem, path in self.prefix.final_commits().items() if stem not in self.held}
        if not waiting:
            self._waiting_since = None
            return 0
        now = self.clock()
        self._waiting_since = self._waiting_since if self._waiting_since is not None else now
        for stem, path in waiting.items():
            if stem not in self._rows:
                self._rows[stem] = self.prefix.rows_in(path)  # a checkpoint holds one id per row written
        rows = sum(self._rows[stem] for stem in waiting)
        if not final and rows < self.every_rows and now - self._waiting_since < self.every_s:
            return 0
        urls = [self.prefix.url(f) for f in self.prefix.committed_data_files(set(waiting))]
        started = time.monotonic()
        try:
            snapshot = self.table.append(urls, self.properties, self.output) if urls else None
        except Exception:
            self.held = None  # the commit may have landed: the next poll asks the table again
            raise
        self.held.update(waiting)
        self._waiting_since = None
        if snapshot is not None:
            self.commits.append({"snapshot_id": snapshot, "files": len(urls), "rows": rows,
                                 "seconds": round(time.monotonic() - started, 3)})
        return len(urls)

    def start(self, every_poll_s: float = 2.0) -> TableCommits:
        """Polls on a daemon thread every `every_poll_s` seconds until `finish`. A failed commit (the catalog
        not answering) is kept in `last_error` and tried again at the next poll: the files stay committed in
        the prefix, so nothing is lost by waiting."""
        def polling() -> None:
            while not self._stop.wait(every_poll_s):
                try:
                    self.poll()
                    self.last_error = ""
                except Exception as error:  # any catalog or store failure: the next poll tries again
                    self.last_error = root_cause(error)

        self._thread = threading.Thread(target=polling, daemon=True, name="batchgen-table-commits")
        self._thread.start()
        return self

    def finish(self) -> int:
        """Stops polling (if `start`ed) and commits every committed file the table lacks; raises what the
        catalog raises. A job found complete calls only this: the table gets what it lacks, usually nothing."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        return self.poll(final=True)

    def finish_quietly(self) -> None:
        """`finish` for a job ending in failure: what can be committed is, and a failure here is kept in
        `last_error` (the job's own failure is the one to report; a rerun commits the rest)."""
        try:
            self.finish()
        except Exception as error:
            self.last_error = root_cause(error)
