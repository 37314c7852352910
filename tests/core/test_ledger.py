"""Job bookkeeping: first occurrences, crash counts, handed-out ids (`batchgen.core.ledger`)."""

from __future__ import annotations

from batchgen.core.ledger import CrashLedger, FirstOccurrences, HandedOut


def test_handed_out_ids_are_remembered():
    handed = HandedOut()
    handed.add(["a", "b"])
    assert "a" in handed and "c" not in handed


def test_first_occurrence_wins_whatever_order_batches_arrive_in():
    seen = FirstOccurrences()
    seen.add(["a", "b"], [(1, 5), (1, 6)])  # a later file's batch first
    seen.add(["a", "c", "a"], [(0, 9), (0, 10), (1, 2)])
    seen.add(["c"], [(0, 10)])  # the same record read twice is not a duplicate of itself
    assert seen.later_occurrences() == {(1, 5): (0, 9), (1, 2): (0, 9)}
    assert FirstOccurrences().later_occurrences() == {}


def test_crash_ledger_counts_only_runs_that_never_ended():
    ledger = CrashLedger()
    assert ledger.begin(["a", "b"]) == [0, 0]
    ledger.end(["b"])  # b finished; a was running when the replica died
    assert ledger.peek(["a", "b", "c"]) == [1, 0, 0]
    assert ledger.begin(["a"]) == [1]
    assert ledger.begin(["a"]) == [2]  # died again
    ledger.end(["a"])
    assert ledger.peek(["a"]) == [0]
