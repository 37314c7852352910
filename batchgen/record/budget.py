"""Thinking budgets: when a record's reasoning must end, decided token by token (pure logic, no engine).

The model card's rule (`newline` mode): once `budget` reasoning tokens have been generated, end the reasoning
at the next line break; if none comes within `grace` more tokens, end it abruptly at `budget + grace`.
`strict` mode ends it exactly at `budget`. Ending means forcing a closing text, one token per step, that
contains the end-of-thinking token; the model then goes on to its answer in the same request, so nothing is
prefilled twice (the card's client makes a second request instead).

A reasoning that already sits on a line break is closed with `close_at_line_break` (default `</think>\\n\\n`);
an abrupt cut uses `close` (default `.\\n</think>\\n\\n`, the card client's text). The generation prompt of a
reasoning model ends in a line break (`<think>\\n`), so budget 0 closes the reasoning before it starts.

`BudgetTracker` is driven by `budget_processor.ThinkingBudgetLogitsProcessor` inside vLLM; it is kept here,
engine-free, so its rules are tested directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EXTRA_ARGS_KEY = "batchgen_thinking_budget"


class BudgetSpec(BaseModel):
    """The job spec's `budget` section: how a thinking budget ends the reasoning (the card's rule or a hard
    cut) and the closing texts it forces. Owned here, beside the rules it configures, so the record logic
    needs nothing from the spec layer."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["newline", "strict"] = Field(
        "newline",
        description="newline: after the budget, end the reasoning at the next line break, or at budget + "
        "grace_tokens if none comes (model card); strict: end it exactly at the budget",
    )
    grace_tokens: int = Field(500, ge=0, description="newline mode: how long to wait for a line break")
    close_text: str = Field(".\n</think>\n\n", description="forced to end a reasoning cut mid-line")
    close_text_at_line_break: str = Field("</think>\n\n", description="forced to end a reasoning at a line break")


@dataclass(frozen=True)
class BudgetPlan:
    """One request's budget, in token ids; travels to the engine in `SamplingParams.extra_args`."""

    budget: int
    grace: int
    strict: bool
    end_token_id: int
    close_ids: tuple[int, ...]
    close_at_line_break_ids: tuple[int, ...]
    starts_at_line_break: bool

    def to_extra_args(self) -> dict:
        return {EXTRA_ARGS_KEY: asdict(self)}

    @classmethod
    def from_extra_args(cls, extra_args: dict | None) -> BudgetPlan | None:
        fields = (extra_args or {}).get(EXTRA_ARGS_KEY)
        if fields is None:
            return None
        plan = cls(**{**fields, "close_ids": tuple(fields["close_ids"]),
                      "close_at_line_break_ids": tuple(fields["close_at_line_break_ids"])})
        if plan.budget < 0 or plan.grace < 0:
            raise ValueError(f"thinking budget and grace must be >= 0, got {plan.budget} and {plan.grace}")
        for name, ids in (("close", plan.close_ids), ("close_at_line_break", plan.close_at_line_break_ids)):
            if plan.end_token_id not in ids:
                raise ValueError(f"the {name} text must contain the end-of-thinking token {plan.end_token_id}")
        return plan


def line_break_token_ids(vocab_size: int, decode: Callable[[list[int]], str]) -> frozenset[int]:
    """Ids of the tokens whose text holds a line break: the places where `newline` mode may end reasoning."""
    return frozenset(i for i in range(vocab_size) if "\n" in decode([i]))


class BudgetTracker:
    """Follows one request's output tokens and says which token, if any, must come next."""

    def __init__(self, plan: BudgetPlan, line_break_ids: Iterable[int]):
        self.plan = plan
        self._line_breaks = line_break_ids
        self._seen = 0
        self._reasoning_tokens = 0
        self._at_line_break = plan.starts_at_line_break
        self._closing: tuple[int, ...] | None = None
        self._forced = 0
        self._finished = False
        # how the budget closed the reasoning: "budget_line_break" (at a line break, newline mode) or
        # "budget_cut" (the grace ran out, or strict mode); None while it has not
        self.closed_by: str | None = None

    def next_forced_token(self, output_ids: Sequence[int]) -> int | None:
        """The engine's view: the request's whole output so far in, the token to force (or None) out.

        A negative id is a placeholder, not a token: under async scheduling (GPU) vLLM's V1 runner appends
        -1 for the step in flight and later writes the real id over it in the same list
        (`gpu_model_runner.py` `_bookkeeping_sync`, `gpu_input_batch.py` `update_async_output_token_ids`,
        0.32 and 0.33). It repairs the lists before the logits processors' `apply` when a custom processor
        is registered, but they hold the placeholder at `update_state` time; reading stops at one either
        way, and resumes there next step."""
        # Incremental: each step only looks at the tokens added since the last one, so a long reasoning
        # costs O(n) in total, not O(n^2).
        end = len(output_ids)
        for index in range(self._seen, end):
            token = output_ids[index]
            if token < 0:
                end = index
                break
            self.observe(token)
        self._seen = end
        return self.forced_token()

    @property
    def wake_at(self) -> float:
        """The output length (placeholders included) below which `next_forced_token` cannot force a token:
        a reasoning that has not spent its budget needs at least that many more tokens. Infinite once the
        reasoning has ended. Lets a batch-level processor skip a request without running its tracker."""
        if self._finished:
            return float("inf")
        if self._closing is not None or self._reasoning_tokens >= self.plan.budget:
            return self._seen
        return self._seen + self.plan.budget - self._reasoning_tokens

    @property
    def closing_ids(self) -> tuple[int, ...] | None:
        """The closing text being forced, once `forced_token` has decided to close; None before."""
        return self._closing

    def forced_token(self) -> int | None:
        if self._finished:
            return None
        if self._closing is None and self._must_close():
            self._closing = self.plan.close_at_line_break_ids if self._at_line_break else self.plan.close_ids
            self.closed_by = "budget_line_break" if self._at_line_break and not self.plan.strict else "budget_cut"
        return None if self._closing is None else self._closing[self._forced]

    def observe(self, token: int) -> None:
        if self._finished:
            return
        if self._closing is not None:
            self._forced += 1
            self._finished = self._forced == len(self._closing)
        elif token == self.plan.end_token_id:
            self._finished = True
        else:
            self._reasoning_tokens += 1
            self._at_line_break = token in self._line_breaks

    def _must_close(self) -> bool:
        plan, spent = self.plan, self._reasoning_tokens
        if spent < plan.budget:
            return False
        return plan.strict or self._at_line_break or spent >= plan.budget + plan.grace


def budget_close(plan: BudgetPlan, line_break_ids: Iterable[int], output_ids: Sequence[int]) -> str | None:
    """Replays the tracker over a finished output: how the budget ended this reasoning ("budget_line_break"
    or "budget_cut", `BudgetTracker.closed_by`), or None when it did not."""
    tracker = BudgetTracker(plan, line_break_ids)
    for token in output_ids:
        if tracker.forced_token() is not None:
            return tracker.closed_by
        tracker.observe(token)
    return None
