"""The thinking budget inside vLLM: a batch-level logits processor that forces the closing text when
`BudgetTracker` says so, in the same request (no second prefill).

vLLM has no newline-aware budget: its native `thinking_token_budget` is a hard cut, needs an engine-wide
`reasoning_config`, and with a multi-token end text it misses a model's own plain `</think>` and injects the
text into the answer (../shared/NOTES.md). One processor gives both of batchgen's modes the same counting
and closing texts.

It implements vLLM's V1 `LogitsProcessor` interface (`vllm/v1/sample/logits_processor/interface.py`, the
same in 0.32 and 0.33) directly, not through `AdapterLogitsProcessor`, which makes one Python call and one
logits-row copy per request per step. Here the batch's bookkeeping follows `update_state(BatchUpdate)`
(vLLM's own `process_dict_updates`, as its built-in min-tokens processor does), a request whose budget is
still far away is skipped with one comparison (`BudgetTracker.wake_at`), and the rows to force are
written with two indexed tensor operations per step. The interface hands output ids over as Python lists,
so a per-request comparison remains; nothing else runs per row.

The V1 interface is what the V1 model runner loads; Model Runner V2 (the GPU default from vLLM 0.31)
rejects it at engine start, so the replica turns V2 off (`VLLM_USE_V2_MODEL_RUNNER=0`) and checks after
start which runner it got (`batchgen.engine.replica`).
"""

from __future__ import annotations

import torch
from vllm import SamplingParams
from vllm.tokenizers import cached_tokenizer_from_config
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from batchgen.record.budget import BudgetPlan, BudgetTracker, line_break_token_ids

QUALNAME = f"{__name__}:ThinkingBudgetLogitsProcessor"


class BudgetRows:
    """The batch rows that have a budget: per row index, its tracker and a live reference to its output
    ids (vLLM appends to that list in place: `BatchUpdate`'s contract). Kept apart from the processor so
    its bookkeeping is tested without an engine."""

    def __init__(self, line_break_ids: frozenset[int]):
        self._line_breaks = line_break_ids
        self._rows: dict[int, tuple[BudgetTracker, list[int]]] = {}

    def _track(self, params: SamplingParams, _prompt_ids, output_ids: list[int]):
        plan = BudgetPlan.from_extra_args(params.extra_args)
        return None if plan is None else (BudgetTracker(plan, self._line_breaks), output_ids)

    def update(self, batch_update: BatchUpdate | None) -> None:
        """Rows added, removed and moved, in vLLM's order (its own `process_dict_updates`)."""
        process_dict_updates(self._rows, batch_update, self._track)

    def force(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits` ([rows, vocab]) with every row that must take a closing token set to -inf but that
        token (0); a row whose budget is still `wake_at` away costs one comparison."""
        rows, tokens = [], []
        for row, (tracker, output_ids) in self._rows.items():
            if len(output_ids) >= tracker.wake_at and (token := tracker.next_forced_token(output_ids)) is not None:
                rows.append(row)
                tokens.append(token)
        if rows:
            index = torch.tensor(rows, dtype=torch.long, device=logits.device)
            logits[index] = float("-inf")
            logits[index, torch.tensor(tokens, dtype=torch.long, device=logits.device)] = 0.0
        return logits


class ThinkingBudgetLogitsProcessor(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        tokenizer = cached_tokenizer_from_config(vllm_config.model_config)
        self.rows = BudgetRows(line_break_token_ids(len(tokenizer), tokenizer.decode))

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        BudgetPlan.from_extra_args(sampling_params.extra_args)

    def is_argmax_invariant(self) -> bool:
        return False  # forcing a token changes the argmax: it must run under greedy decoding too

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        self.rows.update(batch_update)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        return self.rows.force(logits)
