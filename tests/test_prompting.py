"""Templating and reasoning-mode precedence with the toy tokenizer and chat template (no engine)."""

import pytest

from batchgen.profiles import PROFILES, UnsupportedMode, detect_profile, flag_mode
from batchgen.prompting import PromptBuilder
from batchgen.records import RecordFields, normalize
from batchgen.spec import BudgetSpec
from batchgen.toy import corpus

NEMOTRON = PROFILES["nemotron-nano-v2"]


@pytest.fixture(scope="module")
def builder(toy_tokenizer):
    return PromptBuilder(toy_tokenizer, NEMOTRON, BudgetSpec(), max_model_len=1024)


def build(builder, raw, defaults=None):
    return builder.build(normalize(raw, defaults))


def test_the_toy_template_is_recognised_as_nemotron(toy_tokenizer):
    assert detect_profile(toy_tokenizer.chat_template) is NEMOTRON
    assert detect_profile("{{ enable_thinking }}").name == "qwen3"
    assert detect_profile("<think>{{ x }}").name == "deepseek-r1"
    assert detect_profile(None).name == "none"


def test_flags_last_one_wins_and_think_is_read_first_within_a_message():
    assert flag_mode([{"role": "system", "content": "/no_think"}, {"role": "user", "content": "a /think"}]) == "on"
    assert flag_mode([{"role": "user", "content": "/think"}, {"role": "user", "content": "/no_think"}]) == "off"
    assert flag_mode([{"role": "assistant", "content": "/no_think"}]) is None
    assert flag_mode([{"role": "user", "content": "/no_think and /think"}]) == "on"


@pytest.mark.parametrize(
    ("record", "default", "mode"),
    [
        ({}, None, "on"),  # the model's default
        ({}, "off", "off"),  # the job default
        ({"system": "/no_think"}, "on", "off"),  # a flag beats the job default
        ({"system": "/no_think", "reasoning": "on"}, None, "on"),  # the record's field beats a flag
        ({"reasoning": "off"}, "on", "off"),
    ],
)
def test_reasoning_precedence(builder, record, default, mode):
    prepared = build(builder, {"id": "x", "prompt": "hello", **record}, RecordFields(reasoning=default))
    assert prepared.mode == mode
    assert prepared.prompt.endswith("<think>\n" if mode == "on" else "<think></think>")


def test_turn_level_user_flag_is_stripped_and_switches_mode(builder):
    raw = {"id": "t", "messages": [
        {"role": "system", "content": "Be nice. /think"},
        {"role": "user", "content": "Repeat the word apple. /no_think"},
    ]}
    prepared = build(builder, raw)
    assert prepared.mode == "off"
    body = prepared.prompt.removesuffix("<think></think>")
    assert "/think" not in body and "/no_think" not in body
    assert prepared.prompt.startswith("<SPECIAL_10>System\nBe nice.\n<SPECIAL_11>User\nRepeat the word apple.\n")


def test_earlier_assistant_turns_lose_their_reasoning(builder):
    raw = {"id": "m", "messages": [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "<think>\nsecret plan\n</think>\n\nvisible answer"},
        {"role": "user", "content": "second"},
    ]}
    prompt = build(builder, raw).prompt
    assert "secret plan" not in prompt
    assert "<SPECIAL_11>Assistant\nvisible answer\n<SPECIAL_12>\n<SPECIAL_11>User\nsecond\n" in prompt


def test_tools_are_offered_and_tool_results_returned(builder):
    raw = {"id": "tools", "tools": corpus.TOOLS, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": '"sunny"'},
        {"role": "tool", "content": '"warm"'},
    ]}
    prompt = build(builder, raw).prompt
    assert '<AVAILABLE_TOOLS>[{"name": "get_weather"' in prompt
    assert '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</TOOLCALL>' in prompt
    assert '<TOOL_RESPONSE>["sunny", "warm"]</TOOL_RESPONSE>' in prompt


def test_sampling_defaults_follow_the_mode_and_the_record_wins(builder):
    on = build(builder, {"id": "a", "prompt": "x"})
    off = build(builder, {"id": "b", "prompt": "x", "reasoning": "off"})
    own = build(builder, {"id": "c", "prompt": "x", "temperature": 0.0, "seed": 3, "max_tokens": 9})
    assert (on.sampling["temperature"], on.sampling["top_p"]) == (0.6, 0.95)
    assert (off.sampling["temperature"], off.sampling["top_p"]) == (0.0, 1.0)
    assert (own.sampling["temperature"], own.sampling["seed"], own.sampling["max_tokens"]) == (0.0, 3, 9)


def test_max_tokens_is_bounded_by_the_context(builder):
    prepared = build(builder, {"id": "a", "prompt": "x"})
    assert prepared.sampling["max_tokens"] == 1024 - len(prepared.prompt_ids)


def test_budget_plan_only_when_thinking(builder, toy_tokenizer):
    on = build(builder, {"id": "a", "prompt": "x", "max_thinking_tokens": 5})
    off = build(builder, {"id": "b", "prompt": "x", "max_thinking_tokens": 5, "reasoning": "off"})
    assert off.budget is None
    assert on.budget.budget == 5 and on.budget.grace == 500 and not on.budget.strict
    assert on.budget.starts_at_line_break
    assert toy_tokenizer.decode(list(on.budget.close_ids)) == ".\n</think>\n\n"


def test_records_that_cannot_run_say_why(builder, toy_tokenizer):
    too_long = build(builder, {"id": "a", "prompt": "word " * 1200})
    assert too_long.code == "prompt_too_long" and "max_model_len is 1024" in too_long.message
    r1 = PromptBuilder(toy_tokenizer, PROFILES["deepseek-r1"], BudgetSpec(), 256)
    assert r1.build(normalize({"prompt": "x", "reasoning": "off"})).code == "unsupported_reasoning"
    with pytest.raises(UnsupportedMode):
        PROFILES["none"].effective_mode("on", [], None)


def test_a_closing_text_without_the_end_token_is_refused(toy_tokenizer):
    with pytest.raises(ValueError, match="close_text"):
        PromptBuilder(toy_tokenizer, NEMOTRON, BudgetSpec(close_text="."), 256)
