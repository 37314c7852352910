"""Budget sweeps (pure logic): a row per thinking budget from one decoded reasoning.

A record whose `max_thinking_tokens` is a list (`[0, 256, 1024, null]`, null: no budget) runs its largest
budget as its one engine request. `ForkWatch` follows that request's tokens with a `budget.BudgetTracker`
per smaller budget; the moment the reasoning reaches the point where a smaller budget's rule would close it
(the next line break after the budget, budget + grace, or the budget itself in strict mode), it gives a
`Fork`: how many of the tokens so far that budget keeps, and the closing text it would force. The replica
then starts a continuation whose prompt is the record's prompt, those tokens and that closing text, and
which generates only the answer. Under greedy decoding that continuation is token for token what a
separate run at that budget generates after its forced close (the separate run's reasoning before the cut
is the same tokens: its tracker forces nothing before then). A budget whose tracker never fires (the model
closed its reasoning first, or the request ended) needs no fork: its row is the largest budget's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from batchgen.record.budget import BudgetPlan, BudgetTracker


@dataclass(frozen=True)
class Fork:
    """Where a smaller budget leaves the running reasoning: its `budget`, the main output's first
    `position` tokens it keeps, and the `close_ids` its rule forces after them."""

    budget: int
    position: int
    close_ids: tuple[int, ...]


class ForkWatch:
    """Follows one request's output tokens for the smaller budgets of a sweep (`plans`: budget -> plan)."""

    def __init__(self, plans: dict[int, BudgetPlan], line_break_ids: Iterable[int]):
        self._trackers = {budget: BudgetTracker(plan, line_break_ids) for budget, plan in plans.items()}
        self._position = 0

    def __bool__(self) -> bool:
        """Whether any budget may still fork (none: reasoning off, or no smaller budget has a plan)."""
        return bool(self._trackers)

    def push(self, token: int) -> list[Fork]:
        """Takes the main request's next output token; returns the forks due before it (each budget once)."""
        due = self.due()
        for tracker in self._trackers.values():
            tracker.observe(token)
        self._position += 1
        return due

    def due(self) -> list[Fork]:
        """The forks whose cut point is the current position. Not asked once the output has ended: a cut
        there would keep every token, so that budget's row is the main one."""
        forks = []
        for budget, tracker in list(self._trackers.items()):
            if tracker.forced_token() is not None:
                forks.append(Fork(budget, self._position, tracker.closing_ids))
                del self._trackers[budget]
        return forks


def sweep_order(budgets: list[int | None]) -> list[int | None]:
    """The budgets from smallest to largest, no budget (None) last: the last one runs, the others fork."""
    return sorted(budgets, key=lambda b: (b is None, b or 0))
