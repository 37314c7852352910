"""Input records: normalization, defaults, and the error codes bad records get (no engine)."""

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.record.contract import (
    RecordError,
    RecordFields,
    Request,
    normalize,
    parse_json_line,
)


def test_prompt_becomes_a_user_turn_with_system_first():
    request = normalize({"id": 7, "prompt": "hi", "system": "be brief", "extra": [1]})
    assert isinstance(request, Request)
    assert request.id == "7"
    assert request.messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def test_defaults_apply_and_the_records_own_values_win():
    defaults = RecordFields(max_tokens=64, temperature=0.2, max_thinking_tokens=10, reasoning="off")
    request = normalize({"id": "a", "prompt": "x", "temperature": 0.9}, defaults)
    assert (request.max_tokens, request.max_thinking_tokens) == (64, 10)
    assert request.sampling == {"temperature": 0.9}
    # the job's reasoning default is kept apart: flags in the messages outrank it
    assert (request.reasoning, request.default_reasoning) == (None, "off")


@pytest.mark.parametrize(
    ("raw", "code", "names"),
    [
        ({"id": 1}, "missing_prompt", "prompt"),
        ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "conflicting_prompt", "prompt"),
        ({"messages": []}, "empty_messages", "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "unknown_role", "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "invalid_content", "messages[0].content"),
        ({"messages": [{"role": "user"}]}, "invalid_content", "user message"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "invalid_content", "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "invalid_content", "messages[0].content[0].text"),
        ({"prompt": "x", "max_tokens": "abc"}, "invalid_type", "max_tokens"),
        ({"prompt": "x", "max_tokens": 0}, "out_of_range", "max_tokens"),
        ({"prompt": "x", "max_thinking_tokens": -1}, "out_of_range", "max_thinking_tokens"),
        ({"prompt": "x", "temperature": -0.5}, "out_of_range", "temperature"),
        ({"prompt": "x", "top_p": 1.5}, "out_of_range", "top_p"),
        ({"prompt": "x", "reasoning": "maybe"}, "invalid_value", "reasoning"),
        ({"prompt": "x", "tools": "abc"}, "invalid_tools", "tools"),
        ({"prompt": "x", "tools": [{"name": "f"}]}, "invalid_tools", "tools[0]"),
        ({"prompt": "x", "stop": [1]}, "invalid_type", "stop"),
        ({"prompt": "x", "system": "a", "messages": None}, None, None),
    ],
)
def test_bad_records_get_a_code_and_name_the_field(raw, code, names):
    result = normalize(raw)
    if code is None:
        assert isinstance(result, Request)
        return
    assert isinstance(result, RecordError), result
    assert result.code == code
    assert names in result.message
    assert str(result).startswith(f"{code}: ")


def test_a_wrong_value_is_quoted_in_the_message():
    assert "'abc'" in normalize({"prompt": "x", "max_tokens": "abc"}).message


def test_system_twice_is_refused():
    raw = {"system": "a", "messages": [{"role": "system", "content": "b"}, {"role": "user", "content": "c"}]}
    assert normalize(raw).code == "conflicting_prompt"


@pytest.mark.parametrize("absent", [{"content": None}, {}], ids=["null", "missing"])
def test_assistant_tool_calls_without_content_get_empty_content(absent):
    call = {"function": {"name": "f", "arguments": "{}"}}
    raw = {"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [call], **absent},
        {"role": "tool", "content": "sunny"},
    ]}
    # The card's template reads every turn's content as a string and fails on a null one; arguments are
    # read as an object, as vLLM's chat front end reads them.
    assert normalize(raw).messages[1] == {"role": "assistant", "content": "",
                                          "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]}


@pytest.mark.parametrize("arguments, read", [('{"city": "Oslo"}', {"city": "Oslo"}), ({"city": "Oslo"}, {"city": "Oslo"}),
                                             ("", {}), (None, {})])
def test_tool_call_arguments_in_history_are_read_as_an_object(arguments, read):
    raw = {"messages": [{"role": "user", "content": "weather?"},
                        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "w", "arguments": arguments}}]},
                        {"role": "tool", "content": "sunny", "tool_call_id": "c1"}, {"role": "user", "content": "so?"}]}
    (call,) = normalize(raw).messages[1]["tool_calls"]
    assert call == {"id": "c1", "type": "function", "function": {"name": "w", "arguments": read}}


@pytest.mark.parametrize("arguments, says", [
    ("{bill_total: 100", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1) "
                         "(got '{bill_total: 100')"),
    ("[1, 2]", "needs a JSON object, not list (got '[1, 2]')"),
])
def test_tool_call_arguments_in_history_that_are_not_an_object_are_an_error_naming_the_field(arguments, says):
    raw = {"messages": [{"role": "user", "content": "tip?"},
                        {"role": "assistant", "content": "", "tool_calls": [
                            {"function": {"name": "ok", "arguments": "{}"}},
                            {"function": {"name": "tip", "arguments": arguments}}]},
                        {"role": "tool", "content": "15"}]}
    error = normalize(raw)
    assert (error.code, error.message) == ("invalid_value", f"messages[1].tool_calls[1].function.arguments: {says}")


def test_text_parts_are_joined_in_order_with_line_breaks_as_vllm_does():
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": "second /no_think"}, {"type": "text", "text": ""}]
    raw = {"messages": [
        {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
        {"role": "user", "content": parts},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "tool", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "tool_call_id": "c1"},
    ]}
    assert normalize(raw).messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first\nsecond /no_think\n"},
        {"role": "assistant", "content": "ok"},
        {"role": "tool", "content": "a\nb", "tool_call_id": "c1"},
    ]


@pytest.mark.parametrize("part", [
    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    {"type": "refusal", "refusal": "no"},
    {"text": "no type"},
])
def test_a_part_that_is_not_text_is_an_error_naming_it(part):
    raw = {"messages": [{"role": "user", "content": [{"type": "text", "text": "look:"}, part]}]}
    error = normalize(raw)
    assert error.code == "invalid_content"
    assert error.message.startswith("messages[0].content[1]: ") and repr(part.get("type")) in error.message


@pytest.mark.parametrize("name", ["max_thinking_tokens", "max_tokens", "top_k", "seed"])
def test_a_whole_float_is_an_integer_nan_is_null_and_a_fraction_is_an_error(name):
    def value(request):
        return request.sampling.get(name) if name in ("top_k", "seed") else getattr(request, name)

    assert value(normalize({"prompt": "x", name: 16.0})) == 16 and type(value(normalize({"prompt": "x", name: 16.0}))) is int
    assert value(normalize({"prompt": "x", name: math.nan})) is None
    assert value(normalize({"prompt": "x", name: math.nan}, RecordFields(**{name: 7}))) == 7  # null: the default
    fraction = normalize({"prompt": "x", name: 16.5})
    assert (fraction.code, fraction.message) == ("invalid_type", f"{name}: Input should be a valid integer (got 16.5)")
    for wrong in ("16", True, math.inf):
        assert normalize({"prompt": "x", name: wrong}).code == "invalid_type"


def test_nan_is_null_in_every_field():
    nan = math.nan
    request = normalize({"prompt": "x", "system": nan, "reasoning": nan, "temperature": nan, "top_p": nan,
                         "stop": nan, "tools": nan, "max_tokens": nan, "id": nan}, row_id="f.jsonl:1")
    assert request.messages == [{"role": "user", "content": "x"}]
    assert (request.reasoning, request.max_tokens, request.tools, request.sampling) == (None, None, None, {})
    assert normalize({"prompt": nan}).code == "missing_prompt"
    assert normalize({"prompt": "x", "temperature": 0.5}).sampling == {"temperature": 0.5}  # other floats stay


def test_jsonl_from_pandas_and_a_nan_literal():
    # pandas' to_json writes an integer column with gaps as 16.0; Python's json reads a bare NaN.
    record = parse_json_line(b'{"prompt": "x", "max_tokens": 16.0, "seed": NaN, "top_k": 5.0}')
    request = normalize(record)
    assert (request.max_tokens, request.sampling) == (16, {"top_k": 5})


def test_parquet_written_by_pandas(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"prompt": ["a", "b", "c"], "max_tokens": [16, None, 8], "seed": [1.5, None, 2]})
    assert str(frame["max_tokens"].dtype) == "float64"
    frame.to_parquet(tmp_path / "p.parquet")
    rows = pq.read_table(tmp_path / "p.parquet").to_pylist()
    first, second, third = (normalize(row) for row in rows)
    assert first.code == "invalid_type" and "seed" in first.message and "1.5" in first.message
    assert (second.max_tokens, second.sampling) == (None, {})
    assert (third.max_tokens, third.sampling) == (8, {"seed": 2})
    table = pa.table({"prompt": ["x"], "top_k": pa.array([math.nan])})  # NaN kept as a value, not as null
    assert normalize(table.to_pylist()[0]).sampling == {}







def test_a_string_that_is_not_text_is_named_by_its_path_wherever_it_is():
    from batchgen.record.contract import not_text

    record = {"prompt": "fine", "messages": [{"role": "user", "content": [{"type": "text", "text": "a\udfffb"}]}]}
    assert str(not_text(record)) == ("invalid_utf8: messages[0].content[0].text: '\\udfff' at character 1 is half of "
                                     "a UTF-16 pair, which is not text (got 'a\\udfffb')")
    assert not_text({"prompt": "ok \U0001F600", "tags": ["é", {"k": 1}]}) is None  # a whole pair is text
    assert parse_json_line(b'{"t": ' + b"[" * 50_000 + b"]" * 50_000 + b"}") == RecordError(
        "invalid_json", "nested deeper than a JSON reader can follow")
