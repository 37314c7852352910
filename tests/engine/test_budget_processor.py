"""The budget processor's batch bookkeeping (`BudgetRows`) with vLLM's own `BatchUpdate`s and a logits
tensor: rows added, moved, swapped and removed keep their trackers; only rows due are forced. No engine
(the engine tests check budgets to the token on the toy model)."""

from __future__ import annotations

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

from batchgen.engine.budget_processor import BudgetRows
from batchgen.record.budget import BudgetPlan

NL, END, DOT, WORD, VOCAB = 10, 99, 5, 1, 128


def params(budget: int | None, strict=True) -> SamplingParams:
    if budget is None:
        return SamplingParams()
    plan = BudgetPlan(budget, 3, strict, END, (DOT, NL, END, NL), (END, NL), starts_at_line_break=False)
    return SamplingParams(extra_args=plan.to_extra_args())


def update(batch_size, added=(), removed=(), moved=()) -> BatchUpdate:
    return BatchUpdate(batch_size=batch_size, removed=list(removed), added=list(added), moved=list(moved))


def forced(rows: BudgetRows, batch_size: int) -> dict[int, int]:
    """{row: the only token left possible} after the processor ran over a batch of zero logits."""
    logits = rows.force(torch.zeros(batch_size, VOCAB))
    return {r: int(logits[r].argmax()) for r in range(batch_size) if torch.isinf(logits[r]).any()}


def test_rows_are_forced_when_their_budget_is_spent_and_not_before():
    rows, a, b, c = BudgetRows(frozenset({NL})), [], [WORD], []
    rows.update(update(3, added=[(0, params(2), None, a), (1, params(1), None, b), (2, params(None), None, c)]))
    assert forced(rows, 3) == {1: DOT}  # row 1 spent its budget of 1; row 0 has 2 to go; row 2 has none
    a += [WORD, WORD]
    b.append(DOT)  # vLLM appends to the same lists the processor holds
    assert forced(rows, 3) == {0: DOT, 1: NL}


def test_a_swap_and_a_move_keep_each_tracker_with_its_request():
    rows, a, b = BudgetRows(frozenset({NL})), [WORD], []
    rows.update(update(2, added=[(0, params(1), None, a), (1, params(5), None, b)]))
    rows.update(update(2, moved=[(0, 1, MoveDirectionality.SWAP)]))
    assert forced(rows, 2) == {1: DOT}  # the spent request is now row 1
    rows.update(update(1, removed=[0], moved=[(1, 0, MoveDirectionality.UNIDIRECTIONAL)]))
    a.append(DOT)
    assert forced(rows, 1) == {0: NL}  # it moved to row 0 and goes on closing
    rows.update(update(0, removed=[0]))
    assert forced(rows, 1) == {}


def test_a_placeholder_for_the_step_in_flight_is_not_a_token():
    # Under async scheduling (GPU) the token being sampled shows as -1 at the end of the output ids.
    rows, a = BudgetRows(frozenset({NL})), [WORD, -1]
    rows.update(update(1, added=[(0, params(2), None, a)]))
    assert forced(rows, 1) == {}  # one token spent, not two
    a[-1] = WORD  # the real id is written over the placeholder
    assert forced(rows, 1) == {0: DOT}
