"""Reasoning profiles: how one model family is told to think or not, and how it marks its reasoning.

A profile owns three things: which in-message flags switch reasoning (and how the chat template weighs
them), how a chosen mode reaches the chat template, and the text that ends the reasoning. The effective mode
follows one precedence for every profile: the record's `reasoning` field, then flags in its messages, then
the job default, then the model's own default.

- `nemotron-nano-v2` (first-class): `/think` or `/no_think` in a system or user message, the last one wins;
  the template strips them and ends the generation prompt with `<think>\\n` or `<think></think>`. batchgen
  enforces the effective mode by stripping every flag and putting the winning one in the system turn, and
  shapes the conversation so the card's template renders all of it (`_card_messages`).
- `qwen3`: the chat template's `enable_thinking` argument (flags in messages are honoured the same way);
  with reasoning on, batchgen writes the `<think>\\n` the model would open its reasoning with.
- `deepseek-r1`: always reasons; `reasoning: off` is an error for it.
- `none`: never reasons; `reasoning: on` is an error for it.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_FLAG, NO_THINK_FLAG = "/think", "/no_think"


class UnsupportedMode(ValueError):
    """The record asks for a reasoning mode its model cannot do."""


class ConversationError(ValueError):
    """A conversation the profile's chat template would fail on or render only in part (a record's
    `invalid_conversation`); the message names the field."""


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
    # vLLM's reasoning parser for these tags: its structured outputs wait for the end of thinking only when
    # the engine has one (`vllm/v1/structured_output/__init__.py`, `reasoning_parser`).
    vllm_reasoning_parser: str | None = "deepseek_r1"
    # What opens the reasoning when the template leaves that to the model: Qwen3's template ends its
    # generation prompt at `<|im_start|>assistant\n` with reasoning on and the model writes `<think>\n`
    # first. batchgen writes it into the prompt (the same tokens the model would write), so the generation
    # starts inside the reasoning for every profile: the split, the budget and its line-break rule hold.
    opener: str | None = None

    def effective_mode(self, reasoning: str | None, messages: list[dict], job_default: str | None) -> str:
        flagged = flag_mode(messages) if self.honours_flags else None
        mode = reasoning or flagged or job_default or self.default_mode
        if mode not in self.supported_modes:
            raise UnsupportedMode(f"model profile {self.name} cannot run with reasoning {mode}")
        return mode

    def template_inputs(self, messages: list[dict], mode: str) -> tuple[list[dict], dict]:
        """The messages and extra chat-template arguments that make the template render `mode`.

        `messages` are a `Request`'s (string content, in the record's order) and `mode` was computed from
        them already, so moving turns here cannot change which flag wins. Raises `ConversationError` when
        the template cannot render the conversation whole."""
        if self.mode_switch == "system_flag":
            return _card_messages(messages, mode), {}
        if self.mode_switch == "enable_thinking":
            if messages[-1]["role"] == "assistant":
                # Qwen3's template writes a final assistant turn whole, closed by <|im_end|>, and opens a new
                # turn after it: the model would answer again, not continue the text.
                raise ConversationError(
                    "messages[-1]: a final assistant turn cannot be continued with the qwen3 profile (its chat "
                    "template closes the turn and opens a new one); end the conversation with a user or tool turn")
            return messages, {"enable_thinking": mode == "on"}
        return messages, {}


def _card_messages(messages: list[dict], mode: str) -> list[dict]:
    """The conversation shaped for Nemotron Nano v2's chat template (the model card's), mode set by a flag.

    That template reads only `messages[0]` as the system turn and skips a system message anywhere else,
    which agent frameworks insert: such messages are folded into the system turn, in order, joined with
    "\\n" as text parts are. Every flag is stripped and the winning one is put in the system turn.

    A final assistant turn is a prefill: the template continues it after its own `<think>\\n` (reasoning on)
    or `<think></think>` (off). Refused (`invalid_conversation`), because the template would fail on them or
    drop text: only system turns (it indexes the last non-system turn), a final assistant turn with
    `tool_calls` (it keeps only the content), `<think>` or `</think>` in a prefill (the template opens the
    reasoning itself; the end of the reasoning must be generated to be split on), a system message after a
    final assistant turn (folding it would turn a finished turn into a prefill), and an earlier assistant
    turn with `</think>` twice (the template keeps only the text between the first two).
    """
    cleaned = [{**m, "content": _strip_flags(m["content"])} if m["role"] in ("system", "user") else m for m in messages]
    turns = [m for m in cleaned if m["role"] != "system"]
    if not turns:
        raise ConversationError("messages: only system turns; a user turn is needed")
    if turns[-1]["role"] == "assistant":
        _check_prefill(turns[-1], ends_with_system=cleaned[-1]["role"] == "system")
    for turn in turns[:-1]:
        if turn["role"] == "assistant" and turn["content"].count("</think>") > 1:
            raise ConversationError(
                "messages: an assistant turn holds </think> more than once; the template would keep only the text "
                f"between the first two (got {turn['content']!r:.80})"
            )
    system = "\n".join(m["content"] for m in cleaned if m["role"] == "system" and m["content"])
    flag = THINK_FLAG if mode == "on" else NO_THINK_FLAG
    return [{"role": "system", "content": f"{system} {flag}".strip()}, *turns]


def _check_prefill(turn: dict, ends_with_system: bool) -> None:
    if ends_with_system:
        raise ConversationError(
            "messages: a system message after the final assistant turn cannot be put in the system turn without "
            "making that assistant turn a prefill; move it before the assistant turn",
        )
    if turn.get("tool_calls"):
        raise ConversationError(
            "messages[-1].tool_calls: a final assistant turn is continued as a prefill, which keeps only its "
            "content; end the conversation with the tool results",
        )
    for tag in ("<think>", "</think>"):
        if tag in turn["content"]:
            raise ConversationError(
                f"messages[-1].content: a prefill cannot hold {tag}: the template opens the reasoning itself "
                f"(got {turn['content']!r:.80})",
            )


PROFILES = {
    p.name: p
    for p in (
        ReasoningProfile("nemotron-nano-v2", "on", frozenset({"on", "off"}), True, "system_flag"),
        ReasoningProfile("qwen3", "on", frozenset({"on", "off"}), True, "enable_thinking", opener="<think>\n"),
        ReasoningProfile("deepseek-r1", "on", frozenset({"on"}), False, None),
        ReasoningProfile("none", "off", frozenset({"off"}), False, None, think_end=None, vllm_reasoning_parser=None),
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
