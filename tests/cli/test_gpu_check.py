"""`make gpu-check`'s checks, on this CPU machine: the budget rule it applies to rows, and its refusal to
run without a GPU (the demo test runs its output check on the real CPU output)."""

from __future__ import annotations

from batchgen.cli import gpu_check


def row(rid, reasoning_tokens, hit=False, reasoning="on", error=None):
    return {"id": rid, "reasoning": reasoning, "reasoning_tokens": reasoning_tokens, "thinking_budget_hit": hit,
            "error": error}


def test_rows_that_break_the_budget_rule_are_named():
    rows = [row("kept", 30, hit=True), row("natural", 5), row("over", 40, hit=True), row("early", 3, hit=True),
            row("free", 300), row("phantom", 10, hit=True), row("off", 500, reasoning="off"),
            row("bad", 0, error="invalid_type: x")]
    budgets = {"kept": 16, "natural": 16, "over": 16, "early": 8}
    assert gpu_check.budget_findings(rows, budgets, grace=10, close_tokens=4) == [
        "over: 40 reasoning tokens, past budget 16 + grace 10 + 4 closing",
        "early: cut at 3 reasoning tokens, before its budget 8",
        "phantom: no budget, yet thinking_budget_hit",
    ]


def test_without_a_gpu_it_says_so_and_fails(capsys):
    assert gpu_check.main() == 1  # these machines have no GPU
    assert "gpu-check: no GPU visible to torch" in capsys.readouterr().err
