"""OpenAI Batch API files (pure logic): their input lines as batchgen records, and batchgen's rows as their
output lines.

Input (`input.format: openai`), one request per line, as OpenAI's Batch API and vLLM's `run-batch` read it:
`{"custom_id": ..., "method": "POST", "url": "/v1/chat/completions", "body": {"model": ..., "messages": [...],
...}}`. `custom_id` is the record's id; the body's fields map to the record's (`max_completion_tokens` or
`max_tokens` to `max_tokens`, `reasoning_effort: "none"` to reasoning off and any other effort to on, vLLM's
`chat_template_kwargs.enable_thinking` to the mode). `model` is read and ignored: the job's model answers
every line. A body field batchgen cannot honour is the line's `invalid_value` error naming it, never a
silent drop.

Output (`output.format: openai`): one line per input line, `{"id", "custom_id", "response": {"status_code":
200, "request_id", "body": <chat.completion>}, "error": null}`, the record's samples as the completion's
`choices` (`message` with `content`, `reasoning_content`, `tool_calls`; `usage` with
`completion_tokens_details.reasoning_tokens`); a record without any answer is `"response": null, "error":
{"code", "message"}`, as OpenAI's error file has it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from batchgen.record.contract import RecordError

CHAT_URL = "/v1/chat/completions"
# Body fields that map to a record field of the same name.
SAME_NAME = ("messages", "temperature", "top_p", "seed", "stop", "tools", "response_format", "n", "logprobs",
             "top_logprobs",
             # vLLM's extensions to the chat API (run-batch takes them), and batchgen's thinking budget.
             "top_k", "structured_outputs", "max_thinking_tokens")
IGNORED = ("model", "user", "metadata", "store")  # no effect on what is generated


def _reasoning(body: dict) -> tuple[str | None, str | None]:
    """(reasoning mode or None, error) from `reasoning_effort` or `chat_template_kwargs.enable_thinking`."""
    effort = body.get("reasoning_effort")
    kwargs = body.get("chat_template_kwargs") or {}
    if not isinstance(kwargs, dict) or set(kwargs) - {"enable_thinking"}:
        return None, f"body.chat_template_kwargs: only enable_thinking is read (got {kwargs!r:.80})"
    if effort is not None and effort not in ("none", "minimal", "low", "medium", "high"):
        return None, f"body.reasoning_effort: none, minimal, low, medium or high (got {effort!r:.40})"
    if "enable_thinking" in kwargs:
        return ("on" if kwargs["enable_thinking"] else "off"), None
    return (None if effort is None else "off" if effort == "none" else "on"), None


def record_of(line: dict) -> dict | RecordError:
    """The batchgen record of one Batch API input line, or the line's error (`invalid_value`, naming the
    field). The record is then validated as any other (`records.normalize`)."""
    if line.get("method", "POST") != "POST" or line.get("url", CHAT_URL) != CHAT_URL:
        return RecordError("invalid_value", f'method and url: only POST {CHAT_URL} runs (got {line.get("method")!r} '
                                            f'{line.get("url")!r:.60})')
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return RecordError("invalid_value", f"custom_id: every line needs one, a non-empty string (got {custom_id!r:.60})")
    unknown = sorted(set(line) - {"custom_id", "method", "url", "body"})
    body = line.get("body")
    if unknown or not isinstance(body, dict):
        what = f"unknown fields {', '.join(unknown)}" if unknown else f"body must be an object (got {body!r:.40})"
        return RecordError("invalid_value", what)
    supported = {*SAME_NAME, *IGNORED, "max_tokens", "max_completion_tokens", "reasoning_effort",
                 "chat_template_kwargs", "stream", "tool_choice"}
    if unsupported := sorted(set(body) - supported):
        return RecordError("invalid_value", f"body: batchgen cannot honour {', '.join(unsupported)}")
    if body.get("stream"):
        return RecordError("invalid_value", "body.stream: a batch line is answered whole (got true)")
    tool_choice = body.get("tool_choice", "auto")
    if tool_choice not in ("auto", "none"):
        return RecordError("invalid_value", f'body.tool_choice: only "auto" or "none" (got {tool_choice!r:.60})')
    mode, error = _reasoning(body)
    if error:
        return RecordError("invalid_value", error)
    record: dict[str, Any] = {name: body[name] for name in SAME_NAME if name in body}
    if tool_choice == "none":
        record.pop("tools", None)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        record["max_tokens"] = limit
    if mode is not None:
        record["reasoning"] = mode
    # The id, and a passthrough column, so the output line gives back the line's own custom_id (a
    # duplicate's row id is `custom_id@file:line`).
    record["id"] = record["custom_id"] = custom_id
    return record


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


def _choice(index: int, row: dict) -> dict:
    message = {"role": "assistant", "content": row["content"], "reasoning_content": row["reasoning_content"]}
    if row["tool_calls"]:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}}
                                 for c in row["tool_calls"]]
    logprobs = row.get("logprobs")
    return {"index": index, "message": message, "finish_reason": row["finish_reason"],
            "logprobs": None if logprobs is None else {"content": logprobs["content"],
                                                       "reasoning_content": logprobs["reasoning_content"]},
            # batchgen's own: which sample and budget this is, and why an answer does not hold (a structured
            # answer cut short, a tool call unread).
            "sample_index": row["sample_index"], "max_thinking_tokens": row["max_thinking_tokens"],
            "error": row["error"]}


def _error(row: dict) -> dict:
    code, _, message = (row["error"] or "error: no answer").partition(": ")
    return {"code": code, "message": message}


def output_line(rows: list[dict], custom_id: str | None, job: str, created: int) -> dict:
    """The Batch API output line of one record's rows (its samples, and a sweep's budgets, in row order)
    as `choices`, numbered in that order. `custom_id` is the input line's own; the line's `id` is derived
    from batchgen's row id, unique in the job. A record none of whose rows has an answer is an error line;
    rows without an answer beside answered ones are left out of `choices` and listed in the body's
    `errors` (batchgen's, with their `sample_index` and `max_thinking_tokens`)."""
    rid = rows[0]["id"]
    answered = [r for r in rows if r["content"] is not None]
    line = {"id": f"batch_req_{_digest(job, rid)}", "custom_id": custom_id, "response": None, "error": None}
    if not answered:
        line["error"] = _error(rows[0])
        return line
    completion_tokens = sum(r["completion_tokens"] for r in answered)
    body = {
        "id": f"chatcmpl-{_digest(job, rid, 'completion')}", "object": "chat.completion", "created": created,
        "model": rows[0]["model"], "choices": [_choice(i, r) for i, r in enumerate(answered)],
        "usage": {"prompt_tokens": rows[0]["prompt_tokens"], "completion_tokens": completion_tokens,
                  "total_tokens": rows[0]["prompt_tokens"] + completion_tokens,
                  "completion_tokens_details": {"reasoning_tokens": sum(r["reasoning_tokens"] for r in answered)}},
    }
    if len(answered) < len(rows):
        body["errors"] = [{"sample_index": r["sample_index"], "max_thinking_tokens": r["max_thinking_tokens"],
                           **_error(r)} for r in rows if r["content"] is None]
    line["response"] = {"status_code": 200, "request_id": f"req_{_digest(job, rid, 'request')}", "body": body}
    return line


def output_lines(rows, job: str, created: int):
    """Output lines from rows in data-file order, where a record's rows are next to each other (a replica
    returns them together). A row's `custom_id` column (an OpenAI input's) is the line's, else its id (as
    for a line that could not run: its id is its custom_id)."""
    group: list[dict] = []

    def line() -> dict:
        custom_id = group[0].get("custom_id")
        return output_line(group, group[0]["id"] if custom_id is None else custom_id, job, created)

    for row in rows:
        if group and row["id"] != group[0]["id"]:
            yield line()
            group = []
        group.append(row)
    if group:
        yield line()


def dumps(line: dict) -> str:
    return json.dumps(line, ensure_ascii=False)
