"""An engine's output to the output row, as pure code (no vLLM import): `Completion` (what one request
generated), `RowShaper` (the reasoning split on the end-of-thinking id, the answer's decoding, its tool calls
or structured check, logprobs split like the text, and the error row of a sample that failed) and `refused`
(the `invalid_value` error of values vLLM refused).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from batchgen.engine.tool_parsers import ToolParser
from batchgen.record.answers import reasoning_end, split_reasoning, token_logprobs
from batchgen.record.budget import BudgetPlan, budget_close
from batchgen.record.contract import RecordError
from batchgen.record.prompting import EngineInput
from batchgen.record.rows import answer_row, error_row


@dataclass(frozen=True)
class Completion:
    """What one request generated: its token ids, why it ended (vLLM's `finish_reason`: "stop", "length"
    or "abort"), when a stop string ended its answer the answer's text before that string (None: the
    answer is its decoded ids), and vLLM's logprobs per token when asked (`CompletionOutput.logprobs`: per
    position, {token id: Logprob(logprob, rank)})."""

    token_ids: list[int]
    finish_reason: str
    content: str | None = None
    logprobs: list[dict] | None = None


# One sample's outcome at each of its budgets: (budget, its plan, its completion or the failure that ended it).
Outcome = tuple[int | None, BudgetPlan | None, Completion | BaseException]


def refused(exc: Exception, structured: dict | None = None) -> RecordError:
    """The `invalid_value` error of a record whose values vLLM or batchgen refused. vLLM's request checks
    raise `VLLMValidationError` (`vllm/exceptions.py`: not a ValueError), which may carry the `parameter`
    and `value` it refused; they lead the message, as in batchgen's own record errors. A grammar vLLM's
    structured-output backend cannot compile ("Grammar error: ...", no parameter) is named by the record's
    field (`structured["field"]`). Reads the exception with getattr only: no vLLM import."""
    parameter, value = getattr(exc, "parameter", None), getattr(exc, "value", None)
    message = str(exc.args[0]) if exc.args else str(exc)
    if parameter is None and structured and "grammar" in message.lower():
        parameter = structured["field"]
    if parameter is None:
        return RecordError("invalid_value", message)
    return RecordError("invalid_value", f"{parameter}: {message}" + (f" (got {value!r:.80})" if value is not None else ""))


class RowShaper:
    """Shapes the rows of one model's completions. `tokenizer`: its Hugging Face tokenizer; `tool_parser`:
    its profile's (`tool_parsers.tool_parser_for`); `end_token_id`: the end-of-thinking token id (None: the
    model has no reasoning); `line_breaks`: the ids of tokens holding a line break
    (`budget.line_break_token_ids`), to tell how a budget closed the reasoning; `model_name`: the rows'
    `model` column. Never raises for one answer: a failure is that sample's `engine_error` row."""

    def __init__(self, tokenizer, tool_parser: ToolParser, end_token_id: int | None, line_breaks: frozenset[int],
                 model_name: str):
        self.tokenizer = tokenizer
        self.tool_parser = tool_parser
        self.end_token_id = end_token_id
        self.line_breaks = line_breaks
        self.model_name = model_name
        # One token's text, for logprobs: each position names its token and up to 20 alternatives, mostly
        # the same few ids, so they are decoded once (one thread at a time: the replica's engine loop).
        self._token_text = functools.lru_cache(maxsize=1 << 16)(lambda token_id: tokenizer.decode([token_id]))

    def decode(self, token_ids: Sequence[int]) -> str:
        """Token ids to text, special tokens skipped (the split's decoding, and `AnswerStops`')."""
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def rows(self, prepared: EngineInput, samples: Sequence[Iterable[Outcome]]) -> list[dict]:
        """A record's rows: for each sample in order (its index `k`), a row per budget outcome, in order."""
        return [self.row(prepared, result, k, plan, budget)
                for k, sample in enumerate(samples) for budget, plan, result in sample]

    def row(self, prepared: EngineInput, result: Completion | BaseException, sample_index: int,
            plan: BudgetPlan | None, budget: int | None) -> dict:
        """One sample's row at one budget (`plan`: the budget plan its request ran with, None for none or
        for a sweep's fork; `budget`: its `max_thinking_tokens` column). A failure, or an answer that cannot
        be shaped (a parser's or decoder's exception), is its `engine_error` row: "engine_error: <exception
        type>: <message>", with the record's mode and prompt length, and the budget of a sweep's row or the
        record's own."""
        if not isinstance(result, BaseException):
            try:
                return self.shape(prepared, result, sample_index, plan, budget)
            except Exception as exc:  # noqa: BLE001 - a parser's or decoder's failure on one answer
                result = exc
        error = RecordError("engine_error", f"{type(result).__name__}: {result}")
        return error_row(prepared.record_id, self.model_name, error, prepared.mode, len(prepared.prompt_ids),
                         sample_index, budget if prepared.sweep else prepared.max_thinking_tokens)

    def refused_row(self, prepared: EngineInput, exc: Exception) -> dict:
        """The one error row of a record whose values vLLM refused (`refused`; `sample_index` null)."""
        return error_row(prepared.record_id, self.model_name, refused(exc, prepared.structured), prepared.mode,
                         len(prepared.prompt_ids))

    def shape(self, prepared: EngineInput, completion: Completion, sample_index: int, plan: BudgetPlan | None,
              budget: int | None) -> dict:
        """The answer row of one completion (`rows.answer_row`): the ids up to and including the first
        end-of-thinking id are the reasoning (`answers.split_reasoning`; all of them when it never came, none
        with reasoning off), decoded without the end token; the rest is the answer, or the stop string's
        `completion.content`. Token counts in tokens. Raises what the tokenizer or tool parser raises."""
        ids = completion.token_ids
        reasoning_ids, answer_ids = split_reasoning(ids, prepared.mode, self.end_token_id)
        reasoning_text = None
        if reasoning_ids is not None:
            body = reasoning_ids[:-1] if reasoning_ids and reasoning_ids[-1] == self.end_token_id else reasoning_ids
            reasoning_text = self.decode(body)
        return answer_row(
            record_id=prepared.record_id,
            model=self.model_name,
            mode=prepared.mode,
            reasoning_text=reasoning_text,
            content=self.decode_answer(answer_ids, prepared.tools) if completion.content is None else completion.content,
            sample_index=sample_index,
            max_thinking_tokens=budget,
            logprobs=self.logprobs(completion, prepared.logprobs, reasoning_ids),
            structured=prepared.structured,
            tool_parser=self.tool_parser.parse if prepared.tools else None,
            finish_reason=completion.finish_reason,
            reasoning_end=reasoning_end(
                prepared.mode, ids, self.end_token_id,
                budget_close(plan, self.line_breaks, ids) if plan else None,
                completion.finish_reason),
            prompt_tokens=len(prepared.prompt_ids),
            reasoning_tokens=len(reasoning_ids or []),
            completion_tokens=len(ids),
        )

    def decode_answer(self, answer_ids: list[int], tools: bool) -> str:
        """The answer's text. For a record that offered `tools`, a tool parser that reads special-token
        markers (vLLM's `deepseek_v3`, `ToolParser.keeps_special_tokens`) gets them kept, without a final
        end-of-text token; otherwise special tokens are skipped (`decode`)."""
        if not (tools and self.tool_parser.keeps_special_tokens):
            return self.decode(answer_ids)
        if answer_ids and answer_ids[-1] == self.tokenizer.eos_token_id:
            answer_ids = answer_ids[:-1]
        return self.tokenizer.decode(answer_ids, skip_special_tokens=False)

    def logprobs(self, completion: Completion, top: int | None, reasoning_ids: list[int] | None) -> dict | None:
        """The row's `logprobs`: OpenAI's per-token shape (`answers.token_logprobs`, `top` alternatives per
        token), split like the text: `reasoning_content` (its tokens, the end of thinking included; None
        with reasoning off) and `content`. None when the request asked for none."""
        if completion.logprobs is None:
            return None
        shaped = token_logprobs(completion.token_ids, completion.logprobs, top, self._token_text)
        cut = len(reasoning_ids or [])
        return {"reasoning_content": None if reasoning_ids is None else shaped[:cut], "content": shaped[cut:]}
