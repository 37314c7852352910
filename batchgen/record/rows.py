"""The output row contract, written once: `OutputRow` is the model from which the Arrow schema of every
data file, the JSON Schema (`batchgen schema output`) and the answer and error rows all come.

Names follow OpenAI's chat API and vLLM where they have one (`reasoning_content`, `content`,
`tool_calls`, `finish_reason`, `*_tokens`). A record's passthrough fields follow these columns
(`batchgen.core.passthrough`).
"""

from __future__ import annotations

import types
import typing
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from batchgen.record.answers import ToolParse, check_structured, parse_tool_calls
from batchgen.record.contract import RecordError


class ToolCall(BaseModel):
    id: str = Field(description="deterministic per record and position")
    name: str
    arguments: str = Field(description="the arguments as JSON text")


class TopLogprob(BaseModel):
    token: str
    logprob: float


class TokenLogprob(BaseModel):
    """One generated token, as OpenAI's chat API gives it (`choices[].logprobs.content[]`, without `bytes`)."""

    token: str
    logprob: float = Field(description="-9999.0 for a token the sampler could not have drawn (OpenAI's value), never -inf")
    top_logprobs: list[TopLogprob] = Field(description="the top_logprobs most likely tokens at this position, most likely first")


class Logprobs(BaseModel):
    reasoning_content: list[TokenLogprob] | None = Field(description="the reasoning's tokens, end of thinking included; null with reasoning off")
    content: list[TokenLogprob]


class OutputRow(BaseModel):
    """One output row (before the record's passthrough fields). The defaults are an error row's."""

    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)
    id: str = Field(description="the record's id as text")
    sample_index: int | None = Field(None, description="which of the record's n samples (0-based); with id, the row's "
                                     "unique key; null on the one row of a record that could not run")
    max_thinking_tokens: int | None = Field(None, description="the thinking budget this row ran with (null: none); a "
                                            "budget sweep gives a row per budget, and it is part of the row's key")
    reasoning: Literal["on", "off"] | None = Field(None, description="the effective mode; null when the record could not run")
    reasoning_content: str | None = Field(None, description="the reasoning; null when reasoning was off")
    content: str | None = Field(None, description="the answer without tool-call blocks; null on error rows")
    tool_calls: list[ToolCall] | None = Field(None, description="parsed tool calls; null when none")
    finish_reason: Literal["stop", "length", "tool_calls", "error", "abort"] = "error"
    thinking_budget_hit: bool = Field(False, description="the thinking budget ended the reasoning")
    reasoning_end: Literal["model", "budget_line_break", "budget_cut", "length", "stop"] | None = Field(
        None, description="how the reasoning ended: the model closed it, the budget did at a line break or by a "
        "cut (grace out, or strict mode), max_tokens came while reasoning, or a stop did; null with reasoning off")
    prompt_tokens: int = 0
    reasoning_tokens: int = Field(0, description="generated tokens up to and including the end of thinking")
    completion_tokens: int = Field(0, description="all generated tokens, reasoning plus answer")
    logprobs: Logprobs | None = Field(None, description="per generated token, split like the text; null unless the record asked")
    error: str | None = Field(None, description='null, or "code: message"')
    extracted_answer: str | None = Field(None, description="the answer the grade section's extractor took out of "
                                         "content; null when nothing was found or the job does not grade")
    correct: bool | None = Field(None, description="the answer matches the record's reference; null when not graded")
    ungraded_reason: str | None = Field(None, description='why correct is null, "code: why" (no_reference, '
                                        "bad_reference, error_row, no_answer, timeout); null when graded or the "
                                        "job does not grade")
    model: str


OUTPUT_FIELDS = tuple(OutputRow.model_fields)
_ERROR_ROW = {name: field.default for name, field in OutputRow.model_fields.items() if not field.is_required()}


def _arrow_type(annotation) -> pa.DataType:
    """Arrow type of a row field's annotation (the few shapes `OutputRow` uses)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _arrow_type(args[0])
    if origin is Literal:
        return pa.string()
    if origin is list:
        return pa.list_(_arrow_type(args[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct([(name, _arrow_type(f.annotation)) for name, f in annotation.model_fields.items()])
    return {str: pa.string(), int: pa.int64(), bool: pa.bool_(), float: pa.float64()}[annotation]


OUTPUT_SCHEMA = pa.schema([(name, _arrow_type(f.annotation)) for name, f in OutputRow.model_fields.items()])


def error_row(record_id: str, model: str, error: RecordError, mode: str | None = None, prompt_tokens: int = 0,
              sample_index: int | None = None, max_thinking_tokens: int | None = None) -> dict:
    """The row of a record (or of one of its samples, `sample_index`, at one budget) that produced no
    answer: `error` is "code: message"."""
    values = {**_ERROR_ROW, "id": record_id, "model": model, "reasoning": mode, "prompt_tokens": prompt_tokens,
              "error": str(error), "sample_index": sample_index, "max_thinking_tokens": max_thinking_tokens}
    return {name: values[name] for name in OUTPUT_FIELDS}


def answer_row(
    *, record_id: str, model: str, mode: str, reasoning_text: str | None, content: str, finish_reason: str,
    reasoning_end: str | None, prompt_tokens: int, reasoning_tokens: int, completion_tokens: int,
    sample_index: int = 0, max_thinking_tokens: int | None = None, logprobs: dict | None = None,
    structured: dict | None = None, tool_parser: ToolParse | None = parse_tool_calls,
) -> dict:
    """The row of a generated answer. A structured answer (`structured`, `records.Request.structured`) is
    checked (`outputs.check_structured`); otherwise tool calls are parsed out of `content` by the profile's
    `tool_parser` (a parse failure keeps the text and says why in `error`; None, for a record that offered
    no tools: the text is the content, whatever it holds); a stop with tool calls is
    `finish_reason` "tool_calls", as in OpenAI's API. Token counts are in tokens; `reasoning_tokens`
    includes the end-of-thinking token."""
    if structured:
        content, tool_calls, error = content.strip(), None, check_structured(content.strip(), structured)
    elif tool_parser is None:
        content, tool_calls, error = content.strip(), None, None
    else:
        # Tool-call ids are unique across a record's samples and budgets (sample 0 without a budget keeps the
        # record's own ids).
        key = record_id if sample_index == 0 else f"{record_id}\x00{sample_index}"
        key = key if max_thinking_tokens is None else f"{key}\x00budget {max_thinking_tokens}"
        content, tool_calls, error = tool_parser(content.strip(), key)
    if tool_calls and finish_reason == "stop":
        finish_reason = "tool_calls"
    return {
        "id": record_id,
        "sample_index": sample_index,
        "max_thinking_tokens": max_thinking_tokens,
        "reasoning": mode,
        "reasoning_content": None if mode == "off" else (reasoning_text or "").strip(),
        "content": content,
        "tool_calls": tool_calls,
        "finish_reason": finish_reason,
        "thinking_budget_hit": reasoning_end in ("budget_line_break", "budget_cut"),
        "reasoning_end": reasoning_end,
        "prompt_tokens": prompt_tokens,
        "reasoning_tokens": reasoning_tokens,
        "completion_tokens": completion_tokens,
        "logprobs": logprobs,
        "error": error,
        "extracted_answer": None,  # graded where rows are written (`batchgen.record.grading`)
        "correct": None,
        "ungraded_reason": None,
        "model": model,
    }
