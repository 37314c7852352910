"""The output record: splitting reasoning from content, parsing tool calls, shaping rows (pure logic).

The split is made on the end-of-thinking token id in the generated ids, never on decoded text, so a model
that writes "</think>" as plain text inside its answer cannot fool it. Nothing is dropped: reasoning cut off
by `max_tokens` stays in `reasoning_content`; a tool call that does not parse keeps its raw text in
`content` and says why in `error`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from batchgen.records import RecordError

TOOL_CALL_BLOCK = re.compile(r"<TOOLCALL>(.*?)</TOOLCALL>", re.DOTALL)


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


def _tool_call_id(record_id: str, index: int) -> str:
    # Deterministic, so a rerun of the same record yields the same ids; unique across a dataset.
    return "call_" + hashlib.sha256(f"{record_id}\x00{index}".encode()).hexdigest()[:24]


def parse_tool_calls(content: str, record_id: str) -> tuple[str, list[dict] | None, str | None]:
    """Nemotron's `<TOOLCALL>[{"name": ..., "arguments": {...}}]</TOOLCALL>` blocks out of an answer.

    Returns (content without the blocks, tool calls or None, error or None). On any parse error the content
    is returned whole, raw blocks included."""
    if "<TOOLCALL>" not in content:
        return content, None, None
    blocks = TOOL_CALL_BLOCK.findall(content)
    if not blocks or content.count("<TOOLCALL>") != len(blocks):
        return content, None, "tool_call_parse_error: <TOOLCALL> without a closing </TOOLCALL>"
    calls = []
    for block in blocks:
        try:
            items = json.loads(block)
        except json.JSONDecodeError as exc:
            return content, None, f"tool_call_parse_error: not JSON ({exc.msg} at {exc.pos})"
        items = items if isinstance(items, list) else [items]
        for item in items:
            if not (isinstance(item, dict) and isinstance(item.get("name"), str)):
                return content, None, "tool_call_parse_error: each call needs a string name"
            arguments = item.get("arguments", {})
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False)
            calls.append({"id": _tool_call_id(record_id, len(calls)), "name": item["name"], "arguments": arguments})
    return TOOL_CALL_BLOCK.sub("", content).strip(), calls, None


def answer_row(
    *, record_id: str, model: str, mode: str, reasoning_text: str | None, content: str, finish_reason: str,
    budget_hit: bool, prompt_tokens: int, reasoning_tokens: int, completion_tokens: int,
) -> dict:
    content, tool_calls, error = parse_tool_calls(content.strip(), record_id)
    if tool_calls and finish_reason == "stop":
        finish_reason = "tool_calls"
    return {
        "id": record_id,
        "reasoning": mode,
        "reasoning_content": None if mode == "off" else (reasoning_text or "").strip(),
        "content": content,
        "tool_calls": tool_calls,
        "finish_reason": finish_reason,
        "thinking_budget_hit": budget_hit,
        "prompt_tokens": prompt_tokens,
        "reasoning_tokens": reasoning_tokens,
        "completion_tokens": completion_tokens,
        "error": error,
        "model": model,
    }


def error_row(record_id: str, model: str, error: RecordError, mode: str | None = None, prompt_tokens: int = 0) -> dict:
    return {
        "id": record_id, "reasoning": mode, "reasoning_content": None, "content": None, "tool_calls": None,
        "finish_reason": "error", "thinking_budget_hit": False, "prompt_tokens": prompt_tokens,
        "reasoning_tokens": 0, "completion_tokens": 0, "error": str(error), "model": model,
    }


class ToolCall(BaseModel):
    id: str = Field(description="deterministic per record and position")
    name: str
    arguments: str = Field(description="the arguments as JSON text")


class OutputRecord(BaseModel):
    """One output row (before the record's passthrough fields)."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(description="the record's id as text")
    reasoning: Literal["on", "off"] | None = Field(description="the effective mode; null when the record could not run")
    reasoning_content: str | None = Field(description="the reasoning; null when reasoning was off")
    content: str | None = Field(description="the answer without tool-call blocks; null on error rows")
    tool_calls: list[ToolCall] | None = Field(description="parsed tool calls; null when none")
    finish_reason: Literal["stop", "length", "tool_calls", "error", "abort"]
    thinking_budget_hit: bool = Field(description="the thinking budget ended the reasoning")
    prompt_tokens: int
    reasoning_tokens: int = Field(description="generated tokens up to and including the end of thinking")
    completion_tokens: int = Field(description="all generated tokens, reasoning plus answer")
    error: str | None = Field(description='null, or "code: message"')
    model: str


OUTPUT_FIELDS = tuple(OutputRecord.model_fields)
