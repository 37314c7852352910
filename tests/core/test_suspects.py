"""Suspects after an engine death, narrowed down to the killer (`batchgen.core.suspects`), with the crash
ledger (`batchgen.core.ledger`), over a fake engine: the restarts a replica goes through are simulated
here, one lane per process life; the Ray job doing the same is `tests/cluster/test_stage.py`."""

from __future__ import annotations

import threading
from concurrent.futures import Future, wait

import pytest

from batchgen.core.flow import EngineDied
from batchgen.core.ledger import CrashLedger
from batchgen.core.suspects import KILLS_ALONE, MAX_DEATHS, SuspectLane, width


class Engine:
    """Answers a record 5 ms after it starts; a record that kills it (`kills`) takes down at once every
    record on it, itself included, as a dying vLLM engine fails every request it holds."""

    def __init__(self):
        self.pending: list[Future] = []
        self.lock = threading.Lock()
        self.dead = False
        self.together: list[int] = []  # records on the engine at each start

    def submit(self, records: list[dict], ids: list[str]) -> list[Future]:
        futures = [Future() for _ in records]
        with self.lock:
            self.pending.extend(futures)
            self.together.append(len(self.pending))
            if self.dead or any(r.get("kills") for r in records):
                self.dead, doomed, self.pending = True, self.pending, []
            else:
                doomed = []
        for future in doomed:
            future.set_exception(EngineDied("killed"))
        if not doomed:
            threading.Timer(0.005, self._answer, args=(futures, ids)).start()
        return futures

    def _answer(self, futures: list[Future], ids: list[str]) -> None:
        with self.lock:
            if self.dead:
                return
            self.pending = [f for f in self.pending if f not in futures]
        for future, rid in zip(futures, ids):
            future.set_result([{"id": rid}])


def run_to_the_end(records: dict[str, dict], widest: int) -> tuple[dict[str, str], int, list[Engine]]:
    """Every record answered or given up on, through as many replica lives as it takes: (id -> "answered" or
    "engine_crash", restarts, each life's engine)."""
    ledger, outcome, engines = CrashLedger(), {}, []
    while len(outcome) < len(records):
        engine = Engine()
        engines.append(engine)
        lane = SuspectLane(engine.submit, widest, settle_s=0)
        todo = [rid for rid in records if rid not in outcome]
        futures, fresh, suspects = {}, [], {}
        for rid, (deaths, alone) in zip(todo, ledger.begin(todo)):
            if alone >= KILLS_ALONE or deaths >= MAX_DEATHS:
                outcome[rid] = "engine_crash"
                ledger.end([rid])
            elif deaths:
                suspects[rid] = deaths
            else:
                fresh.append(rid)
        futures.update(zip(suspects, lane.suspects([records[r] for r in suspects], list(suspects), list(suspects.values()))))
        futures.update(zip(fresh, lane.fresh([records[rid] for rid in fresh], fresh)))
        wait(futures.values(), timeout=30)
        finished = [rid for rid, f in futures.items() if f.done() and f.exception() is None]
        for rid in finished:
            outcome[rid] = "answered"
        ledger.end(finished)
        if len(finished) < len(futures):  # the engine died: the replica says what was on it, and goes
            on_engine = lane.on_engine()
            ledger.died(on_engine, [rid for rid in futures if rid not in finished and rid not in on_engine])
    return outcome, len(engines) - 1, engines


def test_widths_halve_with_each_death_down_to_one():
    assert [width(d, 256) for d in range(1, 11)] == [256, 128, 64, 32, 16, 8, 4, 2, 1, 1]
    assert width(1, 3) == 3 and width(2, 3) == 1


@pytest.mark.parametrize("killer", [0, 77, 255])
def test_the_killer_among_256_in_flight_is_found_in_logarithmic_restarts_and_no_other_record_pays(killer):
    records = {f"r{i}": {"kills": i == killer} for i in range(256)}
    outcome, restarts, engines = run_to_the_end(records, widest=256)
    assert outcome.pop(f"r{killer}") == "engine_crash"
    assert set(outcome.values()) == {"answered"} and len(outcome) == 255
    # one death with everything in flight, one at full width, seven halvings (128 down to 2), two deaths alone
    assert restarts == 1 + 1 + 7 + KILLS_ALONE == 11
    # in its last two lives the killer was alone on the engine when it died (the last start of each life)
    assert engines[-3].together[-1] == engines[-2].together[-1] == 1


def test_records_through_a_death_nobody_caused_run_again_at_full_width_at_once():
    ledger = CrashLedger()
    ids = [f"r{i}" for i in range(64)]
    ledger.begin(ids)  # a replica that vanished with all of them (its node lost): no report
    engine = Engine()
    lane = SuspectLane(engine.submit, widest=64)
    deaths = [count for count, _ in ledger.begin(ids)]
    futures = lane.suspects([{}] * 32, ids[:32], deaths[:32]) + lane.suspects([{}] * 32, ids[32:], deaths[32:])
    wait(futures, timeout=30)
    assert all(f.result() == [{"id": rid}] for f, rid in zip(futures, ids))
    assert engine.together == [64]  # both calls' suspects in one group, within the lane's settling time


def test_fresh_records_wait_while_suspects_run_so_a_group_is_all_the_engine_runs():
    engine = Engine()
    lane = SuspectLane(engine.submit, widest=2)
    suspects = lane.suspects([{}] * 3, ["s0", "s1", "s2"], [2, 2, 2])  # width 1 after two deaths: one at a time
    fresh = lane.fresh([{}, {}], ["f0", "f1"])
    wait([*suspects, *fresh], timeout=30)
    assert [f.result()[0]["id"] for f in [*suspects, *fresh]] == ["s0", "s1", "s2", "f0", "f1"]
    assert engine.together == [1, 1, 1, 2]
    assert lane.on_engine() == []
