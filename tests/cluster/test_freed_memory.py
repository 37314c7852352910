"""The driver hands freed C-heap memory back to the OS while a job runs (`pipeline.freed_memory_returned`):
without it, Ray's per-block bookkeeping, freed as blocks go through, stays in glibc's free lists and the
driver's RSS grows with the input (README, "Memory at scale")."""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

from batchgen.cluster.pipeline import freed_memory_returned

MiB = 1 << 20


def anonymous_rss() -> int:
    """This process's anonymous resident memory in bytes (`RssAnon`, Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    pytest.skip("no RssAnon in /proc/self/status (not Linux)")


def test_memory_freed_inside_the_heap_goes_back_to_the_os_and_the_thread_ends_with_the_block():
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        pytest.skip("libc.so.6 (glibc) is not this system's C library")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    # 200 MiB in 4 KiB pieces (below glibc's mmap threshold, so they come from the heap), all written to, then
    # freed but the last: the live piece at the top keeps glibc from shrinking the heap by itself.
    pieces = [libc.malloc(4096) for _ in range(200 * MiB // 4096)]
    for piece in pieces:
        libc.memset(piece, 1, 4096)
    for piece in pieces[:-1]:
        libc.free(piece)
    held = anonymous_rss()
    with freed_memory_returned(every_s=0.05):
        trimmer = next(t for t in threading.enumerate() if t.name == "batchgen-malloc-trim")
        deadline = time.monotonic() + 10
        while anonymous_rss() > held - 150 * MiB and time.monotonic() < deadline:
            time.sleep(0.05)
        returned = held - anonymous_rss()
    trimmer.join(timeout=5)
    libc.free(pieces[-1])
    assert returned > 150 * MiB, f"only {returned / MiB:.0f} MiB of 200 freed went back to the OS"
    assert not trimmer.is_alive()
