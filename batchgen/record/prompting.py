"""From a normalized record to what the engine runs: the prompt's token ids, sampling values, budget plan.

Pure logic over a tokenizer (no engine): the chat template renders the prompt exactly as the engine will
see it (`batchgen validate --show` prints the same text), sampling follows the model card's defaults per
mode unless the record sets its own values, and a thinking budget becomes a `BudgetPlan` in token ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from batchgen.record.budget import BudgetPlan, BudgetSpec
from batchgen.record.profiles import ConversationError, ReasoningProfile, UnsupportedMode
from batchgen.record.contract import RecordError, Request
from batchgen.record.sweep import sweep_order

# Model card: temperature 0.6 and top_p 0.95 with reasoning on, greedy with it off.
MODE_SAMPLING = {"on": {"temperature": 0.6, "top_p": 0.95}, "off": {"temperature": 0.0, "top_p": 1.0}}


@dataclass(frozen=True)
class EngineInput:
    record_id: str
    mode: str
    prompt: str
    prompt_ids: list[int]
    sampling: dict  # SamplingParams keyword arguments, `seed` the record's own if it set one
    budget: BudgetPlan | None
    n: int = 1
    structured: dict | None = None  # `records.Request.structured`
    # The request offered tools: only then is its answer read for tool calls, as vLLM's server does (it runs
    # a tool parser only for requests with `tools`) and OpenAI's API returns such text as plain content.
    tools: bool = False
    logprobs: int | None = None
    max_thinking_tokens: int | None = None  # the budget `budget` plans (its row's column)
    # A budget sweep: every budget of the record in its order, with its plan (None: no budget, or reasoning
    # off); `budget` is the largest, the one that runs (`batchgen.record.sweep`). Empty for one budget.
    sweep: tuple[tuple[int | None, BudgetPlan | None], ...] = ()

    def summary(self) -> str:
        """What will run, in a few words (`batchgen validate` prints it over each prompt)."""
        parts = [f"reasoning {self.mode}", f"{len(self.prompt_ids)} tokens"]
        if self.sweep:
            budgets = ", ".join("none" if b is None else str(b) for b, _ in self.sweep)
            parts.append(f"budget sweep [{budgets}]: one reasoning at "
                         f"{'no budget' if self.max_thinking_tokens is None else self.max_thinking_tokens}, "
                         f"a row per budget")
        elif self.budget:
            parts.append(f"thinking budget {self.budget.budget}")
        if self.n > 1:
            parts.append(f"{self.n} samples")
        if self.structured:
            kind = next(k for k in self.structured if k != "field")
            parts.append(f"answer constrained by {self.structured['field']} ({kind})")
        if self.logprobs is not None:
            parts.append(f"logprobs (top {self.logprobs})")
        return ", ".join(parts)


def sample_seed(job_seed: int, record_id: str, index: int, record_seed: int | None) -> int:
    """The seed of sample `index` of a record: its own `seed` plus the index (as vLLM seeds the children of
    a request with `n`, `vllm/v1/engine/parallel_sampling.py`), else one derived from the job's `seed`, the
    record's id and the index, so a rerun or a resumed job draws the same samples. 63 bits (torch's
    generator takes up to 64)."""
    if record_seed is not None:
        return record_seed + index
    digest = hashlib.sha256(f"{job_seed}\x00{record_id}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def single_token_id(tokenizer, text: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{text!r} must be one token in this tokenizer to split reasoning on, got ids {ids}")
    return ids[0]


def sampling_kwargs(request: Request, mode: str, max_tokens: int) -> dict:
    return {**MODE_SAMPLING[mode], **request.sampling, "max_tokens": max_tokens}


class PromptBuilder:
    """Holds what is fixed for a model (tokenizer, profile, budget texts, context size) and builds inputs."""

    def __init__(self, tokenizer, profile: ReasoningProfile, budget: BudgetSpec, max_model_len: int):
        self.tokenizer = tokenizer
        self.profile = profile
        self.budget = budget
        self.max_model_len = max_model_len
        self.end_token_id = single_token_id(tokenizer, profile.think_end) if profile.think_end else None
        self.close_ids = tuple(tokenizer.encode(budget.close_text, add_special_tokens=False))
        self.close_at_line_break_ids = tuple(tokenizer.encode(budget.close_text_at_line_break, add_special_tokens=False))
        for name, ids in (("close_text", self.close_ids), ("close_text_at_line_break", self.close_at_line_break_ids)):
            if self.end_token_id is not None and self.end_token_id not in ids:
                raise ValueError(f"budget.{name} must contain {profile.think_end!r}")

    def render(self, request: Request, mode: str) -> str:
        """The prompt text of `request` in `mode`: its chat template's, with the profile's reasoning opener
        (`ReasoningProfile.opener`) where reasoning is on and the template leaves it to the model."""
        messages, template_args = self.profile.template_inputs(request.messages, mode)
        prompt = self.tokenizer.apply_chat_template(
            messages, tools=request.tools, add_generation_prompt=True, tokenize=False, **template_args
        )
        opener = self.profile.opener
        # A template that opens the reasoning itself (Qwen3's thinking-only models do) is left alone.
        opened = opener and prompt.rstrip().endswith(opener.strip())
        return prompt + opener if mode == "on" and opener and not opened else prompt

    def build(self, request: Request) -> EngineInput | RecordError:
        """The record as the engine runs it, or why it cannot run (`unsupported_reasoning`,
        `invalid_conversation`, `template_error`, `prompt_too_long`).

        The mode is computed from the messages in the record's order before the profile reshapes them for
        its template (`ReasoningProfile.template_inputs` may move system turns), so the last flag in the
        conversation wins. A conversation ending with an assistant turn is a prefill: the prompt ends with
        that text, the model continues it, and the budget plan starts from where it stops (below)."""
        try:
            mode = self.profile.effective_mode(request.reasoning, request.messages, request.default_reasoning)
        except UnsupportedMode as exc:
            return RecordError("unsupported_reasoning", str(exc))
        try:
            prompt = self.render(request, mode)
        except ConversationError as exc:
            return RecordError("invalid_conversation", str(exc))
        except Exception as exc:  # a chat template is user code: any failure is this record's, not the job's
            return RecordError("template_error", f"{type(exc).__name__}: {exc}")
        # The template writes the control tokens as text; they must not get a second BOS added.
        prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        room = self.max_model_len - len(prompt_ids)
        if room < 1:
            return RecordError(
                "prompt_too_long", f"prompt is {len(prompt_ids)} tokens, max_model_len is {self.max_model_len}"
            )
        max_tokens = min(request.max_tokens or room, room)
        budgets = request.max_thinking_tokens if isinstance(request.max_thinking_tokens, list) else [request.max_thinking_tokens]
        largest = sweep_order(budgets)[-1]
        return EngineInput(
            record_id=request.id,
            mode=mode,
            prompt=prompt,
            prompt_ids=prompt_ids,
            sampling=sampling_kwargs(request, mode, max_tokens),
            budget=self._plan(request, mode, prompt, largest),
            n=request.n,
            structured=request.structured,
            tools=bool(request.tools),
            logprobs=request.logprobs,
            max_thinking_tokens=largest,
            sweep=tuple((b, self._plan(request, mode, prompt, b)) for b in budgets) if len(budgets) > 1 else (),
        )

    def _plan(self, request: Request, mode: str, prompt: str, budget: int | None) -> BudgetPlan | None:
        """The thinking budget in token ids. It counts generated tokens only: a prefill's text is the
        record's, already in the prompt, as the card's client counts only what the model generates. Whether
        the reasoning starts on a line break is read from the prompt's end: after `<think>\\n` it does, so
        budget 0 closes at once with `close_text_at_line_break`; a prefill ends mid-line (the template strips
        it), so with budget 0 the newline rule lets the model finish its line (or cuts it with `close_text`
        after the grace), and strict mode closes it at once with `close_text`."""
        if mode != "on" or budget is None or self.end_token_id is None:
            return None
        close_ids, close_at_line_break_ids = self.close_ids, self.close_at_line_break_ids
        if request.structured:
            # The grammar takes over right after the end of thinking (vLLM's structured outputs wait for it):
            # forced text after it could break the grammar, so a structured record's close ends there.
            close_ids, close_at_line_break_ids = (ids[:ids.index(self.end_token_id) + 1]
                                                  for ids in (close_ids, close_at_line_break_ids))
        return BudgetPlan(
            budget=budget,
            grace=self.budget.grace_tokens,
            strict=self.budget.mode == "strict",
            end_token_id=self.end_token_id,
            close_ids=close_ids,
            close_at_line_break_ids=close_at_line_break_ids,
            starts_at_line_break=prompt.endswith("\n"),
        )
