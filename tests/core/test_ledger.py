"""Job bookkeeping: first occurrences, crash counts, handed-out ids (`batchgen.core.ledger`)."""

from __future__ import annotations

from batchgen.core import spill
from batchgen.core.ledger import CrashLedger, FirstOccurrences, HandedOut


def test_handed_out_records_are_remembered_by_position():
    handed = HandedOut(10)
    handed.add([3, 9])
    assert handed.contains([3, 4, 9, 0]) == [True, False, True, False]


def test_first_occurrence_wins_whatever_order_batches_arrive_in(monkeypatch):
    monkeypatch.setattr(spill, "BUFFER_ROWS", 2)  # spilled to disk between batches, read back by bucket
    seen = FirstOccurrences()
    seen.add(["a", "b"], [1, 1], [5, 6])  # a later file's batch first
    seen.add(["a", "c", "a"], [0, 0, 1], [9, 10, 2])
    seen.add(["c"], [0], [10])  # the same record read twice is not a duplicate of itself
    assert seen.later_occurrences() == {(1, 5): (0, 9), (1, 2): (0, 9)}
    assert FirstOccurrences().later_occurrences() == {}


def test_a_thousand_ids_with_every_tenth_reused_find_exactly_the_reuses():
    seen = FirstOccurrences()
    ids = [f"r{i % 900}" for i in range(1000)]  # r0..r99 come back at 900..999
    for start in range(0, 1000, 64):
        chunk = range(start, min(1000, start + 64))
        seen.add([ids[i] for i in chunk], [0] * len(chunk), list(chunk))
    assert seen.later_occurrences() == {(0, i): (0, i - 900) for i in range(900, 1000)}


def test_crash_ledger_counts_a_death_for_runs_that_never_ended_nor_were_reported():
    ledger = CrashLedger()
    assert ledger.begin(["a", "b"]) == [(0, 0), (0, 0)]
    ledger.end(["b"])  # b finished; a was running when its replica vanished without a word
    assert ledger.begin(["a", "b", "c"]) == [(1, 0), (0, 0), (0, 0)]
    assert ledger.begin(["a"]) == [(2, 0)]  # vanished again
    ledger.end(["a"])
    assert ledger.begin(["a"]) == [(0, 0)]


def test_crash_ledger_counts_what_a_dying_replica_reports_and_deaths_alone():
    ledger = CrashLedger()
    ledger.begin(["k", "x", "w"])
    ledger.died(on_engine=["k", "x"], waiting=["w"])  # w was begun, never on the engine: no death
    assert ledger.begin(["k", "x", "w"]) == [(1, 0), (1, 0), (0, 0)]
    ledger.died(on_engine=["k"], waiting=["x", "w"])  # k alone on the engine
    assert ledger.begin(["k", "x"]) == [(2, 1), (1, 0)]
    ledger.end(["x"])
    ledger.died(on_engine=["k"], waiting=[])
    assert ledger.begin(["k"]) == [(3, 2)]
