"""The benchmark harness (`make bench`) runs end to end at its smallest and writes its results. No timing is
asserted: speed is measured by `make bench` as ratios in one run, never by tests on a shared machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# About 18 minutes (every benchmark starts its engines): `make bench` runs it, before the benchmarks.
pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_the_harness_runs_every_benchmark_and_writes_its_results(tmp_path):
    readme = (ROOT / "README.md").read_text()
    run = subprocess.run([sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert [p["workload"] for p in results["peers"]] == ["peer", "tail", "traces"]
    for workload in results["peers"]:
        peers = workload["runs"]
        assert [p["system"] for p in peers] == ["vllm", "ray.data.llm", "batchgen"]
        # The same prompt ids, engine and greedy sampling: the three systems generate the very same tokens.
        assert len({p["output_tokens"] for p in peers}) == 1 and peers[0]["output_tokens"] > 0
        assert all(p["records"] == 24 and p["generation_s"] > 0 and p["cpu_s_engine"] > 0 for p in peers)
    # The untrained model runs every record to its max_tokens: output lengths are the workload's.
    from benchmarks.workload import long_tailed_records

    assert results["peers"][1]["runs"][0]["output_tokens"] == sum(r["max_tokens"] for r in long_tailed_records(24, "tail"))
    assert set(results["ray_beside"]["tokens_per_s"]) == {"vllm", "vllm-beside-ray"} and results["ray_beside"]["ratio"] > 0
    sets = results["budget"]["sets"]
    assert sets["short"]["prompt_tokens"] < 100 * 16 < 512 * 16 <= sets["long"]["prompt_tokens"] <= 2048 * 16
    for budget_set in sets.values():
        cases = budget_set["cases"]
        one_pass, two_requests = cases["batchgen one pass"], cases["card's two-request client"]
        assert one_pass["prefill_tokens_recomputed"] == 0 < two_requests["prefill_tokens_recomputed"]
        assert cases["no budget, same tokens"]["output_tokens"] == one_pass["output_tokens"]
        assert budget_set["ratios"]["two requests/one pass (time)"] > 0
    sweep = results["sweep"]
    assert sweep["records"] == 8 and set(sweep["sets"]) == {"quartiles", "small"}
    for budget_set in sweep["sets"].values():
        # One reasoning per record against four: fewer tokens decoded, more prefilled (the forks), same rows.
        cases = budget_set["cases"]
        assert budget_set["identical_rows"] and len(budget_set["budgets"]) == 4
        assert cases["sweep"]["decode_tokens"] < cases["separate"]["decode_tokens"]
        assert cases["sweep"]["prefill_tokens"] > cases["separate"]["prefill_tokens"] / 4
    assert [(m["records"], m["input_files"]) for m in results["memory"]] == [(500, 20), (2000, 20)]
    assert all(m["driver_peak_mib"] > 0 and m["worker_peak_mib"] > 0 for m in results["memory"])
    assert [(s["replicas"], s["records"]) for s in results["scaling"]] == [(1, 1024), (2, 2048)]
    assert all(0 < s["occupancy"] <= 1 for s in results["scaling"])
    pipeline = results["pipeline"]
    for name in ("plain", "templated"):
        assert [run["records"] for run in pipeline[name]["runs"]] == [500, 1500]
        assert pipeline[name]["cpu_ms_per_record_all_in"] > 0 and all(r["standin_cpu_s"] > 0 for r in pipeline[name]["runs"])
    assert pipeline["rendering"]["templated_decode_ms_per_record"] > pipeline["rendering"]["decode_ms_per_record"] > 0
    prefix = results["prefix"]
    assert [case["replicas"] for case in prefix] == [1, 2]
    for case in prefix:
        runs = case["median"]
        assert len({r["output_tokens"] for r in runs.values()}) == 1  # the same tokens, whatever the order
        for system in ("vllm", "batchgen-input", "batchgen"):  # vLLM's own count of cached prompt tokens
            assert 0 <= runs[system]["prefix_cache"]["hit_rate"] <= 1
        assert case["ratios"]["scheduled/input order"] > 0
    assert [o["workload"] for o in results["order"]] == ["tail", "traces"] and all(o["generation_ratio"] > 0 for o in results["order"])
    at_scale = results["cache_at_scale"]["runs"]
    assert at_scale["scheduled"]["prefill_tokens_computed"] < at_scale["input"]["prefill_tokens_computed"]
    assert (tmp_path / "cache_at_scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "table.md").read_text()
    assert "| ray.data.llm |" in table and "| card's two-request client |" in table and "| separate |" in table
    assert (ROOT / "README.md").read_text() == readme, "a smoke run must leave the README's figures alone"
