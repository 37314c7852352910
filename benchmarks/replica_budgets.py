"""Replica throughput with thinking budgets on and off, on the same prompts, in one run (ratios, not
absolute numbers: these machines are shared). The "never fires" case isolates the cost of the budget
logits processor itself: it follows every token but forces none.

    .venv/bin/python benchmarks/replica_budgets.py [--records 64]
"""

from __future__ import annotations

import argparse
import time

from batchgen.replica import Replica
from batchgen.spec import BudgetSpec, ModelSpec
from batchgen.toy import corpus

ENGINE = {"max_model_len": 2048, "dtype": "float32", "enforce_eager": True, "kv_cache_memory_bytes": 512 << 20}


def measure(replica: Replica, records: list[dict]) -> tuple[float, int, int]:
    started = time.perf_counter()
    rows = replica.generate(records)
    wall = time.perf_counter() - started
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows if r["error"]][:3]
    return wall, sum(r["completion_tokens"] for r in rows), sum(r["thinking_budget_hit"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=64)
    args = parser.parse_args()
    started = time.perf_counter()
    replica = Replica(ModelSpec(path="toy:nemotron-h"), ENGINE, BudgetSpec(grace_tokens=20))
    print(f"engine start-up: {time.perf_counter() - started:.1f} s")
    words = [corpus.WORDS[i % len(corpus.WORDS)] for i in range(args.records)]
    base = [{"id": f"r{i}", "prompt": corpus.steps_prompt(w), "temperature": 0.0} for i, w in enumerate(words)]
    cases = {
        "no budget": {},
        "budget never fires (10000)": {"max_thinking_tokens": 10000},
        "budget 16, newline": {"max_thinking_tokens": 16},
    }
    measure(replica, base[:8])  # warm-up
    results = {}
    for name, extra in cases.items():
        results[name] = measure(replica, [{**r, **extra} for r in base])
    replica.close()
    reference = results["no budget"][1] / results["no budget"][0]
    print(f"{'case':30} {'wall s':>8} {'tokens':>8} {'tokens/s':>10} {'vs no budget':>13} {'budget hit':>10}")
    for name, (wall, tokens, hits) in results.items():
        rate = tokens / wall
        print(f"{name:30} {wall:8.2f} {tokens:8d} {rate:10.1f} {rate / reference:13.2f} {hits:10d}")


if __name__ == "__main__":
    main()
