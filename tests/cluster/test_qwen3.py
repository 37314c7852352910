"""The `qwen3` profile end to end on a real engine, and the prefix cache's counts in a job's stats: the
plain-attention toy (`toy:qwen3`, Qwen3's template, `<think>` tags, Hermes tool calls), for which vLLM's
CPU build caches prefixes, through `batchgen run` and `batchgen inspect` as subprocesses."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from batchgen.toy import corpus
from tests.conftest import TEST_ENGINE, TEST_GRACE

pytestmark = pytest.mark.engine
ROOT = Path(__file__).resolve().parents[2]


def documents(count: int) -> list[str]:
    rng = random.Random(0)
    return [f"Document {d}. " + " ".join(f"The {rng.choice(corpus.WORDS)} in {rng.choice(corpus.CITIES)} was seen."
                                           for _ in range(80)) for d in range(count)]


def records() -> list[dict]:
    """24 questions over 3 shared documents (~1,000 tokens each), in random order, and one record of each
    thing the qwen3 profile does: reasoning on and off, a thinking budget, tool calls, samples."""
    rng = random.Random(1)
    docs = documents(3)
    shared = [{"id": f"q{i}", "doc": d, "reasoning": "off", "max_tokens": 8,
               "messages": [{"role": "system", "content": docs[d]}, {"role": "user", "content": corpus.echo_prompt(corpus.WORDS[i])}]}
              for i, d in enumerate(rng.choice(range(3)) for _ in range(24))]
    return shared + [
        {"id": "on", "prompt": corpus.echo_prompt("apple")},
        {"id": "off", "prompt": corpus.echo_prompt("river"), "reasoning": "off"},
        {"id": "budget", "prompt": corpus.steps_prompt("tiger"), "max_thinking_tokens": 30},
        {"id": "flag-off", "prompt": corpus.echo_prompt("stone") + " /no_think"},
        {"id": "tools", "prompt": corpus.weather_prompt("Oslo"), "tools": corpus.TOOLS},
        {"id": "samples", "prompt": corpus.echo_prompt("cloud"), "n": 2, "temperature": 0.6},
    ]


def test_the_qwen3_profile_runs_end_to_end_and_the_stats_count_the_prefix_cache(tmp_path):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records()))
    out = tmp_path / "out"
    spec = {"name": "qwen3-toy", "model": {"path": "toy:qwen3"}, "engine": TEST_ENGINE,
            "input": {"uri": str(tmp_path / "in.jsonl")}, "output": {"uri": str(out)},
            "defaults": {"max_tokens": 300, "temperature": 0.0}, "budget": {"grace_tokens": TEST_GRACE},
            "scaling": {"replicas": 1, "gpus_per_replica": 0, "batch_size": 8}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ran = subprocess.run([sys.executable, "-m", "batchgen.cli.app", "run", str(tmp_path / "job.yaml")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = {}
    for path in out.glob("*.parquet"):
        for row in pq.read_table(path).to_pylist():
            rows.setdefault(row["id"], []).append(row)
    assert len(rows) == 30 and len(rows["samples"]) == 2 and all(r["error"] is None for v in rows.values() for r in v)

    [on], [off], [budget], [flag_off], [tools] = (rows[k] for k in ("on", "off", "budget", "flag-off", "tools"))
    # batchgen wrote Qwen3's <think>\n opener: the reasoning is the model's text after it, not the tag
    assert on["reasoning_end"] == "model" and on["reasoning_content"].startswith("The user wants the word")
    assert "<think>" not in on["reasoning_content"] and on["content"]
    for row in (off, flag_off):  # reasoning off by the field, and by the flag in the message
        assert row["reasoning_content"] is None and row["content"] and row["reasoning_end"] is None
    assert budget["reasoning_end"] in ("budget_line_break", "budget_cut") and budget["max_thinking_tokens"] == 30
    assert budget["reasoning_content"].startswith("Step 1:") and budget["content"]
    # Hermes tool calls, read by vLLM's hermes parser
    assert tools["finish_reason"] == "tool_calls" and tools["tool_calls"][0]["name"] in ("get_weather", "get_time")
    assert json.loads(tools["tool_calls"][0]["arguments"])["city"] in corpus.CITIES
    assert {r["sample_index"] for r in rows["samples"]} == {0, 1}

    # vLLM's own count of cached prompt tokens, per replica and in all
    cache = json.loads((out / "_stats.json").read_text())["prefix_cache"]
    prompt_tokens = sum(r["prompt_tokens"] for v in rows.values() for r in v)
    assert cache["prompt_tokens"] == prompt_tokens  # one engine request per row here (no sweep)
    assert cache["prefill_tokens_computed"] == cache["prompt_tokens"] - cache["cached_tokens"]
    # the 24 questions share 3 documents of ~1,000 tokens: scheduled, most of their prompt tokens are cached
    shared = sum(r["prompt_tokens"] for k, v in rows.items() if k.startswith("q") for r in v)
    assert cache["cached_tokens"] >= 0.6 * shared and 0 < cache["hit_rate"] < 1
    [replica] = cache["replicas"]
    assert replica["cached_tokens"] == cache["cached_tokens"]

    inspected = subprocess.run([sys.executable, "-m", "batchgen.cli.app", "inspect", str(out)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
    assert inspected.returncode == 0, inspected.stderr
    assert (f"cache      {cache['hit_rate']:.1%} of {cache['prompt_tokens']:,} prompt tokens found in the prefix "
            f"cache, {cache['prefill_tokens_computed']:,} computed") in inspected.stdout
