"""Rows from engine outputs (`batchgen.engine.shaping`) with the toy tokenizer, no engine: the reasoning
split at the end-of-thinking id, answers, stop-string contents, logprobs, tool calls, a budget's close, the
error row of a failed sample and vLLM's refusals."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from batchgen.engine.preparer import RecordPreparer
from batchgen.engine.shaping import Completion, RowShaper, refused
from batchgen.engine.tool_parsers import ToolParser, tool_parser_for
from batchgen.record.answers import IMPOSSIBLE_LOGPROB, tool_call_id
from batchgen.record.budget import BudgetSpec, line_break_token_ids
from batchgen.record.profiles import PROFILES
from batchgen.record.rows import OUTPUT_FIELDS

NEMOTRON = PROFILES["nemotron-nano-v2"]


@pytest.fixture(scope="module")
def preparer(toy_tokenizer):
    return RecordPreparer("toy", toy_tokenizer, NEMOTRON, 1024, BudgetSpec(grace_tokens=4))


@pytest.fixture(scope="module")
def shaper(toy_tokenizer, preparer):
    return make_shaper(toy_tokenizer, preparer, tool_parser_for(NEMOTRON.name, toy_tokenizer))


def make_shaper(tokenizer, preparer, tool_parser):
    return RowShaper(tokenizer, tool_parser, preparer.prompts.end_token_id,
                     line_break_token_ids(len(tokenizer), tokenizer.decode), "toy")


def ids(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def test_the_split_is_at_the_end_of_thinking_id(shaper, preparer, toy_tokenizer):
    prepared = preparer.prepare({"id": "r", "prompt": "hello"}, "r")
    generated = ids(toy_tokenizer, "I think.\n</think>\n\nApple\n<SPECIAL_12>")
    end = generated.index(shaper.end_token_id) + 1
    assert end == 6  # the end token is the reasoning's last
    row = shaper.row(prepared, Completion(generated, "stop"), 0, None, None)
    assert tuple(row) == OUTPUT_FIELDS
    assert (row["reasoning_content"], row["content"], row["error"]) == ("I think.", "Apple", None)
    assert (row["reasoning_tokens"], row["completion_tokens"], row["prompt_tokens"]) == (end, 12, len(prepared.prompt_ids))
    assert (row["reasoning"], row["reasoning_end"], row["finish_reason"], row["thinking_budget_hit"]) == \
        ("on", "model", "stop", False)
    assert (row["id"], row["model"], row["sample_index"], row["tool_calls"], row["logprobs"]) == ("r", "toy", 0, None, None)


def test_reasoning_that_never_closed_is_all_reasoning(shaper, preparer, toy_tokenizer):
    prepared = preparer.prepare({"prompt": "hello"}, "r")
    row = shaper.row(prepared, Completion(ids(toy_tokenizer, "Step 1: I look"), "length"), 0, None, None)
    assert (row["reasoning_content"], row["content"], row["reasoning_end"]) == ("Step 1: I look", "", "length")
    assert row["reasoning_tokens"] == row["completion_tokens"] == len(ids(toy_tokenizer, "Step 1: I look"))


def test_reasoning_off_is_all_answer(shaper, preparer, toy_tokenizer):
    prepared = preparer.prepare({"prompt": "hello", "reasoning": "off"}, "o")
    # A "</think>" the model writes with reasoning off is the answer's text, not a split.
    generated = ids(toy_tokenizer, "Apple </think> pear\n<SPECIAL_12>")
    row = shaper.row(prepared, Completion(generated, "stop"), 0, None, None)
    assert (row["reasoning"], row["reasoning_content"], row["content"]) == ("off", None, "Apple </think> pear")
    assert (row["reasoning_tokens"], row["completion_tokens"], row["reasoning_end"]) == (0, len(generated), None)


def test_a_stop_strings_content_is_the_answer(shaper, preparer, toy_tokenizer):
    prepared = preparer.prepare({"prompt": "hello", "stop": " pear"}, "s")
    generated = ids(toy_tokenizer, "Hm.\n</think>\n\nApple pear")
    row = shaper.row(prepared, Completion(generated, "stop", content="Apple"), 0, None, None)
    assert (row["reasoning_content"], row["content"], row["finish_reason"]) == ("Hm.", "Apple", "stop")
    assert row["completion_tokens"] == len(generated)


def position(chosen, logprob, *others):
    """vLLM's logprobs at one position: {token id: Logprob(logprob, rank)}, the chosen token first."""
    entries = [(chosen, logprob, 1), *((tid, lp, rank) for rank, (tid, lp) in enumerate(others, start=2))]
    return {tid: SimpleNamespace(logprob=lp, rank=rank) for tid, lp, rank in entries}


def test_logprobs_are_split_like_the_text(shaper, preparer, toy_tokenizer):
    prepared = preparer.prepare({"prompt": "hello", "logprobs": True, "top_logprobs": 1}, "l")
    generated = ids(toy_tokenizer, "Hm.\n</think>\n\nApple")
    logprobs = [position(t, -0.5, (toy_tokenizer.eos_token_id, -2.0)) for t in generated]
    logprobs[-1] = position(generated[-1], float("-inf"))  # a forced or masked token
    row = shaper.row(prepared, Completion(generated, "stop", logprobs=logprobs), 0, None, None)
    reasoning, content = row["logprobs"]["reasoning_content"], row["logprobs"]["content"]
    assert [t["token"] for t in reasoning] == ["H", "m", ".", "\n", "</think>"]
    assert len(reasoning) == row["reasoning_tokens"] and len(content) == len(generated) - row["reasoning_tokens"]
    assert "".join(t["token"] for t in content) == "\n\nApple"
    # top_logprobs 1: only the rank-1 alternative, which is the chosen token.
    assert reasoning[0] == {"token": "H", "logprob": -0.5, "top_logprobs": [{"token": "H", "logprob": -0.5}]}
    assert content[-1]["logprob"] == IMPOSSIBLE_LOGPROB
    off = preparer.prepare({"prompt": "hello", "reasoning": "off", "logprobs": True}, "l")
    row = shaper.row(off, Completion(generated, "stop", logprobs=logprobs), 0, None, None)
    assert row["logprobs"]["reasoning_content"] is None and len(row["logprobs"]["content"]) == len(generated)
    assert all(t["top_logprobs"] == [] for t in row["logprobs"]["content"])  # logprobs without top_logprobs


WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def test_a_tool_call_is_parsed_with_ids_unique_per_sample(shaper, preparer, toy_tokenizer):
    prepared = preparer.prepare({"prompt": "weather?", "tools": [WEATHER_TOOL]}, "w")
    call = json.dumps([{"name": "get_weather", "arguments": {"city": "Paris"}}])
    generated = ids(toy_tokenizer, f"Call it.\n</think>\n\n<TOOLCALL>{call}</TOOLCALL>\n<SPECIAL_12>")
    first, second = (shaper.row(prepared, Completion(generated, "stop"), k, None, None) for k in (0, 1))
    assert first["tool_calls"] == [{"id": tool_call_id("w", 0), "name": "get_weather", "arguments": '{"city": "Paris"}'}]
    assert (first["content"], first["finish_reason"], first["error"]) == ("", "tool_calls", None)
    assert second["tool_calls"][0]["id"] == tool_call_id("w\x001", 0) != first["tool_calls"][0]["id"]
    broken = ids(toy_tokenizer, "Call it.\n</think>\n\n<TOOLCALL>[{\"name\": </TOOLCALL>")
    row = shaper.row(prepared, Completion(broken, "stop"), 0, None, None)
    assert row["tool_calls"] is None and row["content"] == '<TOOLCALL>[{"name": </TOOLCALL>'
    assert row["error"].startswith("tool_call_parse_error: ") and row["finish_reason"] == "stop"


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("answer", ['<TOOLCALL>[{"name": </TOOLCALL>', '<TOOLCALL>[{"name": "f", "arguments": {}}]</TOOLCALL>',
                                    '<tool_call>{"name": </tool_call>', "<SPECIAL_11> x"])
def test_an_answer_to_a_record_that_offered_no_tools_is_content_whatever_it_holds(preparer, toy_tokenizer, profile,
                                                                                  answer):
    # vLLM's server parses tool calls only for requests with tools; OpenAI's API returns the text as content.
    shaper = make_shaper(toy_tokenizer, preparer, tool_parser_for(profile, toy_tokenizer))
    prepared = preparer.prepare({"prompt": "weather?", "reasoning": "off"}, "t")
    row = shaper.row(prepared, Completion(ids(toy_tokenizer, answer + "<SPECIAL_12>"), "stop"), 0, None, None)
    kept = "x" if answer.startswith("<SPECIAL_11>") else answer  # special tokens skipped, as for any answer
    assert (row["content"], row["tool_calls"], row["error"], row["finish_reason"]) == (kept, None, None, "stop")


def test_a_parser_reading_special_tokens_gets_them_without_the_end_of_text(preparer, toy_tokenizer):
    seen = []
    keeps = ToolParser("markers", keeps_special_tokens=True, _own=lambda text, rid: (seen.append(text) or text, None, None))
    shaper = make_shaper(toy_tokenizer, preparer, keeps)
    prepared = preparer.prepare({"prompt": "hello", "reasoning": "off", "tools": [WEATHER_TOOL]}, "k")
    generated = ids(toy_tokenizer, "Apple<SPECIAL_11>pear<SPECIAL_12>")
    assert shaper.row(prepared, Completion(generated, "stop"), 0, None, None)["content"] == "Apple<SPECIAL_11>pear"
    assert seen == ["Apple<SPECIAL_11>pear"]
    assert make_shaper(toy_tokenizer, preparer, ToolParser("plain")).decode_answer(generated, True) == "Applepear"
    assert shaper.decode_answer(generated, False) == "Applepear"  # no tools offered: no markers to read


def test_a_budget_that_closed_the_reasoning_says_how(shaper, preparer, toy_tokenizer):
    prepared = preparer.prepare({"prompt": "hello", "max_thinking_tokens": 0}, "b")
    # Budget 0 after "<think>\n": closed at once with the line-break close, then the answer.
    generated = [*preparer.prompts.close_at_line_break_ids, *ids(toy_tokenizer, "Apple\n<SPECIAL_12>")]
    row = shaper.row(prepared, Completion(generated, "stop"), 0, prepared.budget, 0)
    assert (row["reasoning_end"], row["thinking_budget_hit"], row["max_thinking_tokens"]) == ("budget_line_break", True, 0)
    assert (row["reasoning_content"], row["content"], row["reasoning_tokens"]) == ("", "Apple", 1)
    # Without the plan that forced it, the same ids read as the model's own close.
    assert shaper.row(prepared, Completion(generated, "stop"), 0, None, 0)["reasoning_end"] == "model"


def test_a_shaping_failure_or_a_failed_sample_is_an_engine_error_row(preparer, toy_tokenizer):
    def breaks(text, rid):
        raise KeyError("no such marker")

    shaper = make_shaper(toy_tokenizer, preparer, ToolParser("broken", _own=breaks))
    prepared = preparer.prepare({"prompt": "hello", "max_thinking_tokens": 5, "tools": [WEATHER_TOOL]}, "f")
    row = shaper.row(prepared, Completion(ids(toy_tokenizer, "Hm.\n</think>\n\nApple"), "stop"), 1, None, 5)
    assert tuple(row) == OUTPUT_FIELDS
    assert (row["error"], row["finish_reason"], row["content"]) == ("engine_error: KeyError: 'no such marker'", "error", None)
    assert (row["id"], row["sample_index"], row["reasoning"], row["max_thinking_tokens"]) == ("f", 1, "on", 5)
    assert row["prompt_tokens"] == len(prepared.prompt_ids) and row["completion_tokens"] == 0
    # A sample whose request failed: its row, the other samples' rows go on (`rows`, per sample per budget).
    sweep = preparer.prepare({"prompt": "hello", "reasoning": "off", "max_thinking_tokens": [0, 64]}, "s")
    done = Completion(ids(toy_tokenizer, "Apple"), "stop")
    rows = make_shaper(toy_tokenizer, preparer, ToolParser("plain")).rows(
        sweep, [[(0, None, done), (64, None, RuntimeError("lost"))], [(None, None, TimeoutError("slow"))]])
    assert [(r["sample_index"], r["max_thinking_tokens"], r["error"], r["content"]) for r in rows] == [
        (0, 0, None, "Apple"), (0, 64, "engine_error: RuntimeError: lost", None),
        (1, None, "engine_error: TimeoutError: slow", None)]


class Refusal(Exception):
    """Stands in for vLLM's `VLLMValidationError` (an Exception with `parameter` and `value`)."""

    def __init__(self, message, parameter=None, value=None):
        super().__init__(message)
        self.parameter, self.value = parameter, value


def test_refused_values_name_their_parameter(preparer):
    assert str(refused(Refusal("must be non-negative.", "temperature", -1.0))) == \
        "invalid_value: temperature: must be non-negative. (got -1.0)"
    assert str(refused(Refusal("must be set.", "seed"))) == "invalid_value: seed: must be set."
    assert str(refused(Refusal("The prompt (length 9) is too long."))) == "invalid_value: The prompt (length 9) is too long."
    assert str(refused(ValueError("stop: an empty string"))) == "invalid_value: stop: an empty string"
    # A grammar vLLM cannot compile names no parameter: the record's constraint field is named.
    structured = {"field": "response_format", "json": {"type": "strin"}}
    assert str(refused(Refusal("Grammar error: unknown type 'strin'"), structured)) == \
        "invalid_value: response_format: Grammar error: unknown type 'strin'"
    assert str(refused(Refusal("Grammar error: x"))) == "invalid_value: Grammar error: x"
    prepared = preparer.prepare({"prompt": "hello", "n": 3}, "v")
    row = make_shaper(preparer.tokenizer, preparer, ToolParser("plain")).refused_row(prepared, Refusal("bad", "top_k", -2))
    assert (row["error"], row["sample_index"], row["reasoning"]) == ("invalid_value: top_k: bad (got -2)", None, "on")
    assert row["prompt_tokens"] == len(prepared.prompt_ids)
