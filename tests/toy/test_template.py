"""The toy's chat template renders exactly what the model card's template renders, and batchgen only sends
the card's template conversations it renders whole (no engine, no tokenizer).

The card's template is read at test time from the saved model card (NVIDIA's text is not copied into the
repository); both are rendered the way transformers renders chat templates.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

from batchgen.record.contract import Request, normalize
from batchgen.record.profiles import PROFILES, ConversationError
from batchgen.toy.build import FAMILIES

TEMPLATE = FAMILIES["nemotron-h"].template
from batchgen.toy.corpus import TOOLS

CARD_FILE = Path("/work/shared/seed/000_90ee5e51e658f162.txt")
NEMOTRON = PROFILES["nemotron-nano-v2"]


@pytest.fixture(scope="module")
def card_template() -> str:
    """The jinja template printed in the card's "Prompt Format" section: from its first tag to the last
    `endif` before the next section."""
    if not CARD_FILE.exists():
        pytest.skip(f"the model card is not at {CARD_FILE}: cannot compare with its chat template")
    text = CARD_FILE.read_text()
    start = text.index("{%- set ns = namespace(enable_thinking")
    end = text.rindex("{%- endif -%}", start, text.index("Training, Testing, and Evaluation Datasets", start))
    return text[start : end + len("{%- endif -%}")]


def render(template: str, messages: list[dict], tools: list[dict] | None = None, **options) -> str:
    rendered, _ = render_jinja_template([messages], tools=tools, chat_template=template, **options)
    return rendered[0]


def user(text):
    return {"role": "user", "content": text}


def system(text):
    return {"role": "system", "content": text}


def assistant(text, calls=None):
    return {"role": "assistant", "content": text, **({"tool_calls": calls} if calls is not None else {})}


def tool(text):
    return {"role": "tool", "content": text}


WEATHER = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
TIME_TEXT_ARGS = {"function": {"name": "get_time", "arguments": '{"city": "Lima"}'}}
BARE_CALL = {"name": "get_weather", "arguments": {"city": "Rome"}}  # no "function" wrapper

CONVERSATIONS = {
    "user": [user("Hello there.")],
    "user think flag": [user("Hello /think")],
    "user no_think flag": [user("  Hello /no_think  ")],
    "both flags in one message": [user("/no_think and /think")],
    "last flag wins": [system("Be brief. /think"), user("Hi /no_think"), assistant("Hey."), user("More /think")],
    "system": [system("You are terse."), user("Hi")],
    "empty system": [system(""), user("Hi")],
    "flag-only system": [system("/no_think"), user("Hi")],
    "later system message": [system("First."), user("Hi"), system("Second. /no_think"), user("Again")],
    "system not first": [user("Hi"), system("Late system.")],
    "history with reasoning": [user("a"), assistant("<think>\nplan\n</think>\n\nanswer"), user("b")],
    "reasoning closed twice": [user("a"), assistant("x</think> kept </think> lost"), user("b")],
    "history without reasoning": [user("a"), assistant("  plain  "), user("b")],
    "tool call, empty content": [user("weather?"), assistant("", [WEATHER]), tool('"sunny"')],
    "tool call with text": [user("weather?"), assistant("Checking.", [WEATHER, TIME_TEXT_ARGS]), tool("1"), tool("2")],
    "tool call with reasoning": [user("w?"), assistant("<think>hm</think>Let me look.", [BARE_CALL]), tool("x")],
    "tools then an answer": [user("w?"), assistant("", [WEATHER]), tool("a"), tool("b"), tool("c"), assistant("Sunny."), user("ok")],
    "tool first": [tool("orphan"), user("Hi")],
    "prefill": [user("Write a haiku."), assistant("Rain on the window")],
    "prefill, reasoning off": [system("/no_think"), user("Write a haiku."), assistant("  Rain on the window \n")],
    "prefill after tools": [user("w?"), assistant("", [WEATHER]), tool("rain"), assistant("It is")],
    "blank prefill": [user("Hi"), assistant("   ")],
    "only a prefill": [assistant("Once upon")],
}
TOOL_LISTS = {"no tools": None, "tools": TOOLS, "bare tool": [TOOLS[0]["function"]]}
# Shapes the card's template fails on: batchgen must never send these (see the tests below).
CARD_FAILURES = {
    "null user content": [user(None)],
    "null assistant content": [user("w?"), assistant(None, [WEATHER]), tool("x")],
    "assistant without content": [user("w?"), {"role": "assistant", "tool_calls": [WEATHER]}, tool("x")],
    "only system": [system("Alone.")],
    "empty": [],
}


@pytest.mark.parametrize("tools", list(TOOL_LISTS.values()), ids=list(TOOL_LISTS))
@pytest.mark.parametrize("messages", list(CONVERSATIONS.values()), ids=list(CONVERSATIONS))
@pytest.mark.parametrize(
    "options",
    [{"add_generation_prompt": True}, {"add_generation_prompt": False},
     {"add_generation_prompt": False, "continue_final_message": False}],
    ids=["generation prompt", "no generation prompt", "continue_final_message false"],
)
def test_the_toy_template_renders_what_the_cards_renders(card_template, messages, tools, options):
    assert render(TEMPLATE.read_text(), messages, tools, **options) == render(card_template, messages, tools, **options)


def test_a_final_assistant_turn_is_continued(card_template):
    on = [user("Write a haiku."), assistant("Rain on the window")]
    off = [system("/no_think"), *on]
    for template in (card_template, TEMPLATE.read_text()):
        assert render(template, on, add_generation_prompt=True).endswith(
            "<SPECIAL_11>User\nWrite a haiku.\n<SPECIAL_11>Assistant\n<think>\nRain on the window")
        assert render(template, off, add_generation_prompt=True).endswith(
            "<SPECIAL_11>Assistant\n<think></think>Rain on the window")


@pytest.mark.parametrize("messages", list(CARD_FAILURES.values()), ids=list(CARD_FAILURES))
def test_the_toy_template_fails_where_the_cards_fails(card_template, messages):
    for template in (card_template, TEMPLATE.read_text()):
        with pytest.raises(Exception):
            render(template, messages, add_generation_prompt=True)


def test_the_card_keeps_only_the_text_between_the_first_two_think_ends(card_template):
    messages = [user("a"), assistant("x</think> kept </think> lost"), user("b")]
    assert "lost" not in render(card_template, messages, add_generation_prompt=True)


def test_the_card_drops_a_later_system_message_and_batchgen_folds_it(card_template):
    messages = [system("First."), user("Hi"), system("Second.")]
    assert "Second." not in render(card_template, messages, add_generation_prompt=True)
    prepared = normalize({"messages": messages})
    shaped, _ = NEMOTRON.template_inputs(prepared.messages, "on")
    assert render(card_template, shaped, add_generation_prompt=True).startswith("<SPECIAL_10>System\nFirst.\nSecond.\n")


# Records as users send them, each with its texts: what batchgen makes of them must render in the card's
# template without failing and with every text in the prompt.
RECORDS = [
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]}]},
     ["part one\npart two"]),
    ({"messages": [user("weather?"), assistant(None, [WEATHER]), tool("sunny"), user("and?")], "tools": TOOLS},
     ["weather?", '"city": "Oslo"', "sunny", "and?"]),
    ({"messages": [user("weather?"), {"role": "assistant", "tool_calls": [WEATHER]}, {"role": "tool", "content": [{"type": "text", "text": "rainy"}]}]},
     ["weather?", "rainy"]),
    ({"system": "Sys.", "messages": [user("a"), system("Later one."), user("b /no_think"), system("Later two.")]},
     ["Sys.\nLater one.\nLater two.", "a", "b"]),
    ({"messages": [user("Write a haiku."), assistant("Rain on the window")]}, ["Rain on the window"]),
]


@pytest.mark.parametrize(("raw", "texts"), RECORDS, ids=range(len(RECORDS)))
@pytest.mark.parametrize("mode", ["on", "off"])
def test_what_batchgen_sends_the_card_renders_whole(card_template, raw, texts, mode):
    request = normalize(raw)
    assert isinstance(request, Request), request
    messages, _ = NEMOTRON.template_inputs(request.messages, mode)
    assert all(isinstance(m["content"], str) for m in messages)
    prompt = render(card_template, messages, request.tools, add_generation_prompt=True)
    assert all(text in prompt for text in texts), prompt


@pytest.mark.parametrize(
    ("messages", "names"),
    [
        ([system("Alone.")], "only system turns"),
        ([user("w?"), assistant("", [WEATHER])], "messages[-1].tool_calls"),
        ([user("Hi"), assistant("<think>\nI start")], "<think>"),
        ([user("Hi"), assistant("done</think>The answer")], "</think>"),
        ([user("Hi"), assistant("Done."), system("Now summarise.")], "after the final assistant turn"),
        ([user("a"), assistant("x</think> kept </think> lost"), user("b")], "more than once"),
    ],
    ids=["only system", "prefill with tool calls", "prefill opens reasoning", "prefill closes reasoning",
         "system after prefill", "reasoning closed twice"],
)
def test_conversations_the_card_cannot_render_whole_are_refused(messages, names):
    with pytest.raises(ConversationError) as refused:
        NEMOTRON.template_inputs(normalize({"messages": messages}).messages, "on")
    assert names in str(refused.value)
