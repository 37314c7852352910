"""What benchmark code inside Ray's workers tells the harness: timestamped lines, one file per process,
under the folder named by $BATCHGEN_BENCH_EVENTS; and the local Ray whose workers run that code."""

from __future__ import annotations

import os
import time
from pathlib import Path

EVENTS_DIR = "BATCHGEN_BENCH_EVENTS"
ROOT = Path(__file__).resolve().parents[1]


def start_ray(events_dir: Path, setup_hook: str, **init_args) -> None:
    """A local Ray whose every worker first runs `setup_hook` (a "module.function" of this package) and
    logs its events under `events_dir`. Local workers inherit the driver's environment: the path to this
    package and the events folder travel that way."""
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    os.environ[EVENTS_DIR] = str(events_dir)
    events_dir.mkdir(parents=True, exist_ok=True)
    ray.init(address="local", log_to_driver=False, runtime_env={"worker_process_setup_hook": setup_hook}, **init_args)


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
