"""Asking something that may never answer: a lost Ray head can hold a call for a minute or more, and an
object store that stopped answering holds a listing through its client's retries. `in_thread` runs such a
call on a daemon thread and hands back a Future to wait on with a timeout.

A daemon thread, not `concurrent.futures`' executors: an executor's threads are joined when the
interpreter exits, so a call stuck on a dead peer would keep a finished job from exiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future


def in_thread(call: Callable, name: str = "batchgen-question") -> Future:
    """`call()` on a daemon thread named `name`; its Future resolves to what it returns or raises."""
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(call())
        except BaseException as error:  # handed to whoever waits on the future
            future.set_exception(error)

    threading.Thread(target=target, daemon=True, name=name).start()
    return future
