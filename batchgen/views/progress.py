"""What a person sees while a job runs: the job's progress snapshots (`pipeline.run`'s `report`, every 2 s)
drawn as a rich progress bar in a terminal, or as a plain line every `every` seconds in a log (CI, a file,
`batchgen logs --follow` of a job on a cluster), where a redrawn bar would be noise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Snapshot:
    """The job so far. `records` counts this run's records whose rows the output committed; `errors` and
    `completion_tokens` count what this run's replicas handed to the writers (a retried batch may count
    twice: these are for display); `done_before` is what earlier runs committed; times in seconds,
    `generating_s` since the first replica was ready (None before)."""

    records: int
    errors: int
    completion_tokens: int
    total: int
    done_before: int
    elapsed_s: float
    generating_s: float | None
    waiting: str = ""  # what the job waits for, when the cluster cannot hold it (`spec.placement.shortfall`)

    @property
    def done(self) -> int:
        return min(self.total, self.done_before + self.records)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.generating_s if self.generating_s else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at this run's rate so far (engine start-up excluded), None until a record is done."""
        if not self.generating_s or not self.records:
            return None
        return (self.total - self.done) * self.generating_s / self.records

    def line(self) -> str:
        """The plain form: `1,200/5,000 records (24%) | 3,100 tokens/s | 2 errors | 1m05s | about 3m20s left`."""
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        left = self.waiting or "starting the engine" if self.generating_s is None else self.waiting or (
            f"about {_clock(self.eta_s)} left" if self.eta_s is not None else "first records running")
        return (f"{self.done:,}/{self.total:,} records{percent} | {self.tokens_per_s:,.0f} tokens/s | "
                f"{self.errors} errors | {_clock(self.elapsed_s)} | {left}")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class LogProgress:
    """A line at the first snapshot, when the engine is ready and when the job starts or stops waiting (for
    a node, for the cluster), then one every `every` s, and the job's last snapshot when it ends."""

    def __init__(self, stream: TextIO, every: float = 30.0):
        self.stream, self.every = stream, every
        self.printed_at: float | None = None
        self.last: Snapshot | None = None
        self.printed: Snapshot | None = None
        self.generating = False

    def __call__(self, snapshot: Snapshot) -> None:
        self.last = snapshot
        started = snapshot.generating_s is not None and not self.generating
        self.generating = snapshot.generating_s is not None
        news = self.printed is not None and snapshot.waiting != self.printed.waiting  # waiting began or ended
        if started or news or self.printed_at is None or time.monotonic() - self.printed_at >= self.every:
            self._print(snapshot)

    def _print(self, snapshot: Snapshot) -> None:
        self.printed_at, self.printed = time.monotonic(), snapshot
        print(f"  {snapshot.line()}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.last is not None and self.last is not self.printed:
            self._print(self.last)


class TerminalProgress:
    """A rich progress bar: records done of total, percentage, tokens/s, errors, elapsed, time left (rich's
    own estimate, over the last 30 s of progress)."""

    def __init__(self, stream: TextIO):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[tokens_per_s]} tok/s"), TextColumn("{task.fields[errors]} errors"),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
            console=Console(file=stream), speed_estimate_period=30,
            # rich would print what Python writes to sys.stdout/sys.stderr above the bar: Ray's and the
            # replicas' logs, which belong in the log file (`batchgen.views.logs`)
            redirect_stdout=False, redirect_stderr=False,
        )
        self.task = None

    def __call__(self, snapshot: Snapshot) -> None:
        fields = dict(tokens_per_s=f"{snapshot.tokens_per_s:,.0f}", errors=snapshot.errors,
                      description=snapshot.waiting or ("starting engine" if snapshot.generating_s is None
                                                        else "generating"))
        if self.task is None:  # created at the first snapshot, so what earlier runs did is no burst of speed
            self.bar.start()
            self.task = self.bar.add_task(total=snapshot.total, completed=snapshot.done, **fields)
        self.bar.update(self.task, total=snapshot.total, completed=snapshot.done, **fields)

    def close(self) -> None:
        if self.task is not None:
            self.bar.stop()


def display(stream: TextIO, every: float = 30.0) -> TerminalProgress | LogProgress:
    """The right display for `stream`: a bar in a terminal, plain lines elsewhere."""
    return TerminalProgress(stream) if stream.isatty() else LogProgress(stream, every)
