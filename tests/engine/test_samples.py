"""What a record can ask for beyond one free answer, on the real vLLM engine (CPU build) with the toy
Nemotron-H: `n` samples with reproducible seeds, structured answers (vLLM's structured outputs, applied to
the answer only), logprobs split like the text, and Nemotron's tool calls end to end. The toy model was
never trained to write JSON, so its structured answers are grammar-shaped, not meaningful: what is checked
is that the grammar holds for the answer and leaves the reasoning free."""

from __future__ import annotations

import json
import re

import pytest

from batchgen.toy import corpus

pytestmark = pytest.mark.engine
SAMPLED = {"prompt": corpus.steps_prompt("river"), "temperature": 1.0, "max_tokens": 40}
WORD_SCHEMA = {"type": "object", "properties": {"word": {"type": "string", "maxLength": 8}}, "required": ["word"],
               "additionalProperties": False}


def texts(rows):
    return [(r["reasoning_content"], r["content"]) for r in rows]


def test_n_samples_are_rows_that_a_rerun_draws_again(replica):
    rows = replica.generate([{"id": "s", "n": 3, **SAMPLED}])
    assert [(r["id"], r["sample_index"]) for r in rows] == [("s", 0), ("s", 1), ("s", 2)]
    assert len(set(texts(rows))) == 3  # each sample its own seed: three different draws
    # A rerun, among other records (as a resumed job would batch it), draws the same samples.
    again = replica.generate([{"id": "other", "prompt": corpus.echo_prompt("pear")}, {"id": "s", "n": 3, **SAMPLED}])
    assert texts(again[1:]) == texts(rows)
    # The seeds come from the job's seed, the id and the index: another id draws other samples.
    assert texts(replica.generate([{"id": "t", "n": 3, **SAMPLED}])) != texts(rows)


def test_a_record_seed_gives_sample_k_the_seed_plus_k(replica):
    # As vLLM seeds the children of a request with n (parallel_sampling.py): seed + index.
    samples = replica.generate([{"id": "s", "n": 2, "seed": 7, **SAMPLED}])
    alone = replica.generate([{"id": "s", "seed": 8, **SAMPLED}])
    assert texts(samples[1:]) == texts(alone)


@pytest.mark.parametrize("constraint, holds", [
    ({"structured_outputs": {"choice": ["alpha", "beta"]}}, lambda c: c in ("alpha", "beta")),
    ({"structured_outputs": {"regex": "[a-z]+ [0-9]{2}"}}, lambda c: re.fullmatch("[a-z]+ [0-9]{2}", c)),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": WORD_SCHEMA}}},
     lambda c: set(json.loads(c)) == {"word"} and len(json.loads(c)["word"]) <= 8),
])
def test_a_structured_answer_holds_and_the_reasoning_stays_free(replica, constraint, holds):
    free = replica.generate([{"id": "f", "prompt": corpus.echo_prompt("apple"), "temperature": 0}])[0]
    row = replica.generate([{"id": "c", "prompt": corpus.echo_prompt("apple"), "temperature": 0, "max_tokens": 300,
                             **constraint}])[0]
    assert row["error"] is None and row["finish_reason"] == "stop" and holds(row["content"]), (row["content"], row["finish_reason"], row["completion_tokens"])
    # The grammar starts after </think>: the reasoning is the unconstrained one, token for token.
    assert row["reasoning_content"] == free["reasoning_content"] and row["reasoning_end"] == "model"
    assert row["content"] != free["content"]


def test_a_structured_answer_under_a_thinking_budget(replica):
    row = replica.generate([{"id": "b", "prompt": corpus.steps_prompt("apple"), "temperature": 0, "max_thinking_tokens": 5,
                             "structured_outputs": {"choice": ["alpha", "beta"]}}])[0]
    assert row["thinking_budget_hit"] and row["reasoning_end"].startswith("budget")
    assert row["content"] in ("alpha", "beta") and row["error"] is None


def test_a_cut_structured_answer_keeps_its_text_and_says_so(replica):
    # json_object: any JSON object; the toy, never taught JSON, opens one and rambles inside a string.
    row = replica.generate([{"id": "cut", "prompt": corpus.echo_prompt("apple"), "temperature": 0, "max_tokens": 19,
                             "response_format": {"type": "json_object"}}])[0]
    assert row["finish_reason"] == "length" and row["content"].startswith("{")
    assert row["error"].startswith("invalid_structured_output: response_format: the answer is not JSON")


def test_a_schema_vllm_cannot_compile_is_an_error_row_naming_the_field(replica):
    bad = {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "strin"}}}
    (row,) = replica.generate([{"id": "bad", "prompt": "x", "n": 2, "response_format": bad}])
    assert row["error"].startswith("invalid_value: response_format: Grammar error") and row["sample_index"] is None


@pytest.mark.parametrize("stop", [None, ["zebra"]])  # final output, and the streamed path answer-only stops use
def test_logprobs_are_split_like_the_text(replica, stop):
    row = replica.generate([{"id": "lp", "prompt": corpus.echo_prompt("apple"), "temperature": 0, "logprobs": True,
                             "top_logprobs": 2, **({"stop": stop} if stop else {})}])[0]
    lp = row["logprobs"]
    assert len(lp["reasoning_content"]) == row["reasoning_tokens"]
    assert len(lp["content"]) == row["completion_tokens"] - row["reasoning_tokens"]
    assert lp["reasoning_content"][-1]["token"] == "</think>"
    assert row["content"] in "".join(t["token"] for t in lp["content"])
    for token in lp["reasoning_content"] + lp["content"]:
        # Greedy: the chosen token is the most likely one, and the alternatives come most likely first.
        assert len(token["top_logprobs"]) == 2 and token["top_logprobs"][0]["token"] == token["token"]
        assert token["top_logprobs"][0]["logprob"] >= token["top_logprobs"][1]["logprob"]
    off = replica.generate([{"id": "off", "prompt": corpus.echo_prompt("apple"), "reasoning": "off", "logprobs": True}])[0]
    assert off["logprobs"]["reasoning_content"] is None and all(t["top_logprobs"] == [] for t in off["logprobs"]["content"])
    assert replica.generate([{"id": "none", "prompt": "x", "max_tokens": 2}])[0]["logprobs"] is None


def test_nemotron_tool_calls_with_n_samples(replica):
    rows = replica.generate([{"id": "w", "prompt": corpus.weather_prompt("Paris"), "tools": corpus.TOOLS, "n": 2,
                              "temperature": 0}])
    assert [r["sample_index"] for r in rows] == [0, 1]
    assert rows[0]["tool_calls"][0]["id"] != rows[1]["tool_calls"][0]["id"]  # call ids unique across samples
    for row in rows:
        (call,) = row["tool_calls"]
        assert row["finish_reason"] == "tool_calls" and set(json.loads(call["arguments"])) == {"city"}


SWEEP = [0, 8, 20, None]


@pytest.mark.parametrize("prompt", [corpus.steps_prompt("river"), corpus.ramble_prompt("stone"), corpus.echo_prompt("apple")])
def test_a_budget_sweep_gives_token_for_token_the_rows_of_separate_runs(replica, prompt):
    # Greedy: one reasoning with forks at each smaller budget's cut point, against one run per budget.
    record = {"id": "w", "prompt": prompt, "temperature": 0, "max_tokens": 200}
    swept = replica.generate([{**record, "max_thinking_tokens": SWEEP}])
    separate = replica.generate([{**record, "max_thinking_tokens": b} for b in SWEEP])
    assert [r["max_thinking_tokens"] for r in swept] == SWEEP
    assert swept == separate
    if prompt != corpus.echo_prompt("apple"):  # the long reasonings are cut by every finite budget
        assert [r["thinking_budget_hit"] for r in swept] == [True, True, True, False]


def test_a_budget_the_model_never_reaches_is_the_unbudgeted_row(replica):
    rows = replica.generate([{"id": "e", "prompt": corpus.echo_prompt("apple"), "temperature": 0,
                              "max_thinking_tokens": [150, None]}])
    assert {**rows[0], "max_thinking_tokens": None} == rows[1] and not rows[0]["thinking_budget_hit"]


def test_a_sweep_forks_only_where_budgets_cut_and_samples_sweep_each(replica):
    before = dict(replica.engine_tokens)
    rows = replica.generate([{"id": "s", "prompt": corpus.steps_prompt("river"), "n": 2, "temperature": 1.0,
                              "max_tokens": 120, "max_thinking_tokens": [4, 16, None]}])
    assert [(r["sample_index"], r["max_thinking_tokens"]) for r in rows] == [
        (0, 4), (0, 16), (0, None), (1, 4), (1, 16), (1, None)]
    # Each sample's budgets share its reasoning up to their cut: the smaller one's is a prefix of the larger.
    for k in (0, 1):
        small, mid, full = (r["reasoning_content"] for r in rows[3 * k:3 * k + 3])
        assert full.startswith(mid.rstrip(".").rstrip()) and mid.startswith(small.rstrip(".").rstrip())
    # Decoded: each sample's unbudgeted run once, plus only the answers of its two forks.
    decoded = replica.engine_tokens["decode"] - before["decode"]
    full_runs = sum(r["completion_tokens"] for r in rows if r["max_thinking_tokens"] is None)
    assert full_runs <= decoded < full_runs + sum(r["completion_tokens"] - r["reasoning_tokens"] for r in rows)


def test_with_reasoning_off_every_budget_is_the_same_generation(replica):
    rows = replica.generate([{"id": "o", "prompt": corpus.echo_prompt("apple"), "reasoning": "off",
                              "max_thinking_tokens": [0, 64]}])
    assert rows[0]["content"] == rows[1]["content"] and [r["max_thinking_tokens"] for r in rows] == [0, 64]


def test_a_stop_string_in_the_forced_close_stops_a_fork_as_it_stops_a_separate_run(replica):
    # The close text ends "</think>\n\n": a stop string "\n\n" matches inside it, before any request is sent.
    record = {"id": "z", "prompt": corpus.steps_prompt("river"), "temperature": 0, "max_tokens": 200, "stop": ["\n\n"]}
    swept = replica.generate([{**record, "max_thinking_tokens": [0, 8, None]}])
    assert swept == replica.generate([{**record, "max_thinking_tokens": b} for b in (0, 8, None)])
    # the forks' closes held the stop string (the unbudgeted reasoning runs on to max_tokens)
    assert [(r["finish_reason"], r["content"]) for r in swept[:2]] == [("stop", ""), ("stop", "")]
