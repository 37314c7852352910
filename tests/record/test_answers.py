"""Reasoning split and tool-call parsing on plain values (no engine)."""

import json

import pytest

from batchgen.record.answers import parse_tool_calls, reasoning_end, split_reasoning
from batchgen.record.rows import answer_row

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


def test_a_closing_tag_inside_a_string_argument_does_not_end_the_block():
    text = 'Sure.<TOOLCALL>[{"name": "say", "arguments": {"text": "end with </TOOLCALL> here"}}]</TOOLCALL>'
    content, calls, error = parse_tool_calls(text, "r")
    assert (content, error) == ("Sure.", None)
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("say", {"text": "end with </TOOLCALL> here"})]


def test_toolcall_tags_inside_arguments_are_text():
    args = {"text": "<TOOLCALL>[{\"name\": \"inner\"}]</TOOLCALL> and <TOOLCALL> alone"}
    text = "<TOOLCALL>" + json.dumps([{"name": "echo", "arguments": args}]) + "</TOOLCALL>"
    content, calls, error = parse_tool_calls(text, "r")
    assert (content, error) == ("", None)
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("echo", args)]


def test_several_blocks_with_text_and_whitespace_between():
    text = ('First <TOOLCALL> [{"name": "a", "arguments": {"x": 1}}]\n</TOOLCALL> then\n'
            '<TOOLCALL>\n[{"name": "b"}, {"name": "c", "arguments": "{\\"y\\": 2}"}] </TOOLCALL> done.')
    content, calls, error = parse_tool_calls(text, "r7")
    assert (content, error) == ("First  then\n done.", None)
    assert [(c["name"], c["arguments"]) for c in calls] == [("a", '{"x": 1}'), ("b", "{}"), ("c", '{"y": 2}')]
    # ids number the calls across all blocks: the same as for the same calls in one block
    one_block = parse_tool_calls('<TOOLCALL>[{"name": "a"}, {"name": "b"}, {"name": "c"}]</TOOLCALL>', "r7")[1]
    assert [c["id"] for c in calls] == [c["id"] for c in one_block] and len({c["id"] for c in calls}) == 3


def test_a_single_call_object_is_one_call_and_an_empty_list_none():
    content, calls, error = parse_tool_calls('<TOOLCALL>{"name": "f", "arguments": {"a": [1, 2]}}</TOOLCALL>', "r")
    assert (content, error, [(c["name"], c["arguments"]) for c in calls]) == ("", None, [("f", '{"a": [1, 2]}')])
    assert parse_tool_calls("Nothing to call. <TOOLCALL>[]</TOOLCALL>", "r") == ("Nothing to call.", None, None)


def test_text_without_blocks_is_left_alone():
    assert parse_tool_calls("  plain </TOOLCALL> text ", "r") == ("  plain </TOOLCALL> text ", None, None)


@pytest.mark.parametrize("text, why", [
    ('<TOOLCALL>[{"name": "f", "arguments": {</TOOLCALL>',
     "the <TOOLCALL> at character 0 does not hold JSON: Expecting property name enclosed in double quotes "
     "at character 39"),
    ('ok <TOOLCALL>[{"name": "f"', "the <TOOLCALL> at character 3 has no closing </TOOLCALL>"),
    ('<TOOLCALL>[{"name": "f"}]', "the <TOOLCALL> at character 0 has no closing </TOOLCALL>"),
    ('<TOOLCALL>[{"name": "f", "arguments": {"t": "</TOOLCALL>"',
     "the <TOOLCALL> at character 0 has no closing </TOOLCALL>"),
    ('<TOOLCALL> [{"name": "f"} garbage', 'the <TOOLCALL> at character 0 does not hold JSON: '
     "Expecting ',' delimiter at character 26"),
    ('<TOOLCALL>[{"name": "f"}] and more</TOOLCALL>',
     "the <TOOLCALL> at character 0 needs </TOOLCALL> right after its JSON, "
     "found 'and more</TOOLCALL>' at character 26"),
    ('<TOOLCALL>[{"name": "f"}]</TOOLCALL> then <TOOLCALL>[{"name": "g"}',
     "the <TOOLCALL> at character 42 has no closing </TOOLCALL>"),
    ('<TOOLCALL>"f"</TOOLCALL>', "the <TOOLCALL> at character 0 holds a string, not a list of calls"),
    ('<TOOLCALL>[["f"]]</TOOLCALL>', "call 0 in the <TOOLCALL> at character 0 is a list, not an object"),
    ('<TOOLCALL>[{"name": "f"}, {"arguments": {}}]</TOOLCALL>',
     'call 1 in the <TOOLCALL> at character 0 needs a "name" string, got None'),
    ('<TOOLCALL>[{"name": "f", "arguments": "Paris"}]</TOOLCALL>',
     "call 0 in the <TOOLCALL> at character 0 needs \"arguments\" to be an object, got 'Paris'"),
    ('<TOOLCALL>[{"name": "f", "arguments": [1]}]</TOOLCALL>',
     'call 0 in the <TOOLCALL> at character 0 needs "arguments" to be an object, got [1]'),
])
def test_broken_tool_calls_keep_the_raw_text_and_say_where(text, why):
    assert parse_tool_calls(text, "r") == (text, None, f"tool_call_parse_error: {why}")


def test_answer_row_marks_tool_calls_and_keeps_the_contract():
    row = answer_row(
        record_id="a", model="m", mode="on", reasoning_text=" think \n", finish_reason="stop", reasoning_end="model",
        content='<TOOLCALL>[{"name": "f", "arguments": {"x": 1}}]</TOOLCALL>', prompt_tokens=3,
        reasoning_tokens=2, completion_tokens=5,
    )
    assert row["finish_reason"] == "tool_calls" and row["content"] == "" and row["reasoning_content"] == "think"
    off = answer_row(
        record_id="b", model="m", mode="off", reasoning_text=None, content="hi", finish_reason="length",
        reasoning_end=None, prompt_tokens=1, reasoning_tokens=0, completion_tokens=1,
    )
    assert off["reasoning_content"] is None and off["finish_reason"] == "length" and off["tool_calls"] is None
    assert (row["reasoning_end"], row["thinking_budget_hit"], off["reasoning_end"]) == ("model", False, None)


@pytest.mark.parametrize("mode, ids, close, finish, ended", [
    ("on", [1, 2, END, 3], None, "stop", "model"),
    ("on", [1, 2, END, 3], "budget_line_break", "stop", "budget_line_break"),  # the budget forced that END
    ("on", [1, 2, END, 3], "budget_cut", "length", "budget_cut"),
    ("on", [1, 2, 3], None, "length", "length"),  # max_tokens while still reasoning
    ("on", [1, 2, 3], None, "stop", "stop"),  # a stop (or end of text) before the reasoning closed
    ("off", [1, 2], None, "stop", None),
])
def test_how_the_reasoning_ended(mode, ids, close, finish, ended):
    assert reasoning_end(mode, ids, END, close, finish) == ended
    assert reasoning_end(mode, ids, None, close, finish) is None  # a model without an end of thinking
