"""What a thinking budget costs: one engine, the same reasoning records with per-record budgets, three ways.

    python -m benchmarks.budget_cost --records 512

(a) batchgen's budget: its logits processor (batchgen.budget_processor) closes the reasoning inside the
    request, in one pass. Strict mode, the rule the card's client applies, so (a) and (b) cut at the same token.
(b) the model card's client: a first request capped at the budget, then a second request whose prompt is the
    first prompt, the reasoning and the closing text `.\\n</think>\\n\\n`; that prompt is prefilled again. Each
    record's second request starts as soon as its first ends, as with many concurrent clients.
(c) no budget and the same output tokens per record as (a) (ignore_eos), the cost of the tokens themselves.

Prints one JSON line: output tokens, seconds, tokens/s and prefill tokens recomputed per case.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from batchgen.budget_processor import QUALNAME
from batchgen.spec import BudgetSpec
from benchmarks.workload import budget_records, engine_args, engine_inputs

FollowUp = Callable[[str, list[int]], tuple[list[int], dict] | None]


def drive(engine, requests: dict[str, tuple[list[int], dict]], follow_up: FollowUp | None = None) -> dict:
    """Runs requests to completion on a vLLM LLMEngine; `follow_up(id, output ids)` may return a second
    request for a record, submitted the moment its first one finishes. Output tokens and recomputed prefill."""
    from vllm import SamplingParams

    for rid, (prompt_ids, params) in requests.items():
        engine.add_request(rid, {"prompt_token_ids": prompt_ids}, SamplingParams(**params))
    tokens = recomputed = 0
    started = time.perf_counter()
    while engine.has_unfinished_requests():
        for output in engine.step():
            if not output.finished:
                continue
            ids = list(output.outputs[0].token_ids)
            tokens += len(ids)
            second = follow_up(output.request_id, ids) if follow_up and output.request_id in requests else None
            if second:
                prompt_ids, params = second
                recomputed += len(prompt_ids)
                engine.add_request(f"{output.request_id}/2", {"prompt_token_ids": prompt_ids}, SamplingParams(**params))
    seconds = time.perf_counter() - started
    return {"output_tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
            "prefill_tokens_recomputed": recomputed}


def main() -> None:
    import vllm

    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=512)
    args = parser.parse_args()
    budget = BudgetSpec(mode="strict")
    records = budget_records(args.records)
    inputs = {e.record_id: e for e in engine_inputs(records, budget)}
    llm = vllm.LLM(**engine_args(), logits_processors=[QUALNAME])
    engine = llm.llm_engine
    lengths: dict[str, int] = {}

    def keep_length(rid: str, ids: list[int]) -> None:
        lengths[rid] = len(ids)

    def second_request(rid: str, ids: list[int]) -> tuple[list[int], dict]:
        # The card's client: close an unfinished reasoning with the closing text and continue after it.
        e = inputs[rid]
        reasoning = ids if e.budget.end_token_id in ids else ids + list(e.budget.close_ids)
        return e.prompt_ids + reasoning, {**e.sampling, "max_tokens": e.sampling["max_tokens"] - len(reasoning)}

    one_pass = {rid: (e.prompt_ids, {**e.sampling, "extra_args": e.budget.to_extra_args()}) for rid, e in inputs.items()}
    results = {"batchgen one pass": drive(engine, one_pass, keep_length)}
    first = {rid: (e.prompt_ids, {**e.sampling, "max_tokens": e.budget.budget}) for rid, e in inputs.items()}
    results["card's two-request client"] = drive(engine, first, second_request)
    same_tokens = {rid: (e.prompt_ids, {**e.sampling, "max_tokens": lengths[rid], "ignore_eos": True})
                   for rid, e in inputs.items()}
    results["no budget, same tokens"] = drive(engine, same_tokens)
    engine.engine_core.shutdown()
    print(json.dumps({"records": len(records), "cases": results}), flush=True)


if __name__ == "__main__":
    main()
