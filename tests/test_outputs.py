"""Reasoning split and tool-call parsing on plain values (no engine)."""

import json

from batchgen.outputs import answer_row, parse_tool_calls, split_reasoning

END = 9


def test_split_on_the_end_token_id():
    assert split_reasoning([1, 2, END, 3, 4], "on", END) == ([1, 2, END], [3, 4])


def test_reasoning_without_an_end_is_all_reasoning():
    assert split_reasoning([1, 2, 3], "on", END) == ([1, 2, 3], [])


def test_reasoning_off_is_all_answer_even_with_an_end_token():
    assert split_reasoning([1, END, 3], "off", END) == (None, [1, END, 3])


def test_only_the_first_end_token_splits():
    assert split_reasoning([1, END, 2, END], "on", END) == ([1, END], [2, END])


def test_tool_calls_are_parsed_with_arguments_as_json_text():
    text = 'Let me look.\n<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "now", "arguments": {}}]</TOOLCALL>'
    content, calls, error = parse_tool_calls(text, "r1")
    assert error is None
    assert content == "Let me look."
    assert [c["name"] for c in calls] == ["get_weather", "now"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert calls[0]["id"] != calls[1]["id"] and calls[0]["id"].startswith("call_")
    assert parse_tool_calls(text, "r1")[1] == calls  # ids are deterministic


def test_broken_tool_calls_keep_the_raw_text_and_say_why():
    for text, why in [
        ('<TOOLCALL>[{"name": "f", "arguments": {</TOOLCALL>', "not JSON"),
        ('<TOOLCALL>[{"name": "f"', "without a closing"),
        ('<TOOLCALL>[{"arguments": {}}]</TOOLCALL>', "string name"),
    ]:
        content, calls, error = parse_tool_calls(text, "r")
        assert content == text and calls is None
        assert error.startswith("tool_call_parse_error: ") and why in error


def test_answer_row_marks_tool_calls_and_keeps_the_contract():
    row = answer_row(
        record_id="a", model="m", mode="on", reasoning_text=" think \n", finish_reason="stop", budget_hit=False,
        content='<TOOLCALL>[{"name": "f", "arguments": {"x": 1}}]</TOOLCALL>', prompt_tokens=3,
        reasoning_tokens=2, completion_tokens=5,
    )
    assert row["finish_reason"] == "tool_calls" and row["content"] == "" and row["reasoning_content"] == "think"
    off = answer_row(
        record_id="b", model="m", mode="off", reasoning_text=None, content="hi", finish_reason="length",
        budget_hit=False, prompt_tokens=1, reasoning_tokens=0, completion_tokens=1,
    )
    assert off["reasoning_content"] is None and off["finish_reason"] == "length" and off["tool_calls"] is None
