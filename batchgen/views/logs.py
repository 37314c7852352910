"""Where Ray's, vLLM's and the replicas' logs go while `batchgen run` works: by default into one file per run
(`$BATCHGEN_LOG_DIR`, else `~/.cache/batchgen/logs/<job>-<date>-<time>.log`), so the terminal shows only
batchgen's progress, its summary and, on failure, one line naming the file; `--verbose` leaves them on
the terminal.

File descriptors 1 and 2 are redirected, not Python's logging: Ray's C++ core worker, the processes
`ray.init` starts and the replicas' streamed logs write to them directly, where no logging handler sees
them. batchgen's own output goes to a duplicate of the terminal's stderr taken before the redirect.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


def log_dir() -> Path:
    return Path(os.environ.get("BATCHGEN_LOG_DIR") or Path.home() / ".cache" / "batchgen" / "logs")


@dataclass(frozen=True)
class Logs:
    """`terminal`: where batchgen's own lines go while the run lasts; `path`: the log file (None: verbose)."""

    terminal: TextIO
    path: Path | None

    def hint(self) -> str:
        """What to add to an error line: where the whole story is."""
        return f" (full log: {self.path}; --verbose shows it as it runs)" if self.path else ""


@contextmanager
def captured(job: str, verbose: bool = False) -> Iterator[Logs]:
    """Everything written to fds 1 and 2 inside goes to a new log file, unless `verbose`. Processes started
    inside keep writing there after the block ends (a local Ray until its shutdown)."""
    if verbose:
        yield Logs(sys.stderr, None)
        return
    directory = log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{job}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_err), "w", buffering=1)
    with open(path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield Logs(terminal, path)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            for fd in (saved_out, saved_err):
                os.close(fd)
            terminal.close()
