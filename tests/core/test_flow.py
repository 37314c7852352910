"""The replica's record pool: rows come out in the order records finish, in and out balance, an engine
failure reaches every waiting call (threads and futures only, no engine)."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from batchgen.core.flow import RecordPool


def test_rows_come_out_as_records_finish_not_as_they_were_submitted():
    pool = RecordPool()
    slow, fast = Future(), Future()
    pool.submit(slow, ("batch-1", 0))
    pool.submit(fast, ("batch-2", 0))
    pool.add({"id": "bad"}, ("batch-2", 1))
    fast.set_result({"id": "fast"})
    assert pool.in_flight == 1
    # batch 1's call gets what has finished, not its own record: the long one holds nobody back.
    assert pool.take(2) == [({"id": "bad"}, ("batch-2", 1)), ({"id": "fast"}, ("batch-2", 0))]
    slow.set_result({"id": "slow"})
    assert pool.take(1) == [({"id": "slow"}, ("batch-1", 0))] and pool.in_flight == 0


def test_a_waiting_call_returns_when_enough_rows_finished():
    pool = RecordPool()
    futures = [Future() for _ in range(3)]
    for n, future in enumerate(futures):
        pool.submit(future, n)
    taken = []
    waiter = threading.Thread(target=lambda: taken.extend(pool.take(3)))
    waiter.start()
    for n, future in enumerate(futures):
        assert waiter.is_alive()
        future.set_result({"n": n})
    waiter.join(timeout=5)
    assert [tag for _, tag in taken] == [0, 1, 2]


def test_an_engine_failure_reaches_the_waiting_calls():
    pool = RecordPool()
    failing = Future()
    pool.submit(failing, 0)
    errors = []
    waiter = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, pool.take, 1)))
    waiter.start()
    failing.set_exception(RuntimeError("engine died"))
    waiter.join(timeout=5)
    assert len(errors) == 1 and "engine died" in str(errors[0].value)
    with pytest.raises(RuntimeError):
        pool.take(0)
