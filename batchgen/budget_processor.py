"""The thinking budget inside vLLM: a logits processor that forces the closing text when `BudgetTracker`
says so, in the same request (no second prefill).

vLLM has no newline-aware budget: its native `thinking_token_budget` is a hard cut, needs an engine-wide
`reasoning_config`, and with a multi-token end text it misses a model's own plain `</think>` and injects the
text into the answer (../shared/NOTES.md). One processor gives both of batchgen's modes the same counting
and closing texts.

It uses vLLM's V1 logits-processor interface (`AdapterLogitsProcessor`): the V1 model runner is what runs
on the CPU, and the replica turns Model Runner V2 off (`VLLM_USE_V2_MODEL_RUNNER=0`), which rejects V1
processors, on GPUs.
"""

from __future__ import annotations

import torch
from vllm import SamplingParams
from vllm.tokenizers import cached_tokenizer_from_config
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from batchgen.budget import BudgetPlan, BudgetTracker, line_break_token_ids

QUALNAME = f"{__name__}:ThinkingBudgetLogitsProcessor"


class ThinkingBudgetLogitsProcessor(AdapterLogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        super().__init__(vllm_config, device, is_pin_memory)
        tokenizer = cached_tokenizer_from_config(vllm_config.model_config)
        self._line_breaks = line_break_token_ids(len(tokenizer), tokenizer.decode)

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        BudgetPlan.from_extra_args(sampling_params.extra_args)

    def is_argmax_invariant(self) -> bool:
        return False  # forcing a token changes the argmax: it must run under greedy decoding too

    def new_req_logits_processor(self, params: SamplingParams):
        plan = BudgetPlan.from_extra_args(params.extra_args)
        if plan is None:
            return None
        tracker = BudgetTracker(plan, self._line_breaks)

        def force_closing(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            token = tracker.next_forced_token(output_ids)
            if token is None:
                return logits
            forced = torch.full_like(logits, float("-inf"))
            forced[token] = 0.0
            return forced

        return force_closing
