"""Budget sweeps on synthetic token ids (pure): where each smaller budget forks from the running reasoning
is exactly where a separate run at that budget would be forced to close it."""

import random

import pytest

from batchgen.record.contract import normalize
from batchgen.record.sweep import ForkWatch, sweep_order
from tests.record.test_budget import END, LINE_BREAKS, NL, WORD, plan, run


def forks_of(budgets, model_tokens, **kw):
    watch = ForkWatch({b: plan(b, **kw) for b in budgets}, LINE_BREAKS)
    return {f.budget: (f.position, f.close_ids) for token in model_tokens for f in watch.push(token)}


@pytest.mark.parametrize("strict", [False, True])
def test_a_fork_plus_the_model_is_the_separate_run(strict):
    # For random reasoning, each budget's fork (kept tokens + close) is the start of a separate run at that
    # budget, which then goes on with what the model writes.
    rng = random.Random(7)
    for _ in range(200):
        unbudgeted = [rng.choice([WORD, WORD, NL]) for _ in range(rng.randint(1, 30))] + [END, WORD]
        budgets = [0, 2, 5, 9, 14]
        forks = forks_of(budgets, unbudgeted, grace=3, strict=strict)
        for b in budgets:
            separate = run(plan(b, grace=3, strict=strict), unbudgeted)
            if b in forks:
                position, close = forks[b]
                assert separate[:position + len(close)] == unbudgeted[:position] + list(close)
            else:  # the model closed its reasoning first: the separate run is the unbudgeted one
                assert separate == unbudgeted


def test_forks_come_as_soon_as_the_cut_point_passes():
    watch = ForkWatch({2: plan(2, grace=10), 4: plan(4, grace=10)}, LINE_BREAKS)
    tokens = [WORD, WORD, NL, WORD, WORD, WORD, NL, WORD]
    due = [[f.budget for f in watch.push(t)] for t in tokens]
    # budget 2: the line break after 2 tokens is token 3 -> forks before the 4th token; budget 4: token 7.
    assert due == [[], [], [], [2], [], [], [], [4]]
    assert not watch and not ForkWatch({}, LINE_BREAKS)  # nothing left to fork


def test_sweep_order_runs_no_budget_last():
    assert sweep_order([256, None, 0, 1024]) == [0, 256, 1024, None]
    assert sweep_order([8, 2]) == [2, 8]


def test_a_sweep_is_checked_as_a_record_field():
    assert normalize({"prompt": "x", "max_thinking_tokens": [0, 16, None]}).max_thinking_tokens == [0, 16, None]
    assert str(normalize({"prompt": "x", "max_thinking_tokens": [4, 4]})) == \
        "invalid_value: max_thinking_tokens: a budget sweep lists distinct budgets, at least one (got [4, 4])"
    assert str(normalize({"prompt": "x", "max_thinking_tokens": [1, -2]})).startswith(
        "out_of_range: max_thinking_tokens[1]: Input should be greater than or equal to 0")
    assert str(normalize({"prompt": "x", "max_thinking_tokens": [1, None], "logprobs": True})) == \
        "invalid_value: logprobs: not with a budget sweep (max_thinking_tokens is a list)"
