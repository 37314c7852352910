"""OpenAI Batch API lines in and out (pure logic; the job that reads and writes them runs in
tests/cluster/test_pipeline.py). Output lines are read back with the `openai` package's own types."""

from __future__ import annotations

import pytest
from openai.types import BatchError
from openai.types.chat import ChatCompletion

from batchgen.record.contract import RecordError, normalize
from batchgen.record.openai_batch import output_line, output_lines, record_of
from batchgen.record.rows import answer_row, error_row


def line(**body):
    return {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **body}}


def test_a_chat_line_becomes_a_record_with_the_same_field_names():
    record = record_of(line(max_completion_tokens=64, temperature=0.2, n=2, logprobs=True, top_logprobs=3,
                            response_format={"type": "json_object"}, seed=5, stop=["END"]))
    assert record == {"id": "q1", "custom_id": "q1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64,
                      "temperature": 0.2, "n": 2, "logprobs": True, "top_logprobs": 3, "seed": 5, "stop": ["END"],
                      "response_format": {"type": "json_object"}}
    request = normalize(record)
    assert request.n == 2 and request.logprobs == 3 and request.structured == {"field": "response_format", "json_object": True}
    assert record_of(line(max_tokens=9))["max_tokens"] == 9


@pytest.mark.parametrize("body, mode", [
    ({"reasoning_effort": "none"}, "off"), ({"reasoning_effort": "high"}, "on"),
    ({"chat_template_kwargs": {"enable_thinking": False}}, "off"), ({}, None),
])
def test_reasoning_effort_and_enable_thinking_set_the_mode(body, mode):
    assert record_of(line(**body)).get("reasoning") == mode


def test_tool_choice_none_offers_no_tools():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert record_of(line(tools=tools))["tools"] == tools
    assert "tools" not in record_of(line(tools=tools, tool_choice="none"))


@pytest.mark.parametrize("raw, message", [
    (line(frequency_penalty=0.5, logit_bias={}), "body: batchgen cannot honour frequency_penalty, logit_bias"),
    ({**line(), "url": "/v1/embeddings"}, "only POST /v1/chat/completions runs"),
    ({**line(), "extra": 1}, "unknown fields extra"),
    (line(stream=True), "body.stream"),
    (line(tool_choice={"type": "function", "function": {"name": "f"}}), "body.tool_choice"),
    (line(reasoning_effort="max"), "body.reasoning_effort"),
    ({"custom_id": "x", "body": "text"}, "body must be an object"),
    ({"body": line()["body"]}, "custom_id: every line needs one, a non-empty string (got None)"),
    ({**line(), "custom_id": 7}, "custom_id: every line needs one, a non-empty string (got 7)"),
])
def test_what_batchgen_cannot_honour_is_an_error_naming_it(raw, message):
    error = record_of(raw)
    assert isinstance(error, RecordError) and error.code == "invalid_value" and message in error.message


def rows_of(rid="q1", samples=2):
    return [answer_row(record_id=rid, model="m", mode="on", reasoning_text="think", content=f"answer {k}",
                       finish_reason="stop", reasoning_end="model", prompt_tokens=7, reasoning_tokens=3,
                       completion_tokens=5, sample_index=k) for k in range(samples)]


def test_an_answered_line_reads_as_an_openai_chat_completion():
    out = output_line(rows_of(), "q1", "job", 1700000000)
    assert out["custom_id"] == "q1" and out["error"] is None and out["response"]["status_code"] == 200
    completion = ChatCompletion.model_validate(out["response"]["body"])
    assert [c.message.content for c in completion.choices] == ["answer 0", "answer 1"]
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[0].message.model_extra["reasoning_content"] == "think"
    assert completion.usage.completion_tokens == 10 and completion.usage.prompt_tokens == 7
    assert completion.usage.completion_tokens_details.reasoning_tokens == 6


def test_tool_calls_and_logprobs_keep_openai_shapes():
    tokens = [{"token": "a", "logprob": -0.1, "top_logprobs": [{"token": "a", "logprob": -0.1}]}]
    row = answer_row(record_id="t", model="m", mode="off", reasoning_text=None,
                     content='<TOOLCALL>[{"name": "f", "arguments": {"x": 1}}]</TOOLCALL>', finish_reason="stop",
                     reasoning_end=None, prompt_tokens=1, reasoning_tokens=0, completion_tokens=4,
                     logprobs={"reasoning_content": None, "content": tokens})
    choice = ChatCompletion.model_validate(output_line([row], "t", "job", 0)["response"]["body"]).choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls[0].function.name == "f"
    assert choice.message.tool_calls[0].function.arguments == '{"x": 1}'
    assert choice.logprobs.content[0].token == "a" and choice.logprobs.content[0].top_logprobs[0].logprob == -0.1


def test_a_sweep_and_a_failed_sample_keep_every_answer():
    rows = [answer_row(record_id="s", model="m", mode="on", reasoning_text="t", content=f"a{b}", finish_reason="stop",
                       reasoning_end="model", prompt_tokens=3, reasoning_tokens=2, completion_tokens=4,
                       sample_index=0, max_thinking_tokens=b) for b in (8, None)]
    rows.append(error_row("s", "m", RecordError("engine_error", "RuntimeError: boom"), "on", 3, 1, 8))
    body = output_line(rows, "s", "job", 0)["response"]["body"]
    completion = ChatCompletion.model_validate(body)
    assert [(c.index, c.message.content, c.model_extra["max_thinking_tokens"]) for c in completion.choices] == [
        (0, "a8", 8), (1, "aNone", None)]
    assert body["errors"] == [{"sample_index": 1, "max_thinking_tokens": 8, "code": "engine_error",
                               "message": "RuntimeError: boom"}]
    assert completion.usage.completion_tokens == 8


def test_a_record_without_an_answer_is_an_error_line():
    out = output_line([error_row("q2", "m", RecordError("invalid_value", "body: batchgen cannot honour logit_bias"))],
                      "q2", "job", 0)
    assert out["response"] is None
    error = BatchError.model_validate(out["error"])
    assert error.code == "invalid_value" and error.message == "body: batchgen cannot honour logit_bias"


def test_lines_group_a_records_rows_and_ids_are_stable():
    rows = [*rows_of("a", 2), *rows_of("b", 1)]
    rows[2]["custom_id"] = "B"  # an OpenAI input's own custom_id column wins over the row id
    lines = list(output_lines(rows, "job", 0))
    assert [(x["custom_id"], len(x["response"]["body"]["choices"])) for x in lines] == [("a", 2), ("B", 1)]
    assert lines[0]["id"] == list(output_lines(rows, "job", 5))[0]["id"] != lines[1]["id"]
