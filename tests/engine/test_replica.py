"""The replica on the real vLLM engine (CPU build) with the toy Nemotron-H model.

Budgets are checked to the token against an oracle: the same prompt generated greedily without a budget.
Under greedy decoding the budgeted reasoning is that reference's first n tokens, where n follows the card's
rule, then the closing text.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from batchgen.engine.preparer import RecordPreparer
from batchgen.record.budget import BudgetSpec, line_break_token_ids
from batchgen.toy import corpus
from tests.conftest import TEST_GRACE

pytestmark = pytest.mark.engine
GREEDY = {"temperature": 0.0}


def one(replica, **record):
    return replica.generate([{"id": "r", **GREEDY, **record}])[0]


def reference_ids(replica, prompt):
    """Token ids of the unbudgeted greedy reasoning (without its end token)."""
    ref = one(replica, prompt=prompt)
    assert not ref["thinking_budget_hit"] and ref["finish_reason"] == "stop" and ref["reasoning_end"] == "model"
    ids = replica.tokenizer.encode(ref["reasoning_content"] + "\n", add_special_tokens=False)
    assert len(ids) == ref["reasoning_tokens"] - 1, "the oracle needs the reference to re-tokenize exactly"
    return ids


def expected_cut(ids, budget, grace, strict, line_breaks):
    """How many of the model's reasoning tokens the rule keeps (an independent, plain reading of it)."""
    if budget == 0 or strict:
        return budget
    for n in range(budget, budget + grace + 1):
        if ids[n - 1] in line_breaks:
            return n
    return budget + grace


def check_cut(replica, row, ref, budget, grace, strict):
    tok = replica.tokenizer
    breaks = line_break_token_ids(len(tok), tok.decode)
    n = expected_cut(ref, budget, grace, strict, breaks)
    at_break = n == 0 or ref[n - 1] in breaks
    close = replica.preparer.prompts.close_at_line_break_ids if at_break else replica.preparer.prompts.close_ids
    closing = close[: close.index(replica.preparer.prompts.end_token_id) + 1]
    assert row["thinking_budget_hit"] is True
    assert row["reasoning_end"] == ("budget_line_break" if at_break and not strict else "budget_cut")
    assert row["reasoning_tokens"] == n + len(closing)
    assert row["reasoning_content"] == (tok.decode(ref[:n]) + tok.decode(list(closing[:-1]))).strip()
    # the answer follows in the same request
    assert row["content"] and row["finish_reason"] == "stop"
    return n


@pytest.mark.parametrize("budget", [0, 5, 9, 20])
def test_newline_budget_ends_at_the_next_line_break(replica, budget):
    prompt = corpus.steps_prompt("river")
    ref = reference_ids(replica, prompt)
    row = one(replica, prompt=prompt, max_thinking_tokens=budget)
    n = check_cut(replica, row, ref, budget, TEST_GRACE, strict=False)
    assert budget <= n < budget + TEST_GRACE  # the toy breaks lines often: the newline rule, not the grace
    lines = row["reasoning_content"].split("\n") if budget else []
    assert all(line.startswith("Step ") and line.endswith(" again.") for line in lines)  # whole lines only


def test_no_line_break_within_the_grace_cuts_abruptly(replica):
    prompt = corpus.ramble_prompt("stone")
    ref = reference_ids(replica, prompt)
    row = one(replica, prompt=prompt, max_thinking_tokens=10)
    assert check_cut(replica, row, ref, 10, TEST_GRACE, strict=False) == 10 + TEST_GRACE
    assert row["reasoning_content"].endswith(".") and "\n" not in row["reasoning_content"]


def test_strict_budget_cuts_exactly(replica):
    prompt = corpus.steps_prompt("maple")
    ref = reference_ids(replica, prompt)
    default = replica.preparer
    replica.preparer = RecordPreparer(default.model_name, default.tokenizer, default.profile,
                                      default.prompts.max_model_len, BudgetSpec(mode="strict"))
    try:
        rows = replica.generate([{"id": str(b), "prompt": prompt, "max_thinking_tokens": b, **GREEDY} for b in (3, 11)])
    finally:
        replica.preparer = default
    for budget, row in zip((3, 11), rows):
        assert check_cut(replica, row, ref, budget, 0, strict=True) == budget


def test_a_budget_larger_than_the_reasoning_changes_nothing(replica):
    prompt = corpus.echo_prompt("apple")
    free, budgeted = replica.generate([
        {"id": "free", "prompt": prompt, **GREEDY},
        {"id": "big", "prompt": prompt, "max_thinking_tokens": 400, **GREEDY},
    ])
    assert budgeted["thinking_budget_hit"] is False and budgeted["reasoning_end"] == "model"
    assert (budgeted["reasoning_content"], budgeted["content"]) == (free["reasoning_content"], free["content"])


def test_split_and_token_counts(replica):
    row = one(replica, prompt=corpus.echo_prompt("apple"))
    assert row["reasoning"] == "on" and row["finish_reason"] == "stop" and row["error"] is None
    assert "</think>" not in row["reasoning_content"] and "</think>" not in row["content"]
    assert row["reasoning_content"].startswith("The user wants the word")
    # the answer as generated: "\n\n" after </think>, the content, "\n" and the end-of-turn token
    answer = replica.tokenizer.encode(f"\n\n{row['content']}\n<SPECIAL_12>", add_special_tokens=False)
    assert row["completion_tokens"] == row["reasoning_tokens"] + len(answer)
    prompt = replica.preparer.build({"id": "r", "prompt": corpus.echo_prompt("apple")}, "r").prompt_ids
    assert row["prompt_tokens"] == len(prompt)


def test_reasoning_off_answers_directly(replica):
    row = one(replica, prompt=corpus.echo_prompt("apple"), reasoning="off")
    assert row["reasoning"] == "off" and row["reasoning_content"] is None and row["reasoning_tokens"] == 0
    # The toy follows the format, not always the content: it answers with one of its words (README, limits).
    assert row["content"] in corpus.WORDS


def test_mixed_batch_of_modes_and_budgets(replica):
    records = []
    for i, word in enumerate(corpus.WORDS[:12]):
        mode = ("on", "off", None)[i % 3]
        budget = (None, 4, 12, 30)[i % 4]
        records.append({"id": f"m{i}", "prompt": corpus.steps_prompt(word), "reasoning": mode,
                        "max_thinking_tokens": budget, **GREEDY})
    rows = replica.generate(records)
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    for record, row in zip(records, rows):
        assert row["error"] is None and row["finish_reason"] == "stop", row
        if record["reasoning"] == "off":
            assert row["reasoning_content"] is None and not row["thinking_budget_hit"]
            continue
        budget = record["max_thinking_tokens"]
        if budget is None:
            assert not row["thinking_budget_hit"] and row["reasoning_content"].count("\n") == corpus.STEP_LINES - 1
        else:
            kept = row["reasoning_tokens"] - 1  # every steps line ends on a line break: closed with </think> alone
            assert row["thinking_budget_hit"] and budget <= kept < budget + TEST_GRACE


def test_turn_level_flags(replica):
    rows = replica.generate([
        {"id": "user-off", **GREEDY, "messages": [{"role": "user", "content": corpus.echo_prompt("apple") + " /no_think"}]},
        {"id": "sys-off-user-on", **GREEDY, "messages": [
            {"role": "system", "content": "/no_think"}, {"role": "user", "content": corpus.echo_prompt("river") + " /think"}]},
        {"id": "field-wins", **GREEDY, "reasoning": "on", "system": "/no_think", "prompt": corpus.echo_prompt("stone")},
    ])
    assert [r["reasoning"] for r in rows] == ["off", "on", "on"]
    assert rows[0]["content"] in corpus.WORDS and rows[0]["reasoning_content"] is None
    assert rows[1]["reasoning_content"].startswith("The user wants the word")


def test_max_tokens_hit_while_thinking_keeps_the_reasoning(replica):
    row = one(replica, prompt=corpus.steps_prompt("river"), max_tokens=25)
    assert row["finish_reason"] == "length"
    assert row["reasoning_content"].startswith("Step 1:") and row["content"] == ""
    assert row["completion_tokens"] == row["reasoning_tokens"] == 25


def test_tool_calls_are_parsed(replica):
    row = one(replica, prompt=corpus.weather_prompt("Paris"), tools=corpus.TOOLS)
    assert row["finish_reason"] == "tool_calls" and row["error"] is None
    (call,) = row["tool_calls"]
    assert call["name"] in {"get_weather", "get_time"} and call["id"].startswith("call_")
    assert set(json.loads(call["arguments"])) == {"city"}


def test_bad_records_become_error_rows_and_the_rest_succeed(replica):
    records = [
        {"id": "ok1", "prompt": corpus.echo_prompt("apple"), "reasoning": "off", **GREEDY},
        {"id": "bad-type", "prompt": "x", "max_tokens": "abc"},
        {"id": "too-long", "prompt": "word " * 3000},
        {"id": "no-prompt"},
        {"id": "bad-top-k", "prompt": "x", "top_k": -1, "reasoning": "off", "max_tokens": 2, **GREEDY},
        {"id": "ok2", "prompt": corpus.echo_prompt("river"), "reasoning": "off", **GREEDY},
    ]
    rows = replica.generate(records)
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    codes = {r["id"]: (r["error"] or "").split(":")[0] for r in rows}
    assert codes == {"ok1": "", "bad-type": "invalid_type", "too-long": "prompt_too_long",
                     "no-prompt": "missing_prompt", "bad-top-k": "", "ok2": ""}
    assert rows[0]["content"] and rows[-1]["content"] and rows[4]["completion_tokens"] <= 2
    assert all(r["finish_reason"] == "error" for r in rows[1:4])


def native(replica, record, **params):
    """The engine's own output for a record's prompt, with vLLM's own stop-string handling (the oracle):
    `params` override the record's sampling values."""
    from vllm import SamplingParams

    prepared = replica.preparer.build({"id": "native", **GREEDY, **record}, "native")
    sampling = SamplingParams(**{**prepared.sampling, **params})

    async def run():
        prompt = {"prompt_token_ids": prepared.prompt_ids}
        async for output in replica._engine.generate(prompt, sampling, f"native-{uuid.uuid4().hex}"):
            final = output
        return final.outputs[0]

    return replica._run(run())


def stop_cut(tokenizer, answer_ids, stop):
    """How many answer tokens vLLM keeps for a stop string (up to the one completing it) and the text
    before it, read plainly: the shortest prefix whose text holds the string."""
    for n in range(1, len(answer_ids) + 1):
        text = tokenizer.decode(answer_ids[:n], skip_special_tokens=True)
        if stop in text:
            return n, text[: text.index(stop)]
    raise AssertionError(f"{stop!r} is not in the answer")


def test_stop_strings_apply_to_the_answer_only(replica):
    record = {"prompt": corpus.steps_prompt("river")}
    ref = one(replica, **record)
    ids = list(native(replica, record).token_ids)
    end = ids.index(replica.preparer.prompts.end_token_id) + 1
    assert " " in ref["reasoning_content"] and " " in ref["content"]
    n, before = stop_cut(replica.tokenizer, ids[end:], " ")
    row = one(replica, **record, stop=[" "])
    assert row["reasoning_content"] == ref["reasoning_content"]  # the whole reasoning, spaces and all
    assert row["reasoning_tokens"] == ref["reasoning_tokens"] == end
    assert row["content"] == before.strip() == ref["content"].split(" ")[0]
    assert row["finish_reason"] == "stop" and row["error"] is None
    assert row["completion_tokens"] == end + n < ref["completion_tokens"]
    assert replica._engine.get_num_unfinished_requests() == 0  # the cut request was aborted, not left running


def test_a_stop_string_only_in_the_reasoning_does_not_stop_it(replica):
    record = {"prompt": corpus.steps_prompt("maple")}
    ref = one(replica, **record)
    assert "Step 3" in ref["reasoning_content"] and "Step 3" not in ref["content"]
    row = one(replica, **record, stop=["Step 3", "never said"])
    assert row == ref


def test_stop_strings_after_a_thinking_budget(replica):
    record = {"prompt": corpus.steps_prompt("stone"), "max_thinking_tokens": 5}
    ref = one(replica, **record)
    row = one(replica, **record, stop="about")
    assert row["thinking_budget_hit"] and row["reasoning_content"] == ref["reasoning_content"]
    assert "about" in ref["content"] and row["content"] == ref["content"].split("about")[0].strip()
    assert row["reasoning_tokens"] == ref["reasoning_tokens"] and row["finish_reason"] == "stop"


def test_max_tokens_in_the_reasoning_with_stop_strings(replica):
    row = one(replica, prompt=corpus.steps_prompt("river"), max_tokens=25, stop=[" ", "Step"])
    assert row["finish_reason"] == "length" and row["content"] == ""
    assert row["reasoning_content"].startswith("Step 1: I look at")
    assert row["completion_tokens"] == row["reasoning_tokens"] == 25


@pytest.mark.parametrize("stop", [[" "], "ught ab", ["river", "thought"], ["t ab", "ught"], ["."]])
def test_reasoning_off_stops_as_vllm_does(replica, stop):
    record = {"prompt": corpus.steps_prompt("river"), "reasoning": "off"}
    expected = native(replica, record, stop=stop, detokenize=True)
    assert expected.finish_reason == "stop" and isinstance(expected.stop_reason, str)
    row = one(replica, **record, stop=stop)
    assert row["reasoning_content"] is None and row["finish_reason"] == "stop"
    assert row["content"] == expected.text.strip()
    assert row["completion_tokens"] == len(expected.token_ids)


def test_an_empty_stop_string_is_an_invalid_value(replica):
    row = one(replica, prompt=corpus.echo_prompt("apple"), stop=["x", ""])
    assert row["finish_reason"] == "error"
    assert row["error"] == "invalid_value: stop: an empty string cannot be a stop string (got ['x', ''])"


def test_sampling_with_a_seed_is_reproducible(replica):
    record = {"id": "s", "prompt": corpus.echo_prompt("apple"), "seed": 7, "temperature": 1.0}
    first, second = replica.generate([record, dict(record)])
    assert (first["reasoning_content"], first["content"]) == (second["reasoning_content"], second["content"])


def test_many_callers_share_the_engine(replica):
    records = [{"id": f"w{i}", "prompt": corpus.echo_prompt(w), "reasoning": "off", **GREEDY}
               for i, w in enumerate(corpus.WORDS[:8])]
    alone = [row["content"] for row in replica.generate(records)]
    results = {}

    def call(name):
        results[name] = replica.generate(records)

    threads = [threading.Thread(target=call, args=(n,)) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("a", "b", "c"):
        assert [r["content"] for r in results[name]] == alone



def test_reasoning_that_never_closed_says_why(replica):
    cut, off = replica.generate([
        {"id": "cut", "prompt": corpus.steps_prompt("river"), "max_tokens": 6, **GREEDY},
        {"id": "off", "prompt": corpus.echo_prompt("apple"), "reasoning": "off", **GREEDY},
    ])
    assert (cut["reasoning_end"], cut["finish_reason"], cut["content"]) == ("length", "length", "")
    assert off["reasoning_end"] is None
