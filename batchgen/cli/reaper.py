"""Nothing left running: every process a `batchgen` command starts ends when it exits, however the job
ended. A local job's Ray starts its GCS and raylet as this process's children, Ray workers under the
raylet and vLLM's engine core processes under them; when the raylet dies first (it was seen to, at engine
start), its workers and their engines are orphaned to init and kept running (about 2 GB each) after
`ray.shutdown()`, which only stops what it still knows. Linux's child subreaper makes such orphans this
process's children instead, so they can be found and ended. Ray and vLLM offer no hook for this: written
here (psutil walks the tree)."""

from __future__ import annotations

import ctypes
import sys

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def adopt_orphans() -> bool:
    """Makes this process the subreaper of its descendants: one whose parent dies is re-parented here, not
    to init. Returns False where that cannot be done (not Linux, or prctl refused)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def end_descendants(grace_s: float = 10.0) -> list[int]:
    """Ends every live process under this one: SIGTERM, then SIGKILL for those alive after `grace_s`
    seconds; reaps them. Returns the pids it found."""
    import psutil

    family = psutil.Process().children(recursive=True)
    for process in family:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_s)
    return [process.pid for process in family]
