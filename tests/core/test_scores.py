"""pass@k, majority@k and a graded job's figures per reasoning mode and budget (`batchgen.core.scores`)."""

from __future__ import annotations

from math import comb

import pytest

from batchgen.core.scores import majority_at_k, pass_at_k, scores


@pytest.mark.parametrize("n, c", [(1, 0), (1, 1), (4, 0), (4, 1), (4, 2), (5, 3), (10, 1), (10, 9), (16, 5)])
def test_pass_at_k_is_the_closed_form(n, c):
    for k in range(1, n + 1):
        assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_majority_at_k_with_ties_going_to_the_answer_seen_first():
    samples = [("7", False), ("8", True), ("8 ", True), ("7", False), (None, False)]
    assert majority_at_k(samples, 1) == 0.0  # 7 alone
    assert majority_at_k(samples, 2) == 0.0  # 7 vs 8 tie: 7 came first
    assert majority_at_k(samples, 3) == 1.0  # 8 twice (normalised)
    assert majority_at_k(samples, 4) == 0.0  # 7 twice, 8 twice: 7 first
    assert majority_at_k(samples, 5) == 0.0  # nothing extracted does not vote
    assert majority_at_k([(None, False)], 1) == 0.0


def row(id, i, correct, answer=None, reason=None, budget=None, reasoning="on", tokens=10):
    return {"id": id, "sample_index": i, "correct": correct, "extracted_answer": answer, "ungraded_reason": reason,
            "max_thinking_tokens": budget, "reasoning": reasoning, "reasoning_tokens": tokens}


def test_a_jobs_figures_per_budget_leaving_out_what_cannot_be_graded():
    rows = [
        # budget 32: record a 1 of 2 correct, record b 0 of 2 (one error row), record c has no reference
        row("a", 0, True, "x", budget=32, tokens=30), row("a", 1, False, "y", budget=32, tokens=32),
        row("b", 0, None, None, "error_row: an error row has no answer", budget=32, tokens=0),
        row("b", 1, False, "z", budget=32, tokens=20),
        row("c", 0, None, "w", "no_reference: answer is null", budget=32),
        # budget 64: both correct for a, b's answer nothing to extract
        row("a", 0, True, "x", budget=64, tokens=60), row("a", 1, True, "x", budget=64, tokens=50),
        row("b", 0, None, None, "no_answer: nothing to extract (boxed) in the answer", budget=64, tokens=64),
        row("b", 1, True, "q", budget=64, tokens=40),
    ]
    overall, *groups = scores(rows)
    by_budget = {g.max_thinking_tokens: g.as_dict() for g in groups}
    assert list(by_budget) == [32, 64]
    assert (overall.reasoning, overall.rows, overall.correct, overall.left_out, overall.records) == ("all", 8, 4, 1, 4)
    assert overall.pass_at == {1: pytest.approx((0.5 + 0 + 1 + 0.5) / 4), 2: pytest.approx(3 / 4)}
    low, high = by_budget[32], by_budget[64]
    assert (low["rows"], low["correct"], low["rows_left_out"], low["records"]) == (4, 1, 1, 2)
    assert low["accuracy"] == pytest.approx(0.25)
    assert low["mean_reasoning_tokens"] == pytest.approx((30 + 32 + 0 + 20) / 4)
    assert low["pass_at_k"] == {"1": pytest.approx(0.25), "2": pytest.approx(0.5)}  # (0.5 + 0)/2, (1 + 0)/2
    assert low["majority_at_k"] == {"1": 0.5, "2": 0.5}  # a: x first wins; b: z alone is wrong
    assert high["accuracy"] == pytest.approx(0.75)
    assert high["pass_at_k"] == {"1": pytest.approx(0.75), "2": pytest.approx(1.0)}
    assert high["majority_at_k"] == {"1": 0.5, "2": 1.0}  # b: nothing at k=1, q at k=2


def test_groups_by_reasoning_mode_then_budget():
    rows = [row("a", 0, True, "x", reasoning="off"), row("a", 0, False, "y", budget=8), row("a", 0, True, "x")]
    rows.append(row("b", None, None, None, "error_row: an error row has no answer", reasoning=None))
    assert [(g.reasoning, g.max_thinking_tokens, g.rows) for g in scores(rows)] == [
        ("all", None, 4), (None, None, 1), ("off", None, 1), ("on", None, 1), ("on", 8, 1)]


def test_a_judges_verdicts_grade_the_rows_they_judged_by_key():
    from batchgen.core.scores import judged

    rows = [row("a", 0, None, "x", budget=8), row("a", 1, None, "y", budget=8), row("b", 0, None, "z", budget=8),
            row("c", None, None, None, budget=8) | {"error": "engine_crash: died"}, row("d", 0, None, "w", budget=8)]
    verdicts = [  # the judge's rows, keyed by what they judged; d's judge row failed, b's has no row
        {"source_id": "a", "source_sample_index": 0, "source_max_thinking_tokens": 8, "correct": True, "ungraded_reason": None},
        {"source_id": "a", "source_sample_index": 1, "source_max_thinking_tokens": 8, "correct": False, "ungraded_reason": None},
        {"source_id": "d", "source_sample_index": 0, "source_max_thinking_tokens": 8, "correct": None,
         "ungraded_reason": "error_row: an error row has no answer"},
    ]
    graded = {(r["id"], r["sample_index"]): (r["correct"], (r["ungraded_reason"] or "").split(":")[0])
              for r in judged(rows, verdicts)}
    assert graded == {("a", 0): (True, ""), ("a", 1): (False, ""), ("b", 0): (None, "no_verdict"),
                      ("c", None): (None, "error_row"), ("d", 0): (None, "no_verdict")}
    overall = scores(judged(rows, verdicts))[0]
    assert (overall.rows, overall.correct, overall.left_out) == (3, 1, 2)  # a twice and c's error row count
