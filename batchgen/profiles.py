"""Reasoning profiles: how one model family is told to think or not, and how it marks its reasoning.

A profile owns three things: which in-message flags switch reasoning (and how the chat template weighs
them), how a chosen mode reaches the chat template, and the text that ends the reasoning. The effective mode
follows one precedence for every profile: the record's `reasoning` field, then flags in its messages, then
the job default, then the model's own default.

- `nemotron-nano-v2` (first-class): `/think` or `/no_think` in a system or user message, the last one wins;
  the template strips them and ends the generation prompt with `<think>\\n` or `<think></think>`. batchgen
  enforces the effective mode by stripping every flag and putting the winning one in the system turn.
- `qwen3`: the chat template's `enable_thinking` argument (flags in messages are honoured the same way).
- `deepseek-r1`: always reasons; `reasoning: off` is an error for it.
- `none`: never reasons; `reasoning: on` is an error for it.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_FLAG, NO_THINK_FLAG = "/think", "/no_think"


class UnsupportedMode(ValueError):
    """The record asks for a reasoning mode its model cannot do."""


def flag_mode(messages: list[dict]) -> str | None:
    """The mode that flags in system and user messages select, as Nemotron's template reads them: the last
    message with a flag wins, and within a message `/think` is looked for before `/no_think`."""
    mode = None
    for message in messages:
        content = message.get("content") or ""
        if message["role"] in ("system", "user"):
            if THINK_FLAG in content:
                mode = "on"
            elif NO_THINK_FLAG in content:
                mode = "off"
    return mode


def _strip_flags(text: str) -> str:
    return text.replace(THINK_FLAG, "").replace(NO_THINK_FLAG, "").strip()


@dataclass(frozen=True)
class ReasoningProfile:
    name: str
    default_mode: str  # "on" | "off"
    supported_modes: frozenset[str]
    honours_flags: bool
    mode_switch: str | None  # how a mode reaches the template: "system_flag", "enable_thinking" or None
    think_end: str | None = "</think>"

    def effective_mode(self, reasoning: str | None, messages: list[dict], job_default: str | None) -> str:
        flagged = flag_mode(messages) if self.honours_flags else None
        mode = reasoning or flagged or job_default or self.default_mode
        if mode not in self.supported_modes:
            raise UnsupportedMode(f"model profile {self.name} cannot run with reasoning {mode}")
        return mode

    def template_inputs(self, messages: list[dict], mode: str) -> tuple[list[dict], dict]:
        """The messages and extra chat-template arguments that make the template render `mode`."""
        if self.mode_switch == "system_flag":
            return _with_system_flag(messages, mode), {}
        if self.mode_switch == "enable_thinking":
            return messages, {"enable_thinking": mode == "on"}
        return messages, {}


def _with_system_flag(messages: list[dict], mode: str) -> list[dict]:
    cleaned = [
        {**m, "content": _strip_flags(m["content"])} if m["role"] in ("system", "user") and m.get("content") else m
        for m in messages
    ]
    flag = THINK_FLAG if mode == "on" else NO_THINK_FLAG
    if cleaned[0]["role"] == "system":
        return [{**cleaned[0], "content": f"{cleaned[0].get('content') or ''} {flag}".strip()}, *cleaned[1:]]
    return [{"role": "system", "content": flag}, *cleaned]


PROFILES = {
    p.name: p
    for p in (
        ReasoningProfile("nemotron-nano-v2", "on", frozenset({"on", "off"}), True, "system_flag"),
        ReasoningProfile("qwen3", "on", frozenset({"on", "off"}), True, "enable_thinking"),
        ReasoningProfile("deepseek-r1", "on", frozenset({"on"}), False, None),
        ReasoningProfile("none", "off", frozenset({"off"}), False, None, think_end=None),
    )
}


def detect_profile(chat_template: str | None) -> ReasoningProfile:
    """`profile: auto`: recognise the family from the markers its chat template uses."""
    template = chat_template or ""
    if "<SPECIAL_11>" in template and NO_THINK_FLAG in template:
        return PROFILES["nemotron-nano-v2"]
    if "enable_thinking" in template:
        return PROFILES["qwen3"]
    if "<think>" in template:
        return PROFILES["deepseek-r1"]
    return PROFILES["none"]


def resolve_profile(name: str, chat_template: str | None) -> ReasoningProfile:
    if name == "auto":
        return detect_profile(chat_template)
    if name not in PROFILES:
        raise ValueError(f"model.profile must be auto or one of {sorted(PROFILES)}, got {name!r}")
    return PROFILES[name]
