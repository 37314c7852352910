"""`make gpu-check`: the proof a person with a GPU node runs that batchgen's GPU path works there: the vLLM
build and version, the demo job on the toy model with budgets on, at tensor parallelism 1 and (with two
GPUs or more) 2, each output checked row by row. It prints what it checked and exits 1 at the first
failure. It has not been run here: these machines have no GPU (README, "GPU nodes").

The budget rule checked on every row is the model card's as batchgen applies it (`batchgen.record.budget`): a
reasoning with a budget ends by `budget + grace` plus the closing text, and a row the budget cut has spent
at least its budget.
"""

from __future__ import annotations

import json
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "jobs" / "demo.yaml"
VLLM_RANGE = ("0.32", "0.34")  # the GPU extra's pin: the versions whose GPU paths were read in the source
DEMO_ERRORS = {"duplicate_id": 1, "invalid_type": 1, "missing_prompt": 1}


def budget_findings(rows: list[dict], budgets: dict[str, int], grace: int, close_tokens: int) -> list[str]:
    """What breaks the budget rule in a job's rows; `budgets`: row id -> max_thinking_tokens of the records
    that set one, `grace` in tokens, `close_tokens`: the longer closing text's length in tokens. [] when
    every row keeps it."""
    found = []
    for row in rows:
        budget = budgets.get(row["id"])
        if row["reasoning"] != "on" or row["error"]:
            continue
        if budget is None:
            if row["thinking_budget_hit"]:
                found.append(f"{row['id']}: no budget, yet thinking_budget_hit")
            continue
        if row["reasoning_tokens"] > budget + grace + close_tokens:
            found.append(f"{row['id']}: {row['reasoning_tokens']} reasoning tokens, past budget {budget} + grace "
                         f"{grace} + {close_tokens} closing")
        if row["thinking_budget_hit"] and row["reasoning_tokens"] < budget:
            found.append(f"{row['id']}: cut at {row['reasoning_tokens']} reasoning tokens, before its budget {budget}")
    return found


def check_demo_output(out: str, spec) -> list[str]:
    """The demo job's output, checked: one row per input record, the demo's three error rows, budgets
    that bit and kept the rule. Returns what is wrong ([] when nothing is)."""
    from batchgen.core.prefix import OutputPrefix
    from batchgen.record.rows import OUTPUT_FIELDS
    from batchgen.views.survey import survey

    found = survey(out)
    problems = []
    if found.state != "complete" or found.done != found.total:
        problems.append(f"the job is {found.state} with {found.done} of {found.total} rows")
    if found.errors_by_code != DEMO_ERRORS:
        problems.append(f"error rows {found.errors_by_code}, expected {DEMO_ERRORS}")
    if not found.budget_hits:
        problems.append("no budget bit: the budget processor did not run")
    records = [json.loads(line) for line in Path(spec.input.uri).read_text().splitlines() if line.strip()]
    budgets = {str(r["id"]): r["max_thinking_tokens"] for r in records
               if isinstance(r.get("max_thinking_tokens"), int) and "id" in r}
    close = max(len(spec.budget.close_text), len(spec.budget.close_text_at_line_break))  # tokens <= characters
    rows = OutputPrefix(out).read(list(OUTPUT_FIELDS)).to_pylist()
    return problems + budget_findings(rows, budgets, spec.budget.grace_tokens, close)


def main() -> int:
    import torch
    from packaging.version import Version

    from batchgen.cluster.pipeline import run
    from batchgen.spec.job import load_spec

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not gpus:
        print("gpu-check: no GPU visible to torch (torch.cuda.device_count() is 0): run it on a GPU node, in the "
              "virtualenv `make gpu-check` builds with vLLM's CUDA build", file=sys.stderr)
        return 1
    vllm = version("vllm")
    if not Version(VLLM_RANGE[0]) <= Version(vllm) < Version(VLLM_RANGE[1]):
        print(f"gpu-check: vLLM {vllm} is outside {VLLM_RANGE[0]} <= v < {VLLM_RANGE[1]}, the versions whose GPU "
              "paths batchgen was checked against: pip install 'batchgen[gpu]'", file=sys.stderr)
        return 1
    print(f"ok  {gpus} GPU(s): {torch.cuda.get_device_name(0)}; vLLM {vllm}; torch {torch.__version__} "
          f"(CUDA {torch.version.cuda})")
    for tensor_parallel in [1, 2] if gpus >= 2 else [1]:
        with tempfile.TemporaryDirectory() as tmp:
            spec = load_spec(DEMO, [f"output.uri={tmp}/out", f"scaling.gpus_per_replica={tensor_parallel}",
                                    f"input.uri={ROOT / 'jobs' / 'demo-prompts.jsonl'}"])
            stats = run(spec)
            problems = check_demo_output(f"{tmp}/out", spec)
        if problems:
            print(f"FAIL the demo job at tensor parallelism {tensor_parallel}:\n  " + "\n  ".join(problems),
                  file=sys.stderr)
            return 1
        print(f"ok  the demo job at tensor parallelism {tensor_parallel}: {stats.records} records, {stats.rows} rows, errors "
              f"{stats.errors_by_code}, budgets kept the rule on every row, {stats.generation_tokens_per_s:,.0f} "
              "tokens/s; the engine ran vLLM's V1 model runner (batchgen refuses V2 at start)")
    if gpus < 2:
        print("--  tensor parallelism 2 not checked: one GPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
