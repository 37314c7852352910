"""The benchmark workloads on the toy model, and the engine every system under test gets.

One list of batchgen records, and the very token ids and sampling values batchgen derives from them
(its own PromptBuilder, so plain vLLM and ray.data.llm run exactly the prompts batchgen runs: batchgen
does its templating, tokenizing and decoding on the clock, the others get pre-tokenized prompts).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from batchgen.engine.models import TOY_MODEL, engine_defaults, resolve_path
from batchgen.engine.preparer import RecordPreparer
from batchgen.record.budget import BudgetSpec
from batchgen.spec.job import ModelSpec
from batchgen.toy import corpus

MODEL = ModelSpec(path=TOY_MODEL)
# The engine all systems share (max_num_seqs explicit: vLLM's default differs by platform).
ENGINE = {"max_model_len": 2048, "dtype": "float32", "enforce_eager": True, "kv_cache_memory_bytes": 512 << 20,
          "max_num_seqs": 128}
BATCH_SIZE, BATCHES_IN_FLIGHT = 64, 4  # batchgen and ray.data.llm alike


# The shared-prefix workload's engine: the plain-attention toy, prefix caching on (vLLM's default for it,
# said anyway), and a KV cache of PREFIX_CACHE_TOKENS, which holds about 4 of its 16 prefixes (~1,500 tokens).
PREFIX_MODEL = "toy:qwen3"
PREFIX_CACHE_TOKENS = 6_400
QWEN3_TOY_KV_BYTES_PER_TOKEN = 3 * 2 * 64 * 4  # layers x (K, V) x (one KV head of 64) x float32
PREFIX_ENGINE = {**ENGINE, "enable_prefix_caching": True,
                 "kv_cache_memory_bytes": PREFIX_CACHE_TOKENS * QWEN3_TOY_KV_BYTES_PER_TOKEN}


def engine_of(workload_name: str) -> dict:
    """The engine section every system gets for a workload."""
    return PREFIX_ENGINE if workload_name == "prefix" else ENGINE


def engine_args(model: str = TOY_MODEL, workload_name: str = "peer") -> dict:
    """What batchgen's replica gives vLLM for a toy model (its model-aware defaults, then the workload's
    engine, `engine_of`)."""
    path = resolve_path(model)
    return {**engine_defaults(ModelSpec(path=path), path, on_cpu=True), **engine_of(workload_name), "model": path}


WORKLOADS = ("peer", "tail", "traces", "prefix")


def workload(name: str, count: int) -> tuple[str, list[dict]]:
    """(model path, records) of a named workload: `peer` on the trained toy model; `tail` and `traces`
    (long-tailed output lengths, `long_tailed_records`) on its untrained copy; `prefix` (shared prefixes,
    `prefix_records`) on the plain-attention toy."""
    if name == "peer":
        return TOY_MODEL, peer_records(count)
    if name == "prefix":
        return PREFIX_MODEL, prefix_records(count)
    return untrained_model(), long_tailed_records(count, name)


def prefix_records(count: int, seed: int = 3, prefixes: int = 16, prefix_tokens: int = 1_500) -> list[dict]:
    """Records sharing long prefixes, as evaluations over documents make them: `prefixes` distinct
    documents of about `prefix_tokens` tokens each (a system turn), each record one of them, picked at
    random (input order is random), with a short question of its own; answers short (reasoning off, 16
    tokens at most, greedy)."""
    rng = random.Random(seed)
    documents = [_documents(rng, prefix_tokens) for _ in range(prefixes)]
    return [{"id": f"p{i}", "messages": [{"role": "system", "content": rng.choice(documents)},
                                         {"role": "user", "content": corpus.echo_prompt(rng.choice(corpus.WORDS)) + f" ({i})"}],
             "reasoning": "off", "temperature": 0.0, "max_tokens": 16} for i in range(count)]


def peer_records(count: int, seed: int = 0) -> list[dict]:
    """Greedy records whose outputs range from a few tokens to a few hundred, like reasoning traces do:
    long multi-line reasoning, one long line, short reasoning, answers without reasoning; max_tokens spread
    on a long-tailed distribution cuts some of them anywhere."""
    rng = random.Random(seed)
    kinds = [(corpus.steps_prompt, "on", 4), (corpus.ramble_prompt, "on", 2), (corpus.echo_prompt, "on", 3),
             (corpus.steps_prompt, "off", 1)]
    records = []
    for i in range(count):
        build, mode, _ = rng.choices(kinds, weights=[k[2] for k in kinds])[0]
        records.append({"id": f"r{i}", "prompt": build(rng.choice(corpus.WORDS)), "reasoning": mode,
                        "temperature": 0.0, "max_tokens": min(400, max(8, int(rng.lognormvariate(5.0, 0.8))))})
    return records


def untrained_model() -> str:
    """A random-weight copy of the toy model (its tokenizer and config) whose EOS logit is zeroed, so under
    greedy decoding EOS never wins and every record runs exactly to its max_tokens: output lengths are
    whatever the workload says. Built once next to the toy model (seconds: no training)."""
    trained = Path(resolve_path(TOY_MODEL))
    target = trained.with_name(trained.name + "-untrained")
    if not (target / "config.json").exists():
        import shutil

        import torch
        from transformers import AutoConfig, AutoTokenizer, NemotronHForCausalLM

        torch.manual_seed(0)
        config = AutoConfig.from_pretrained(trained)
        model = NemotronHForCausalLM(config)
        with torch.no_grad():
            model.lm_head.weight[config.eos_token_id].zero_()
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        AutoTokenizer.from_pretrained(trained).save_pretrained(staging)
        staging.rename(target)
    return str(target)


def long_tailed_records(count: int, shape: str, seed: int = 2) -> list[dict]:
    """Reasoning-off records for the untrained model, their max_tokens the output length. `tail`: 95% at
    16-64 tokens, 5% at 1,500 (25x the median); `traces`: like real reasoning traces, median about a tenth
    of the longest (1,500) with a tail up to it."""
    rng = random.Random(seed)
    if shape == "tail":
        lengths = [1500 if rng.random() < 0.05 else rng.randint(16, 64) for _ in range(count)]
    else:
        lengths = [min(1500, max(16, int(rng.lognormvariate(5.0, 0.8)))) for _ in range(count)]
    return [{"id": f"t{i}", "prompt": corpus.echo_prompt(rng.choice(corpus.WORDS)), "reasoning": "off",
             "temperature": 0.0, "max_tokens": n} for i, n in enumerate(lengths)]


def budget_records(count: int, seed: int = 1, prompts: str = "short") -> list[dict]:
    """Long reasoning with a per-record thinking budget (8 to 128 tokens), answer room 256 tokens. `prompts`:
    "short" (a one-line question, ~40 tokens) or "long" (the question after a system turn of retrieved
    documents, 512 to 2,048 prompt tokens in all, as in RAG or few-shot prompts; the toy model still
    reasons at length after it)."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        question = corpus.steps_prompt(rng.choice(corpus.WORDS))
        record = {"id": f"b{i}", "reasoning": "on", "temperature": 0.0, "max_tokens": 256,
                  "max_thinking_tokens": rng.choice([8, 16, 32, 64, 128])}
        if prompts == "long":
            record["messages"] = [{"role": "system", "content": _documents(rng, rng.randint(512, 2048))},
                                  {"role": "user", "content": question}]
        else:
            record["prompt"] = question
        records.append(record)
    return records


def _documents(rng: random.Random, tokens: int) -> str:
    """A system turn of short documents, about `tokens` long with the toy's tokenizer (~2.3 tokens a word)."""
    lines = ["Use these documents."]
    words = 0
    while words < tokens / 2.3:
        lines.append(f"Document {len(lines)}: the {rng.choice(corpus.WORDS)} in {rng.choice(corpus.CITIES)} "
                     f"was seen on day {rng.randint(1, 30)}.")
        words += len(lines[-1].split())
    return "\n".join(lines)


def engine_inputs(records: list[dict], budget: BudgetSpec | None = None, max_model_len: int = ENGINE["max_model_len"],
                  model: str = TOY_MODEL) -> list:
    """batchgen's EngineInput (prompt ids, sampling, budget plan) for every record, as its replica prepares
    it (`RecordPreparer.build`: a record that cannot run gives its `RecordError`) for a toy `model`."""
    preparer = RecordPreparer.for_model(ModelSpec(path=model), budget=budget, max_model_len=max_model_len)
    return [preparer.build(r, r["id"]) for r in records]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
