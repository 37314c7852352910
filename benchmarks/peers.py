"""Engine ceiling and peer: the same records, the same engine, the same greedy sampling, run three ways.

    python -m benchmarks.peers vllm      --records 2000   # plain vLLM offline generation, one process: the ceiling
    python -m benchmarks.peers ray-data  --records 2000   # Ray's batch-LLM module, ray.data.llm
    python -m benchmarks.peers batchgen  --records 2000   # a batchgen job
    python -m benchmarks.peers vllm-beside-ray ...         # plain vLLM with an idle local Ray running beside it
    python -m benchmarks.peers batchgen-iceberg ...        # a batchgen job into an Iceberg table (SQLite catalog)
    python -m benchmarks.peers batchgen-input ...          # a batchgen job in input order (scaling.order: input)
    ... --workload tail|traces                             # long-tailed output lengths (benchmarks/workload.py)
    ... --workload prefix --replicas 2                     # shared prefixes; 2 replicas (ray.data.llm, batchgen)

Each prints one JSON line: output tokens, wall time including start-up, and the generation phase (from the
first engine ready to the last output: the `generate` call for vLLM, the last file written for the others).
The harness (benchmarks/run.py) runs each in its own process, one after the other.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from batchgen.core.stats import prefix_cache

from benchmarks.events import log_event, read_events, start_ray
from benchmarks.workload import (
    BATCH_SIZE, BATCHES_IN_FLIGHT, WORKLOADS, engine_args, engine_inputs, engine_of, workload, write_jsonl,
)


def measured(system: str, started: float, ready: float, done: float, tokens: int, records: int) -> dict:
    return {"system": system, "records": records, "output_tokens": tokens, "wall_time_s": round(done - started, 2),
            "startup_s": round(ready - started, 2), "generation_s": round(done - ready, 2),
            "tokens_per_s": round(tokens / (done - ready), 1)}


def plain_vllm(model: str, records: list[dict], workload_name: str, beside_ray: bool = False) -> dict:
    """`beside_ray`: a local Ray (the job's num_cpus) is started first and left idle: what Ray's own
    processes alone take from an engine that shares their cores. One engine, all prompts in one `generate`
    call, in input order; its prefix cache's hits from vLLM's own count (`num_cached_tokens`)."""
    import vllm

    inputs = engine_inputs(records, model=model)
    if beside_ray:
        import ray

        ray.init(address="local", num_cpus=4, log_to_driver=False)
    started = time.time()
    llm = vllm.LLM(**engine_args(model, workload_name))
    ready = time.time()
    outputs = llm.generate([{"prompt_token_ids": e.prompt_ids} for e in inputs],
                           [vllm.SamplingParams(**e.sampling) for e in inputs], use_tqdm=False)
    done = time.time()
    llm.llm_engine.engine_core.shutdown()  # now: left to interpreter exit, it waits on its worker for minutes
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    result = measured("vllm beside an idle Ray" if beside_ray else "vllm", started, ready, done, tokens, len(outputs))
    return {**result, "prefix_cache": prefix_cache({"engine": {
        "prefill": sum(len(o.prompt_token_ids) for o in outputs), "cached": sum(o.num_cached_tokens or 0 for o in outputs)}})}


def mark_engine_ready() -> None:
    """Ray's worker_process_setup_hook for the ray.data.llm run: logs when its vLLM stage's engine is up."""
    from ray.llm._internal.batch.stages import vllm_engine_stage

    start = vllm_engine_stage.vLLMEngineStageUDF.__init__

    def logged(self, *args, **kwargs):
        start(self, *args, **kwargs)
        log_event("ready")

    vllm_engine_stage.vLLMEngineStageUDF.__init__ = logged


def ray_data_llm(model: str, records: list[dict], tmp: Path, workload_name: str, replicas: int = 1) -> dict:
    """ray.data.llm's processor over the same prompt ids, `replicas` engines (its `concurrency`), records
    in input order (it has no order of its own)."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    write_jsonl(tmp / "prompts.jsonl", [{"id": r["id"], "prompt_ids": e.prompt_ids, "sampling": e.sampling}
                                        for r, e in zip(records, engine_inputs(records, model=model))])
    args = engine_args(model, workload_name)
    started = time.time()
    # num_gpus: ray.data.llm's engine stage asks for a GPU per engine, which a CPU machine must pretend to have.
    start_ray(tmp / "events", "benchmarks.peers.mark_engine_ready", num_cpus=2 + 2 * replicas, num_gpus=replicas)
    config = vLLMEngineProcessorConfig(
        model_source=args.pop("model"), engine_kwargs=args, batch_size=BATCH_SIZE,
        max_concurrent_batches=BATCHES_IN_FLIGHT, concurrency=replicas, chat_template_stage=False, tokenize_stage=False,
        detokenize_stage=False, log_engine_metrics=False,
    )
    processor = build_processor(
        config,
        preprocess=lambda row: {"id": row["id"], "tokenized_prompt": row["prompt_ids"], "sampling_params": row["sampling"]},
        postprocess=lambda row: {"id": row["id"], "generated_text": row["generated_text"],
                                 "num_generated_tokens": row["num_generated_tokens"]},
    )
    processor(ray.data.read_json(str(tmp / "prompts.jsonl"))).write_parquet(str(tmp / "out"))
    done = time.time()
    ready = min(at for _, at, _ in read_events(tmp / "events", "ready"))
    table = pq.read_table(tmp / "out", columns=["num_generated_tokens"])
    return measured("ray.data.llm", started, ready, done, sum(table.column(0).to_pylist()), table.num_rows)


# A job into a table commits every 10 s here, 30 times the default cadence (300 s): what commits cost, bounded.
TABLE_COMMIT_EVERY_S = 10


def batchgen_job(model: str, records: list[dict], tmp: Path, workload_name: str, graded: bool = False,
                 table: bool = False, replicas: int = 1, order: str = "scheduled") -> dict:
    """A batchgen job over the records; `graded`: with a grade section (every record's reference `\\frac{1}{2}`,
    compared by math-verify, the costliest comparison), to measure what grading takes from generation;
    `table`: into an Iceberg table (PyIceberg's SQL catalog on SQLite, the warehouse on local disk), its
    rows committed every TABLE_COMMIT_EVERY_S seconds; `replicas` engines; `order`: `scaling.order`."""
    from batchgen.cluster.pipeline import run
    from batchgen.spec.job import JobSpec

    write_jsonl(tmp / "records.jsonl", [r | {"answer": "\\frac{1}{2}"} for r in records] if graded else records)
    grade = {"grade": {"reference": "answer", "extract": "last_number", "compare": "math"}} if graded else {}
    spec = JobSpec.model_validate({**grade,
        "name": "bench-peers", "model": {"path": model}, "engine": engine_of(workload_name),
        "input": {"uri": str(tmp / "records.jsonl")}, "output": {"uri": str(tmp / "out")} | ({"format": "iceberg", "table": {
            "identifier": "bench.answers", "commit_every_s": TABLE_COMMIT_EVERY_S,
            "catalog": {"type": "sql", "uri": f"sqlite:///{tmp}/catalog.db", "warehouse": str(tmp)}}} if table else {}),
        # The same number of records in flight as ray.data.llm's batches hold.
        "scaling": {"replicas": replicas, "gpus_per_replica": 0, "batch_size": BATCH_SIZE,
                    "records_in_flight": BATCH_SIZE * BATCHES_IN_FLIGHT, "order": order},
        # The untrained model's random text holds marker tokens (<TOOLCALL>): those rows are answers whose
        # tool calls do not parse, counted as errors; what is measured here is tokens.
        "errors": {"max_fraction": 1.0},
    })
    started = time.time()
    stats = run(spec)
    done = time.time()
    ready = done - stats.generation_time_s
    system = "batchgen-graded" if graded else "batchgen-iceberg" if table else "batchgen" + ("-input" if order == "input" else "")
    result = {**measured(system, started, ready, done, stats.completion_tokens, stats.records),
              "prefix_cache": stats.prefix_cache}
    if table:
        result["table_commits"] = stats.table["commits"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=["vllm", "ray-data", "batchgen", "batchgen-graded", "batchgen-iceberg",
                                           "batchgen-input", "vllm-beside-ray"])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--workload", choices=WORKLOADS, default="peer")
    parser.add_argument("--replicas", type=int, default=1, help="engines of ray.data.llm and batchgen (vLLM: one)")
    args = parser.parse_args()
    model, records = workload(args.workload, args.records)
    with tempfile.TemporaryDirectory() as tmp:
        if args.system.startswith("vllm"):
            result = plain_vllm(model, records, args.workload, beside_ray=args.system == "vllm-beside-ray")
        elif args.system == "ray-data":
            result = ray_data_llm(model, records, Path(tmp), args.workload, args.replicas)
        else:
            result = batchgen_job(model, records, Path(tmp), args.workload, graded=args.system == "batchgen-graded",
                                  table=args.system == "batchgen-iceberg", replicas=args.replicas,
                                  order="input" if args.system == "batchgen-input" else "scheduled")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
