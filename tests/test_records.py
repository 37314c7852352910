"""Input records: normalization, defaults, and the error codes bad records get (no engine)."""

import pytest

from batchgen.ledger import CrashLedger, FirstOccurrences
from batchgen.records import RecordError, RecordFields, Request, normalize


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
        ({"messages": [{"role": "robot", "content": "x"}]}, "unknown_role", "messages.0.role"),
        ({"messages": [{"role": "user", "content": 5}]}, "invalid_content", "messages.0.content"),
        ({"messages": [{"role": "user"}]}, "invalid_content", "user message"),
        ({"prompt": "x", "max_tokens": "abc"}, "invalid_type", "max_tokens"),
        ({"prompt": "x", "max_tokens": 0}, "out_of_range", "max_tokens"),
        ({"prompt": "x", "max_thinking_tokens": -1}, "out_of_range", "max_thinking_tokens"),
        ({"prompt": "x", "temperature": -0.5}, "out_of_range", "temperature"),
        ({"prompt": "x", "top_p": 1.5}, "out_of_range", "top_p"),
        ({"prompt": "x", "reasoning": "maybe"}, "invalid_value", "reasoning"),
        ({"prompt": "x", "tools": "abc"}, "invalid_tools", "tools"),
        ({"prompt": "x", "tools": [{"name": "f"}]}, "invalid_tools", "tools.0"),
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


def test_assistant_tool_calls_without_content_are_valid():
    raw = {"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "content": "sunny"},
    ]}
    assert isinstance(normalize(raw), Request)


def test_first_occurrence_wins_whatever_order_batches_arrive_in():
    seen = FirstOccurrences()
    seen.add(["a", "b"], [(1, 5), (1, 6)])  # a later file's batch first
    seen.add(["a", "c", "a"], [(0, 9), (0, 10), (1, 2)])
    seen.add(["c"], [(0, 10)])  # the same record read twice is not a duplicate of itself
    assert seen.later_occurrences() == {(1, 5): (0, 9), (1, 2): (0, 9)}
    assert FirstOccurrences().later_occurrences() == {}


def test_crash_ledger_counts_only_runs_that_never_ended():
    ledger = CrashLedger()
    assert ledger.begin(["a", "b"]) == [0, 0]
    ledger.end(["b"])  # b finished; a was running when the replica died
    assert ledger.peek(["a", "b", "c"]) == [1, 0, 0]
    assert ledger.begin(["a"]) == [1]
    assert ledger.begin(["a"]) == [2]  # died again
    ledger.end(["a"])
    assert ledger.peek(["a"]) == [0]
