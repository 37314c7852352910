"""Templating and reasoning-mode precedence with the toy tokenizer and chat template (no engine)."""

import pytest

from batchgen.record.contract import RecordFields, normalize
from batchgen.record.profiles import (
    PROFILES,
    UnsupportedMode,
    detect_profile,
    flag_mode,
)
from batchgen.record.prompting import PromptBuilder
from batchgen.spec.job import BudgetSpec
from batchgen.toy import corpus
from tests.conftest import TEST_GRACE

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


def test_flags_in_text_parts_count_and_are_stripped(builder):
    parts = [{"type": "text", "text": "Repeat the word apple."}, {"type": "text", "text": "/no_think"}]
    prepared = build(builder, {"id": "p", "messages": [{"role": "user", "content": parts}]})
    assert prepared.mode == "off"
    assert prepared.prompt.endswith("<SPECIAL_11>User\nRepeat the word apple.\n<SPECIAL_11>Assistant\n<think></think>")


@pytest.mark.parametrize(
    ("messages", "mode"),
    [
        # The later system message's flag comes last in the conversation: it wins, though it moves first.
        ([{"role": "user", "content": "a /think"}, {"role": "system", "content": "Late. /no_think"}], "off"),
        ([{"role": "system", "content": "Early. /no_think"}, {"role": "user", "content": "a"},
          {"role": "system", "content": "Late."}, {"role": "user", "content": "b /think"}], "on"),
    ],
)
def test_later_system_messages_are_folded_after_the_mode_is_weighed(builder, messages, mode):
    prepared = build(builder, {"id": "s", "messages": messages})
    assert prepared.mode == mode
    system = "\n".join(m["content"].replace(" /think", "").replace(" /no_think", "") for m in messages if m["role"] == "system")
    assert prepared.prompt.startswith(f"<SPECIAL_10>System\n{system}\n<SPECIAL_11>User\na\n")
    assert prepared.prompt.count("Late.") == 1


def test_a_final_assistant_turn_is_continued_and_the_budget_starts_mid_line(builder, toy_tokenizer):
    haiku = [{"role": "user", "content": "Write a haiku."}, {"role": "assistant", "content": "Rain on the window"}]
    on = build(builder, {"id": "on", "messages": haiku, "max_thinking_tokens": 0})
    assert on.prompt.endswith("<SPECIAL_11>User\nWrite a haiku.\n<SPECIAL_11>Assistant\n<think>\nRain on the window")
    # The budget counts generated tokens only; the prefill ends mid-line, so a budget of 0 lets the model
    # finish its line first (newline rule) instead of closing at once as after `<think>\n`.
    assert on.budget.budget == 0 and not on.budget.starts_at_line_break
    off = build(builder, {"id": "off", "messages": haiku, "reasoning": "off", "max_thinking_tokens": 5})
    assert off.prompt.endswith("<SPECIAL_11>Assistant\n<think></think>Rain on the window") and off.budget is None
    assert toy_tokenizer.encode(on.prompt, add_special_tokens=False) == on.prompt_ids


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "system", "content": "Alone."}],
        [{"role": "user", "content": "w?"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x</think>y"}],
    ],
    ids=["only system", "prefill with tool calls", "prefill with </think>"],
)
def test_conversations_the_template_would_break_are_error_rows(builder, messages):
    assert build(builder, {"id": "bad", "messages": messages}).code == "invalid_conversation"


@pytest.mark.engine
def test_a_prefill_is_continued_by_the_engine(replica):
    """The toy's echo reasoning with its first line given as a prefill: the model writes the rest of the
    reasoning, then `</think>`, then the answer. The row holds only generated text, split on the generated
    end token; a budget of 0 ends the reasoning at the next line break the model writes, or abruptly
    (`close_text`) after the grace (the card's rule)."""
    first_line = "The user wants the word apple."
    messages = [{"role": "user", "content": corpus.echo_prompt("apple")}, {"role": "assistant", "content": first_line}]
    free, budgeted = replica.generate([
        {"id": "free", "messages": messages, "temperature": 0.0},
        {"id": "cut", "messages": messages, "temperature": 0.0, "max_thinking_tokens": 0},
    ])
    assert free["error"] is None and free["finish_reason"] == "stop" and not free["thinking_budget_hit"], free
    assert free["reasoning_content"].startswith("I will answer with") and first_line not in free["reasoning_content"]
    assert free["content"] and "</think>" not in free["content"]
    assert budgeted["thinking_budget_hit"] and budgeted["content"], budgeted
    closing = replica.tokenizer.encode(".\n</think>", add_special_tokens=False)
    assert budgeted["reasoning_tokens"] <= TEST_GRACE + len(closing)
    assert "\n" not in budgeted["reasoning_content"]  # it ended at its first line break, if not cut before


@pytest.fixture(scope="module")
def qwen3_tokenizer():
    """A tokenizer with the Qwen3 toy's template and tokens (trained in a second on a few texts: what is
    tested here is the prompt's text, not the model)."""
    from batchgen.toy.build import FAMILIES, _train_tokenizer

    return _train_tokenizer([corpus.echo_prompt(w) for w in corpus.WORDS], FAMILIES["qwen3"])


def test_the_qwen3_profile_writes_the_opener_only_with_reasoning_on(qwen3_tokenizer):
    qwen3 = PromptBuilder(qwen3_tokenizer, PROFILES["qwen3"], BudgetSpec(), max_model_len=1024)
    assert detect_profile(qwen3_tokenizer.chat_template) is PROFILES["qwen3"]
    on = qwen3.build(normalize({"prompt": "hi", "max_thinking_tokens": 0}))
    assert on.mode == "on" and on.prompt.endswith("<|im_start|>assistant\n<think>\n")
    assert on.budget.starts_at_line_break  # budget 0 closes at once, at the line break after the opener
    for raw in ({"prompt": "hi", "reasoning": "off"}, {"prompt": "hi /no_think"}):  # by field, by flag
        off = qwen3.build(normalize(raw))
        assert off.mode == "off" and off.prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "/no_think" in qwen3.build(normalize({"prompt": "hi /no_think"})).prompt  # Qwen3 reads its flags itself


@pytest.mark.parametrize("ending", ["<think>\n", "<think>"])
def test_a_template_that_opens_the_reasoning_itself_is_not_opened_twice(qwen3_tokenizer, ending):
    import copy

    tokenizer = copy.deepcopy(qwen3_tokenizer)
    tokenizer.chat_template = "{{ '<|im_start|>assistant\\n" + ending.replace("\n", "\\n") + "' }}"
    prompt = PromptBuilder(tokenizer, PROFILES["qwen3"], BudgetSpec(), 1024).build(normalize({"prompt": "hi"})).prompt
    assert prompt == "<|im_start|>assistant\n" + ending


def test_a_prefill_is_refused_with_the_qwen3_profile_whose_template_would_close_it(qwen3_tokenizer):
    qwen3 = PromptBuilder(qwen3_tokenizer, PROFILES["qwen3"], BudgetSpec(), max_model_len=1024)
    refused = qwen3.build(normalize({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure,"}]}))
    assert refused.code == "invalid_conversation" and refused.message.startswith("messages[-1]: a final assistant turn")
