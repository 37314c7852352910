"""The budget rules on synthetic token ids: no engine, every branch."""

import pytest

from batchgen.record.budget import (
    BudgetPlan,
    BudgetTracker,
    budget_close,
    line_break_token_ids,
)

NL, END, DOT, WORD = 10, 99, 5, 1
LINE_BREAKS = {NL}


def plan(budget, grace=3, strict=False, starts_at_line_break=True):
    return BudgetPlan(budget, grace, strict, END, (DOT, NL, END, NL), (END, NL), starts_at_line_break)


def run(plan_, model_tokens):
    """Feeds the model's tokens, obeying forced ones as the engine does; returns the generated ids."""
    tracker, out, model = BudgetTracker(plan_, LINE_BREAKS), [], iter(model_tokens)
    while True:
        forced = tracker.next_forced_token(out)
        token = forced if forced is not None else next(model, None)
        if token is None:
            return out
        out.append(token)


def test_no_cut_before_budget_and_natural_end_is_left_alone():
    assert run(plan(10), [WORD, NL, WORD, END, WORD]) == [WORD, NL, WORD, END, WORD]


def test_newline_mode_ends_at_the_first_line_break_after_the_budget():
    out = run(plan(3, grace=10), [WORD, NL, WORD, WORD, WORD, NL, WORD, WORD])
    # 3 tokens reached mid-line: wait for the line break at token 6, then close with the line-break text.
    assert out == [WORD, NL, WORD, WORD, WORD, NL, END, NL, WORD, WORD]


def test_line_break_exactly_at_the_budget_closes_at_once():
    assert run(plan(2, grace=10), [WORD, NL, WORD]) == [WORD, NL, END, NL, WORD]


def test_no_line_break_within_grace_cuts_abruptly_at_budget_plus_grace():
    out = run(plan(2, grace=3), [WORD] * 10)
    assert out[:5] == [WORD] * 5 and out[5:9] == [DOT, NL, END, NL] and out[9:] == [WORD] * 5


def test_strict_mode_cuts_exactly_at_the_budget():
    assert run(plan(2, strict=True), [WORD, WORD, WORD]) == [WORD, WORD, DOT, NL, END, NL, WORD]


def test_zero_budget_closes_before_any_reasoning():
    assert run(plan(0), [WORD]) == [END, NL, WORD]
    # a prompt that does not end on a line break gets the abrupt close in strict mode
    assert run(plan(0, strict=True, starts_at_line_break=False), [WORD]) == [DOT, NL, END, NL, WORD]


def test_tracker_only_looks_at_new_tokens():
    tracker = BudgetTracker(plan(1, grace=0), LINE_BREAKS)
    assert tracker.next_forced_token([WORD]) == DOT
    assert tracker.next_forced_token([WORD, DOT]) == NL


def test_budget_close_replays_the_rules_and_says_how_the_budget_closed():
    assert budget_close(plan(2, grace=1), LINE_BREAKS, [WORD, WORD, WORD, DOT, NL, END, NL]) == "budget_cut"
    assert budget_close(plan(2, grace=10), LINE_BREAKS, [WORD, NL, END, NL, WORD]) == "budget_line_break"
    # strict mode is a cut even where it lands on a line break
    assert budget_close(plan(2, strict=True), LINE_BREAKS, [WORD, NL, END, NL, WORD]) == "budget_cut"
    assert budget_close(plan(5), LINE_BREAKS, [WORD, NL, END, WORD]) is None  # the model closed it first
    assert budget_close(plan(2), LINE_BREAKS, [WORD]) is None  # max_tokens came first


def test_plan_travels_through_extra_args_and_is_checked():
    p = plan(4)
    assert BudgetPlan.from_extra_args(p.to_extra_args()) == p
    assert BudgetPlan.from_extra_args(None) is None
    bad = p.to_extra_args()
    bad["batchgen_thinking_budget"]["close_ids"] = [DOT]
    with pytest.raises(ValueError, match="end-of-thinking"):
        BudgetPlan.from_extra_args(bad)


def test_line_break_ids_are_found_by_decoding():
    vocab = {0: "a", 1: "\n", 2: ".\n", 3: "b"}
    assert line_break_token_ids(4, lambda ids: vocab[ids[0]]) == {1, 2}


def test_wake_at_is_the_first_output_length_a_cut_can_come_at():
    tracker = BudgetTracker(plan(3, grace=10), LINE_BREAKS)
    assert tracker.wake_at == 3
    assert tracker.next_forced_token([WORD, NL]) is None and tracker.wake_at == 3  # 2 spent, 1 to go
    assert tracker.next_forced_token([WORD, NL, WORD]) is None and tracker.wake_at == 3  # spent mid-line: watch
    assert tracker.next_forced_token([WORD, NL, WORD, WORD]) is None and tracker.wake_at == 4
    ended = BudgetTracker(plan(3), LINE_BREAKS)
    ended.next_forced_token([WORD, END])
    assert ended.wake_at == float("inf")  # the model closed its reasoning: nothing more to force


@pytest.mark.parametrize("seed", range(20))
def test_skipping_steps_before_wake_at_changes_nothing(seed):
    import random

    rng = random.Random(seed)
    model = [rng.choice([WORD, WORD, WORD, NL, END]) for _ in range(40)]
    budget_plan = plan(rng.randint(0, 12), grace=rng.randint(0, 5), strict=rng.random() < 0.3)
    tracker, out, tokens = BudgetTracker(budget_plan, LINE_BREAKS), [], iter(model)
    while True:  # as the batch processor drives it: the tracker runs only from wake_at on
        forced = tracker.next_forced_token(out) if len(out) >= tracker.wake_at else None
        token = forced if forced is not None else next(tokens, None)
        if token is None:
            break
        out.append(token)
    assert out == run(budget_plan, model)


def test_a_placeholder_at_the_end_is_read_once_it_is_a_token():
    tracker = BudgetTracker(plan(1, grace=0), LINE_BREAKS)
    assert tracker.next_forced_token([-1]) is None  # the step in flight (async scheduling): not a token yet
    assert tracker.next_forced_token([WORD]) == DOT  # its real id, written over it, is counted
