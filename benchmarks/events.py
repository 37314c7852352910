"""What benchmark code inside Ray's workers tells the harness: timestamped lines, one file per process,
under the folder named by $BATCHGEN_BENCH_EVENTS (workers inherit the driver's environment)."""

from __future__ import annotations

import os
import time
from pathlib import Path

EVENTS_DIR = "BATCHGEN_BENCH_EVENTS"


def log_event(kind: str, *values) -> None:
    """Appends `time values...` to this process's file for `kind`."""
    folder = os.environ.get(EVENTS_DIR)
    if folder:
        with open(Path(folder) / f"{kind}-{os.getpid()}.log", "a") as events:
            events.write(" ".join(str(v) for v in (time.time(), *values)) + "\n")


def read_events(folder: Path, kind: str) -> list[tuple[int, float, list[str]]]:
    """(pid, time, values) of every event of a kind the workers logged."""
    found = []
    for path in folder.glob(f"{kind}-*.log"):
        pid = int(path.stem.split("-")[1])
        for line in path.read_text().splitlines():
            at, *values = line.split(" ")
            found.append((pid, float(at), values))
    return found
