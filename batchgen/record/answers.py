"""The answer: splitting reasoning from content and parsing tool calls (pure logic; `rows` shapes rows).

The split is made on the end-of-thinking token id in the generated ids, never on decoded text, so a model
that writes "</think>" as plain text inside its answer cannot fool it. Nothing is dropped: reasoning cut off
by `max_tokens` stays in `reasoning_content`; a tool call that does not parse keeps its raw text in
`content` and says why in `error`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence

TOOL_CALL_OPEN = "<TOOLCALL>"
TOOL_CALL_CLOSE = "</TOOLCALL>"
_JSON = json.JSONDecoder()
_JSON_KINDS = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def split_reasoning(token_ids: Sequence[int], mode: str, end_token_id: int | None) -> tuple[list[int] | None, list[int]]:
    """(reasoning ids up to and including the end-of-thinking token, answer ids). With reasoning on the
    generation starts inside the reasoning, so ids before the first end token are reasoning; with no end
    token at all, everything is reasoning (cut off by `max_tokens` or a stop). Off: all answer."""
    ids = list(token_ids)
    if mode == "off" or end_token_id is None:
        return None, ids
    if end_token_id not in ids:
        return ids, []
    end = ids.index(end_token_id) + 1
    return ids[:end], ids[end:]


def reasoning_end(mode: str, token_ids: Sequence[int], end_token_id: int | None, budget_close: str | None,
                  finish_reason: str) -> str | None:
    """How a row's reasoning ended: "model" (the model closed it), "budget_line_break" / "budget_cut" (the
    thinking budget did, `budget.budget_close`), "length" (max_tokens came while it was still reasoning),
    "stop" (a stop or the model's end of text came first), or None with reasoning off."""
    if mode == "off" or end_token_id is None:
        return None
    if budget_close:
        return budget_close
    if end_token_id in token_ids:
        return "model"
    return "length" if finish_reason == "length" else "stop"


# (answer, record id) -> (answer without the calls, tool calls or None, error or None): a profile's parser.
ToolParse = Callable[[str, str], tuple[str, list[dict] | None, str | None]]

# OpenAI's logprob for a token that could not have been drawn; JSON has no -inf.
IMPOSSIBLE_LOGPROB = -9999.0


def check_structured(content: str, structured: dict) -> str | None:
    """Why a structured answer does not hold (`error` text), or None. vLLM's grammar makes the answer
    match while it is generated, so a failure means the answer was cut (max_tokens, a stop string): JSON
    answers (`json`, `json_object`) must parse, a `choice` answer must be one of the choices; `regex` and
    `grammar` answers are not re-checked (Python's regex dialect is not the grammar's)."""
    field = structured["field"]
    if "json" in structured or "json_object" in structured:
        try:
            json.loads(content)
        except json.JSONDecodeError as exc:
            return f"invalid_structured_output: {field}: the answer is not JSON: {exc.msg} at character {exc.pos}"
        except RecursionError:  # an answer cut off deep inside nested arrays or objects
            return f"invalid_structured_output: {field}: the answer is not JSON: nested too deep to read"
    elif "choice" in structured and content not in structured["choice"]:
        return f"invalid_structured_output: {field}: the answer {content!r:.80} is none of the choices"
    return None


def token_logprobs(token_ids: Sequence[int], logprobs: Sequence[dict], top: int,
                   decode: Callable[[int], str]) -> list[dict]:
    """Per generated token, OpenAI's shape `{token, logprob, top_logprobs: [{token, logprob}]}` from vLLM's
    `CompletionOutput.logprobs` (per position, {token id: Logprob(logprob, rank)}: the sampled token and
    the `top` most likely ones). -inf (a token masked by a grammar or forced by the budget) becomes
    `IMPOSSIBLE_LOGPROB`."""
    def value(x: float) -> float:
        return IMPOSSIBLE_LOGPROB if math.isinf(x) else x

    shaped = []
    for token_id, position in zip(token_ids, logprobs):
        ranked = sorted((lp.rank, tid, lp.logprob) for tid, lp in position.items() if lp.rank is not None and lp.rank <= top)
        shaped.append({"token": decode(token_id), "logprob": value(position[token_id].logprob),
                       "top_logprobs": [{"token": decode(tid), "logprob": value(lp)} for _, tid, lp in ranked]})
    return shaped


def tool_call_id(record_id: str, index: int) -> str:
    # Deterministic, so a rerun of the same record yields the same ids; unique across a dataset.
    return "call_" + hashlib.sha256(f"{record_id}\x00{index}".encode()).hexdigest()[:24]


class _Unparsable(Exception):
    """Why a tool-call block cannot be read; the message names the block by its character position."""


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _read_block(content: str, start: int) -> tuple[object, int]:
    """The JSON value of the block whose `<TOOLCALL>` is at `start`, and the position just after its
    `</TOOLCALL>`. The JSON is read by its structure (`raw_decode`), not up to the first closing tag, so a
    `</TOOLCALL>` or `<TOOLCALL>` inside a string argument is text, not a tag."""
    pos = _skip_space(content, start + len(TOOL_CALL_OPEN))
    # The text ending inside the block (cut off by max_tokens or a stop string) is the common failure.
    unclosed = _Unparsable(f"the <TOOLCALL> at character {start} has no closing </TOOLCALL>")
    try:
        value, end = _JSON.raw_decode(content, pos)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(content):
            raise unclosed from None
        raise _Unparsable(
            f"the <TOOLCALL> at character {start} does not hold JSON: {exc.msg} at character {exc.pos}"
        ) from None
    close = _skip_space(content, end)
    if content.startswith(TOOL_CALL_CLOSE, close):
        return value, close + len(TOOL_CALL_CLOSE)
    if close == len(content):
        raise unclosed
    raise _Unparsable(
        f"the <TOOLCALL> at character {start} needs </TOOLCALL> right after its JSON, "
        f"found {content[close:close + 20]!r} at character {close}"
    )


def _calls_in(value: object, start: int) -> list[tuple[str, str]]:
    """(name, arguments as JSON text) of each call in one block's JSON value: a list of calls (the model
    card's format) or a single call object."""
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        kind = _JSON_KINDS[type(value)]
        raise _Unparsable(f"the <TOOLCALL> at character {start} holds {kind}, not a list of calls")
    calls = []
    for n, item in enumerate(items):
        where = f"call {n} in the <TOOLCALL> at character {start}"
        if not isinstance(item, dict):
            raise _Unparsable(f"{where} is {_JSON_KINDS[type(item)]}, not an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise _Unparsable(f'{where} needs a "name" string, got {name!r:.60}')
        arguments = item.get("arguments", {})
        # OpenAI's contract: arguments are the JSON text of an object; a model may write that text itself.
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise _Unparsable(f'{where} needs "arguments" to be an object, got {arguments!r:.60}')
        calls.append((name, arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)))
    return calls


def parse_tool_calls(content: str, record_id: str) -> tuple[str, list[dict] | None, str | None]:
    """Nemotron's `<TOOLCALL>[{"name": ..., "arguments": {...}}]</TOOLCALL>` blocks out of an answer.

    Returns (content without the blocks, tool calls or None, error or None). Each block holds one JSON
    value, a list of calls or one call object, with only whitespace between it and the tags; an answer may
    hold several blocks, with text between them, which stays in the content. Call ids follow the calls'
    order across all blocks. On any parse error the content is returned whole, raw blocks included, with
    `error` "tool_call_parse_error: ..." naming the block by the character position of its `<TOOLCALL>` in
    `content` (and where the JSON failed)."""
    outside, calls, pos = [], [], 0
    try:
        while (start := content.find(TOOL_CALL_OPEN, pos)) != -1:
            outside.append(content[pos:start])
            value, pos = _read_block(content, start)
            calls.extend(_calls_in(value, start))
    except _Unparsable as exc:
        return content, None, f"tool_call_parse_error: {exc}"
    if not outside:
        return content, None, None
    outside.append(content[pos:])
    tool_calls = [{"id": tool_call_id(record_id, i), "name": name, "arguments": arguments}
                  for i, (name, arguments) in enumerate(calls)]
    return "".join(outside).strip(), tool_calls or None, None
