"""The input record contract and its normalization: a raw dict in, a `Request` or a `RecordError` out.

Field names are a contract shared with the pipeline, the JSON Schemas and users' data. Validation is
pydantic's (strict types: `"5"` is not an int); its errors are turned into one "code: message" line that
names the field and the value, with codes a program can count. Nothing here raises on bad data.

Normalization makes what writers of tabular data and OpenAI clients send into what a chat template reads:
NaN is null, a whole float is the integer it holds (pandas' float64 for integer columns with nulls), and a
message's content is one string (text parts joined, an assistant turn that only calls tools gets "").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

Reasoning = Literal["on", "off"]

# Fields of a record that steer generation; everything else a record carries is passed through untouched.
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "seed", "stop")


class TextPart(BaseModel):
    """One part of a message's content as OpenAI clients send it: `{"type": "text", "text": "..."}`."""

    model_config = ConfigDict(strict=True, extra="allow")
    type: Literal["text"]
    text: str

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, part: Any) -> Any:
        # The models batchgen serves read text only: an image or audio part cannot be dropped silently.
        if not isinstance(part, dict):
            raise PydanticCustomError("invalid_content", 'a content part is an object such as {"type": "text", "text": "..."}')
        if part.get("type") != "text":
            raise PydanticCustomError(
                "invalid_content", "a part of type {part_type} cannot be run: only text parts are",
                {"part_type": repr(part.get("type"))},
            )
        return part


# A message's content: a string, or a list of text parts. The tags are named as pydantic names union
# members, so `describe` leaves them out of the field path; only the branch the value's shape selects is
# tried, so an error is about that branch (not "should be a valid string" for a list of parts).
Content = Annotated[
    Annotated[str, Tag("str")] | Annotated[list[TextPart], Tag("list[TextPart]")],
    Discriminator(lambda value: "list[TextPart]" if isinstance(value, list) else "str"),
]


class FunctionCall(BaseModel):
    """The function an earlier assistant turn called: `arguments` a JSON object, or its text (OpenAI's form)."""

    model_config = ConfigDict(strict=True, extra="allow")
    name: Annotated[str, Field(min_length=1)]
    arguments: dict[str, Any] | str | None = None

    @field_validator("arguments")
    @classmethod
    def _an_object(cls, value: dict | str | None) -> dict:
        """The arguments as chat templates read them, an object ({} when absent or empty). vLLM's chat front end
        reads them the same way (vllm/renderers/chat_utils.py, `_postprocess_messages`) but turns text that
        is not a JSON object into {} with a warning; a batch job would then answer a history that is not the
        record's, so that is an error naming the field."""
        if not value:
            return {}
        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise PydanticCustomError("invalid_value", "not JSON: {why}", {"why": str(error)}) from None
        if not isinstance(parsed, dict):
            raise PydanticCustomError("invalid_value", "needs a JSON object, not {kind}",
                                      {"kind": type(parsed).__name__})
        return parsed


class ToolCall(BaseModel):
    """One call in an earlier assistant turn's `tool_calls`, OpenAI style."""

    model_config = ConfigDict(strict=True, extra="allow")
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    """One chat turn, OpenAI style: content is a string or a list of text parts."""

    model_config = ConfigDict(strict=True, extra="allow")
    role: Literal["system", "user", "assistant", "tool"]
    content: Content | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_required(self) -> Message:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise PydanticCustomError("invalid_content", "a {role} message needs content", {"role": self.role})
        return self


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    name: Annotated[str, Field(min_length=1)]
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    """An OpenAI function tool: `{"type": "function", "function": {"name": ..., "parameters": {...}}}`."""

    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["function"] = "function"
    function: FunctionDefinition


def id_text(value) -> str | None:
    """A record's own id as text, or None when it has none usable. Integers (and floats that hold one,
    as pandas writes integer columns with nulls) become their decimal text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value) or not value.is_integer():
            return None  # no id; a non-integral float is also the record's invalid_type error
        value = int(value)
    return str(value) if isinstance(value, (str, int)) else None


def whole_number(value: Any) -> Any:
    """pandas stores an integer column that has nulls as float64, so its Parquet and `to_json` give 16.0
    for 16: a float holding a whole number is that int. Any other value is left to strict validation, which
    refuses 16.5 or "16" naming the field and the value."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class JsonSchema(BaseModel):
    """OpenAI's `response_format.json_schema`: the schema under `schema`, a `name`, optional `strict`."""

    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)
    name: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI's `response_format`: `{"type": "text"}`, `{"type": "json_object"}` or
    `{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}`."""

    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise PydanticCustomError(
                "invalid_value", 'json_schema is given exactly when type is "json_schema"')
        return self


class StructuredOutputs(BaseModel):
    """vLLM's `structured_outputs` (`vllm.sampling_params.StructuredOutputsParams`): exactly one of
    `choice` (the answer is one of these strings), `regex`, `json` (a JSON Schema) or `grammar` (EBNF)."""

    # Written under its alias: a spec's defaults travel to the replicas as JSON and are read back by name.
    model_config = ConfigDict(strict=True, extra="forbid", serialize_by_alias=True)
    choice: list[str] | None = Field(None, min_length=1)
    regex: str | None = None
    json_: dict[str, Any] | None = Field(None, alias="json")
    grammar: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutputs:
        if len(self.model_dump(exclude_none=True)) != 1:
            raise PydanticCustomError("invalid_value", "structured_outputs takes exactly one of choice, regex, json, grammar")
        return self


Budget = Annotated[int, Field(ge=0)]
# One budget, or a sweep: the branch the value's shape selects is the only one tried (as for `Content`).
BudgetOrSweep = Annotated[
    Annotated[Budget, Tag("int")] | Annotated[list[Budget | None], Tag("list[int]")],
    Discriminator(lambda value: "list[int]" if isinstance(value, list) else "int"),
]


class RecordFields(BaseModel):
    """The fields a record (or the job's `defaults`) may set to steer generation."""

    model_config = ConfigDict(strict=True, extra="forbid")
    reasoning: Reasoning | None = Field(None, description='"on" or "off"; null: flags in the messages, then the job default, then the model\'s (on)')
    max_thinking_tokens: BudgetOrSweep | None = Field(
        None, description="thinking budget in tokens; null: no budget; a list (null: no budget) is a sweep: a row "
        "per budget from one decoded reasoning")
    max_tokens: int | None = Field(None, ge=1, description="generated tokens in all, reasoning plus answer")
    temperature: float | None = Field(None, ge=0, description="null: 0.6 with reasoning on, greedy with it off (model card)")
    top_p: float | None = Field(None, gt=0, le=1, description="null: 0.95 with reasoning on, 1 with it off")
    top_k: int | None = Field(None, ge=-1, description="-1 or 0: off")
    seed: int | None = Field(None, description="per-record sampling seed")
    stop: str | list[str] | None = Field(None, description="stop strings")
    tools: list[Tool] | None = Field(None, description="OpenAI function definitions offered to the model")
    n: int | None = Field(None, ge=1, description="samples per record, each its own row (sample_index); null: 1")
    response_format: ResponseFormat | None = Field(
        None, description='OpenAI\'s: {"type": "json_object"} or {"type": "json_schema", "json_schema": {"schema": ...}}; '
        "constrains the answer only, through vLLM's structured outputs")
    structured_outputs: StructuredOutputs | None = Field(
        None, description="vLLM's: one of choice, regex, json, grammar; constrains the answer only")
    logprobs: bool | None = Field(None, description="each generated token's logprob in the logprobs column")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="alternatives per token (0-20) when logprobs is on")

    @field_validator("max_thinking_tokens", "max_tokens", "top_k", "seed", "n", "top_logprobs", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        if isinstance(value, list):  # a budget sweep
            return [whole_number(v) for v in value]
        return whole_number(value)

    @field_validator("max_thinking_tokens")
    @classmethod
    def _sweep(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise PydanticCustomError("invalid_value", "a budget sweep lists distinct budgets, at least one")
        return value

    @model_validator(mode="before")
    @classmethod
    def _nan_is_null(cls, data: Any) -> Any:
        # pandas writes a missing value as NaN (float columns) and Python's json reads a NaN literal: in
        # any field of a record it means "not set", as null does. A copy: the caller's dict is not changed.
        if isinstance(data, dict):
            return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in data.items()}
        return data


class InputRecord(RecordFields):
    """One input record: an id, exactly one of `prompt` or `messages`, and optional generation fields."""

    model_config = ConfigDict(strict=True, extra="allow")
    id: str | int | None = Field(None, description="unique id; integers (and floats holding one) become their decimal text")
    prompt: str | None = Field(None, description="one user turn (exclusive with messages)")
    messages: list[Message] | None = Field(None, description="OpenAI-style chat (exclusive with prompt)")
    system: str | None = Field(None, description="a system turn put before prompt or messages")

    @field_validator("id", mode="before")
    @classmethod
    def _whole_id(cls, value: Any) -> Any:
        return whole_number(value)

    @field_validator("messages")
    @classmethod
    def _not_empty(cls, messages: list[Message] | None) -> list[Message] | None:
        if messages is not None and not messages:
            raise PydanticCustomError("empty_messages", "messages is empty")
        return messages

    @model_validator(mode="after")
    def _one_constraint(self) -> InputRecord:
        if self.response_format is not None and self.structured_outputs is not None:
            raise PydanticCustomError("invalid_value", "give response_format or structured_outputs, not both")
        return self

    @model_validator(mode="after")
    def _one_prompt(self) -> InputRecord:
        if (self.prompt is None) == (self.messages is None):
            code = "missing_prompt" if self.prompt is None else "conflicting_prompt"
            raise PydanticCustomError(code, "a record needs exactly one of prompt or messages")
        if self.system is not None and self.messages and self.messages[0].role == "system":
            raise PydanticCustomError("conflicting_prompt", "system is given both as a field and as the first message")
        return self


@dataclass(frozen=True)
class RecordError:
    """Why a record cannot run: a countable code and a message naming the field and value."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class Request:
    """A valid record, defaults applied, ready for templating."""

    id: str
    # In the record's order (a `system` field first), every content a string. System messages after the
    # first stay where they are: flags are weighed in conversation order before a profile moves them.
    messages: list[dict]
    tools: list[dict] | None
    reasoning: Reasoning | None  # the record's own field only; flags and defaults are the profile's to weigh
    default_reasoning: Reasoning | None
    max_thinking_tokens: int | list[int | None] | None  # a list: a budget sweep (`batchgen.record.sweep`)
    max_tokens: int | None
    sampling: dict = field(default_factory=dict)  # the record's (or default's) own sampling values
    n: int = 1
    # vLLM `StructuredOutputsParams` keyword arguments (`choice`, `regex`, `json`, `grammar`, `json_object`),
    # with `field`: the record field they came from, for error messages. None: a free answer.
    structured: dict | None = None
    logprobs: int | None = None  # top alternatives per token (vLLM's `logprobs`); None: no logprobs


def structured_of(response_format: ResponseFormat | None, structured_outputs: StructuredOutputs | None) -> dict | None:
    """The vLLM structured-output arguments of a record's `response_format` (OpenAI's) or
    `structured_outputs` (vLLM's), with `field` naming which; None for a free answer (`{"type": "text"}`)."""
    if structured_outputs is not None:
        return {"field": "structured_outputs", **structured_outputs.model_dump(exclude_none=True, by_alias=True)}
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return {"field": "response_format", "json_object": True}
    return {"field": "response_format", "json": response_format.json_schema.schema_}


def _error_code(error: dict) -> str:
    kind, loc = error["type"], error["loc"]
    if kind in {"missing_prompt", "conflicting_prompt", "empty_messages", "invalid_content", "invalid_value"}:
        return kind
    if "tools" in loc:
        return "invalid_tools"
    if loc and loc[-1] == "role":
        return "unknown_role"
    if "content" in loc:  # the content itself or one of its parts
        return "invalid_content"
    if kind.startswith(("greater_than", "less_than", "too_short")):
        return "out_of_range"
    if kind in {"literal_error", "enum"}:
        return "invalid_value"
    return "invalid_type"


def _field_path(loc: tuple) -> str:
    """A pydantic error location as the user writes the field: `messages[2].content[0]`. Union members
    show up in the location (`str`, `list[str]`); the user's path is the rest."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not ("[" in part or part in {"str", "int", "function-after", "constrained-int"}):
            path += f".{part}" if path else part
    return path


def describe(error: ValidationError | Exception) -> RecordError:
    """The first pydantic error as one line: `code: field: message (got value)`."""
    if not isinstance(error, ValidationError):
        return RecordError("invalid_record", str(error))
    first = error.errors(include_url=False)[0]
    path = _field_path(first["loc"])
    got = first.get("input")
    # Quote the offending value, unless it is a whole record or section (too long to help).
    value = "" if isinstance(got, dict) or got is None else f" (got {got!r:.80})"
    where = f"{path}: " if path else ""
    return RecordError(_error_code(first), f"{where}{first['msg']}{value}")


def _template_turn(message: Message) -> dict:
    """One message as chat templates read it: content is always a string."""
    turn = message.model_dump(exclude_none=True)
    if isinstance(message.content, list):
        # As vLLM's chat front end does for a text-only model (vllm/renderers/chat_utils.py,
        # `_parse_chat_message_content_parts`: `"\n".join(texts)`), so a record renders as it would when served.
        turn["content"] = "\n".join(part.text for part in message.content)
    elif message.content is None:
        # An assistant turn that only calls tools: the card's template reads every turn's content as a
        # string (`'</think>' in content`) and fails on a missing one.
        turn["content"] = ""
    return turn


def normalize(raw: dict, defaults: RecordFields | None = None, row_id: str | None = None) -> Request | RecordError:
    """Validates one raw record and applies the job's defaults (the record's own values win). `row_id`, when
    given, is the id the row gets (the pipeline's, which knows about fallbacks and duplicates)."""
    try:
        record = InputRecord.model_validate(raw)
    except ValidationError as error:
        return describe(error)
    defaults = defaults or RecordFields()
    # Only the fields defaults can fill: a record's passthrough fields are not copied for nothing.
    own = record.model_dump(include=set(RecordFields.model_fields), exclude_none=True, exclude_unset=True)

    def pick(name: str):
        return own.get(name, getattr(defaults, name))

    if record.messages is not None:
        messages = [_template_turn(m) for m in record.messages]
    else:
        messages = [{"role": "user", "content": record.prompt}]
    if record.system is not None:
        messages = [{"role": "system", "content": record.system}, *messages]
    tools = pick("tools")
    # A record's own constraint replaces the defaults' (whichever of the two fields either used).
    own_constraint = record.response_format is not None or record.structured_outputs is not None
    constraint = record if own_constraint else defaults
    top_logprobs = pick("top_logprobs")
    if top_logprobs is not None and not pick("logprobs"):
        return RecordError("invalid_value", f"top_logprobs: needs logprobs: true, as in OpenAI's API (got {top_logprobs})")
    budgets = pick("max_thinking_tokens")
    if pick("logprobs") and isinstance(budgets, list) and len(budgets) > 1:
        # A sweep's smaller budgets continue from a prompt: their reasoning's logprobs are not generated again.
        return RecordError("invalid_value", "logprobs: not with a budget sweep (max_thinking_tokens is a list)")
    return Request(
        id=row_id if row_id is not None else ("" if record.id is None else str(record.id)),
        messages=messages,
        tools=[t if isinstance(t, dict) else t.model_dump(exclude_none=True) for t in tools] if tools else None,
        reasoning=record.reasoning,
        default_reasoning=defaults.reasoning,
        max_thinking_tokens=pick("max_thinking_tokens"),
        max_tokens=pick("max_tokens"),
        sampling={name: pick(name) for name in SAMPLING_FIELDS if pick(name) is not None},
        n=pick("n") or 1,
        structured=structured_of(constraint.response_format, constraint.structured_outputs),
        logprobs=(top_logprobs or 0) if pick("logprobs") else None,
    )


# The input contract's own fields; a record's other fields are passed through to its output row.
INPUT_FIELDS = frozenset(InputRecord.model_fields)


def parse_json_line(line: bytes) -> dict | RecordError:
    """One JSONL line as a record, or why it is not one."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return RecordError("invalid_utf8", f"byte {error.start} is not UTF-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return RecordError("invalid_json", f"{error.msg} at column {error.colno}")
    except RecursionError:
        return RecordError("invalid_json", "nested deeper than a JSON reader can follow")
    if not isinstance(value, dict):
        return RecordError("invalid_json", f"a record is a JSON object, got {type(value).__name__}")
    return value


def not_text(value, path: str = "") -> RecordError | None:
    """Why a parsed JSON value holds a string that is not text, or None. JSON may escape half of a UTF-16
    pair on its own (`"\\udc80"`, as tools that cut UTF-16 text mid-pair write it) and Python reads it, but
    UTF-8 cannot hold it: Arrow, Parquet and tokenizers refuse it. The error names the field as the user
    writes it (`messages[0].content`) and where in the string it is."""
    if isinstance(value, str):
        # UTF-8's encoder finds the first surrogate in C (a loop over the characters in Python took ~0.5 s
        # per 1,024 records of 7.5 KB, paid at every read of a record)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            char = value[error.start]
            return RecordError("invalid_utf8", f"{path or 'value'}: {char!r} at character {error.start} is half of a "
                                               f"UTF-16 pair, which is not text (got {value!r:.80})")
        return None
    if isinstance(value, dict):
        for key in value:
            # The path is text even where the key is not: a surrogate is written as its escape.
            name = key.encode("utf-8", "backslashreplace").decode()
            where = f"{path}.{name}" if path else name
            if error := not_text(key, f"{where} (the key)") or not_text(value[key], where):
                return error
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if error := not_text(item, f"{path}[{index}]"):
                return error
    return None
