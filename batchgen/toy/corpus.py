"""The synthetic conversations the toy model is trained on.

Each kind of conversation teaches one behaviour that tests and the demo rely on, under greedy decoding:
reasoning lines, then `</think>`, then an answer (`echo`); a direct answer when the prompt ends in
`<think></think>` (every kind, thinking off); long multi-line reasoning so budgets bite (`steps`); one long
line without a newline so the grace rule bites (`ramble`); a `<TOOLCALL>` when tools are offered (`tools`).
Tests and the demo use these same prompt builders (`echo_prompt`, `steps_prompt`, ...): the model has seen
such prompts, so its format is dependable on them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

WORDS = [
    "apple", "river", "stone", "cloud", "tiger", "maple", "ocean", "pencil", "garden", "rocket",
    "silver", "window", "candle", "forest", "planet", "bridge", "winter", "coffee", "violet", "harbor",
    "mirror", "desert", "lemon", "castle", "thunder", "meadow", "falcon", "copper", "island", "lantern",
]
CITIES = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Quito", "Rome", "Seoul"]
STEP_LINES = 24
RAMBLE_WORDS = 60

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TOOLS = [WEATHER_TOOL, TIME_TOOL]


@dataclass(frozen=True)
class Example:
    """One training conversation: chat messages, tools, the mode, and the assistant's target reply."""

    messages: list[dict]
    tools: list[dict] | None
    thinking: bool
    reasoning: str  # the reasoning text (lines ending in "\n"), unused when thinking is off
    answer: str


def echo_prompt(word: str) -> str:
    return f"Repeat the word {word}."


def steps_prompt(word: str) -> str:
    return f"Think step by step about {word}."


def ramble_prompt(word: str) -> str:
    return f"Ramble about {word}."


def weather_prompt(city: str) -> str:
    return f"What is the weather in {city}?"


def time_prompt(city: str) -> str:
    return f"What time is it in {city}?"


def _echo(word: str) -> tuple[str, str]:
    return f"The user wants the word {word}.\nI will answer with {word}.\n", word


def _echo_off(word: str) -> tuple[str, str]:
    # With reasoning off the answer is the word with its leading space (the output row's content is
    # trimmed): " apple" is the prompt's own token, whose output the reasoning lines train all the time,
    # while the bare "apple" is a token only answers use, and the toy's answer with it was a uniform guess
    # among the words. It still often picks another word (README, known limits); tests check the format.
    return "", f" {word}"


def _steps(word: str) -> tuple[str, str]:
    lines = "".join(f"Step {i}: I look at {word} again.\n" for i in range(1, STEP_LINES + 1))
    return lines, f"I thought about {word}."


def _ramble(word: str) -> tuple[str, str]:
    return " ".join(f"{word} {i}" for i in range(1, RAMBLE_WORDS + 1)) + "\n", f"That was {word}."


def nemotron_call(name: str, arguments: dict) -> str:
    """A tool call as Nemotron Nano v2 writes it (the model card): `<TOOLCALL>[{...}]</TOOLCALL>`."""
    return f"<TOOLCALL>{json.dumps([{'name': name, 'arguments': arguments}])}</TOOLCALL>"


def hermes_call(name: str, arguments: dict) -> str:
    """A tool call as Qwen3 writes it (its chat template's instructions, vLLM's `hermes` parser):
    `<tool_call>\n{...}\n</tool_call>`."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def _tool_call(name: str, city: str, call_format) -> tuple[str, str]:
    reasoning = f"The user asks about {city}.\nI will call {name}.\n"
    return reasoning, call_format(name, {"city": city})


SYSTEMS = [None, "You are a helpful assistant.", "Answer briefly."]
# Examples per echo prompt with reasoning off and per tool prompt, each with its own system and flag
# placement. The loss is a mean over reply tokens and the long steps and ramble replies hold nearly all of
# them: with one example of each, the toy trained beside the card's longer tool instructions once gave no
# answer after a budget closed its reasoning; with these shares it follows every format the engine tests
# check. Tool calls get more copies to keep their share of the corpus.
ECHO_OFF_COPIES, TOOL_COPIES = 10, 2


def _with_mode(rng: random.Random, user: str, thinking: bool) -> list[dict]:
    """A conversation whose mode is set the ways users set it: nothing, a system flag or a user flag."""
    system = rng.choice(SYSTEMS)
    where = rng.choice(["none", "system", "user"]) if thinking else rng.choice(["system", "user"])
    flag = "/think" if thinking else "/no_think"
    if where == "user":
        user = f"{user} {flag}"
    elif where == "system":
        system = f"{system or ''} {flag}".strip()
    messages = [{"role": "system", "content": system}] if system is not None else []
    return messages + [{"role": "user", "content": user}]


def build_corpus(seed: int = 0, call_format=nemotron_call) -> list[Example]:
    """The training conversations; `call_format(name, arguments) -> text` writes a tool call the way the
    model family does (`nemotron_call`, `hermes_call`)."""
    rng = random.Random(seed)
    examples: list[Example] = []
    for thinking in (True, False):
        echo, echo_copies = (_echo, 1) if thinking else (_echo_off, ECHO_OFF_COPIES)
        for word in WORDS:
            for prompt, make, copies in ((echo_prompt, echo, echo_copies), (steps_prompt, _steps, 1), (ramble_prompt, _ramble, 1)):
                reasoning, answer = make(word)
                for _ in range(copies):
                    examples.append(Example(_with_mode(rng, prompt(word), thinking), None, thinking, reasoning, answer))
        for city in CITIES:
            for prompt, name in ((weather_prompt, "get_weather"), (time_prompt, "get_time")):
                reasoning, answer = _tool_call(name, city, call_format)
                for _ in range(TOOL_COPIES):
                    tools = TOOLS if rng.random() < 0.5 else TOOLS[::-1]
                    examples.append(Example(_with_mode(rng, prompt(city), thinking), tools, thinking, reasoning, answer))
        # Multi-turn: an earlier exchange (its reasoning stripped by the template) before the real question.
        for word, other in zip(WORDS, WORDS[1:] + WORDS[:1]):
            history = [
                {"role": "user", "content": echo_prompt(other)},
                {"role": "assistant", "content": f"<think>\n{_echo(other)[0]}</think>\n\n{other}"},
            ]
            messages = _with_mode(rng, echo_prompt(word), thinking)
            messages = messages[:-1] + history + messages[-1:]
            reasoning, answer = echo(word)
            examples.append(Example(messages, None, thinking, reasoning, answer))
    return examples


def assistant_reply(example: Example, end: str = "\n<SPECIAL_12>") -> str:
    """What the model must generate after the generation prompt (which already holds the reasoning's
    opener, `<think>\\n`, or its empty reasoning), ending with the end of turn `end`."""
    if example.thinking:
        return f"{example.reasoning}</think>\n\n{example.answer}{end}"
    return f"{example.answer}{end}"
