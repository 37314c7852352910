"""`make bench`: every benchmark, one after the other, each in its own process, then results.json, chart.png
and table.md in the results folder (and the README's performance section, for the default and --full runs).

    python -m benchmarks.run [--full | --smoke] [--out benchmarks/results]

Sizes: the default run takes about an hour on 2 cores (27 peer runs); --full runs 5x the prompts and 4x the
records for scaling; --smoke is the tiny run the test suite makes to check that the harness works end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks.cache_chart import chart as cache_chart
from benchmarks.report import chart, markdown

ROOT = Path(__file__).resolve().parents[1]
# peers: records per workload and runs of each system (alternating); scaling: records per replica, replica
# counts, the stand-in's decode step in seconds; pipeline: the two job sizes whose difference gives the
# pipeline's CPU per record.
SIZES = {
    "smoke": {"prefix": (24, 1), "cache_at_scale": 800, "peers": (24, 1), "budget": (16, 1), "sweep": (8, 1), "memory": [500, 2_000], "scaling": (1_024, [1, 2], 0.005),
              "pipeline": (500, 1_500), "commits": 10},
    "default": {"prefix": (2_000, 3), "cache_at_scale": 16_000, "peers": (2_000, 3), "budget": (512, 3), "sweep": (128, 3), "memory": [1_000_000, 10_000_000], "scaling": (2_048, [1, 8], 0.05),
                "pipeline": (10_000, 40_000), "commits": 300},
    "full": {"prefix": (10_000, 3), "cache_at_scale": 64_000, "peers": (10_000, 3), "budget": (2_000, 3), "sweep": (512, 3), "memory": [1_000_000, 10_000_000],
             "scaling": (8_192, [1, 2, 4, 8], 0.05), "pipeline": (10_000, 80_000), "commits": 1_000},
}
SYSTEMS = ("vllm", "ray-data", "batchgen")
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def _cpu_seconds(session: int, seen: dict[int, tuple[str, float]]) -> None:
    """Adds the CPU time so far of every process in a session (keyed by pid: exited ones keep their last)."""
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        try:
            if os.getsid(proc.pid) == session:
                times = proc.info["cpu_times"]
                seen[proc.pid] = ((proc.info["cmdline"] or [proc.info["name"]])[0], times.user + times.system)
        except (ProcessLookupError, psutil.Error, TypeError):
            pass


def measure(module: str, *args, logs: Path) -> dict:
    """Runs `python -m benchmarks.<module> args` in a new session and returns the JSON line it prints, with
    the CPU seconds its engine processes (vLLM's) and all its other processes (the driver, Ray) used.
    Whatever it leaves behind (a local Ray, engine processes) is killed with its session."""
    name = "-".join([module, *map(str, args)]).replace("--", "")
    env = {**os.environ, "VLLM_USE_V2_MODEL_RUNNER": "0"}
    env.pop("RAY_ADDRESS", None)  # always a local Ray of the benchmark's own
    print(f"  {module} {' '.join(map(str, args))} ...", end="", flush=True)
    started = time.time()
    output, seen = logs / f"{name}.out", {}
    with open(logs / f"{name}.log", "w") as log, open(output, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"benchmarks.{module}", *map(str, args)], cwd=ROOT, env=env,
                                stdout=out, stderr=log, text=True, start_new_session=True)
        while proc.poll() is None:
            _cpu_seconds(proc.pid, seen)
            time.sleep(1)
    stdout = output.read_text()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"\nbenchmarks.{module} failed (exit {proc.returncode}); see {logs / (name + '.log')}")
    print(f" {time.time() - started:.0f} s", flush=True)
    engine = sum(cpu for title, cpu in seen.values() if title.startswith("VLLM::"))
    other = sum(cpu for title, cpu in seen.values() if not title.startswith("VLLM::"))
    return {**json.loads(lines[-1]), "cpu_s_engine": round(engine, 1), "cpu_s_other": round(other, 1)}


def peers(name: str, records: int, repeats: int, logs: Path) -> dict:
    """Each system `repeats` times on one workload, alternating (vLLM, ray.data.llm, batchgen, vLLM, ...) so
    that the machine's drift falls on all three alike; the median run of each, and the spread."""
    from benchmarks.workload import workload

    runs = {system: [] for system in SYSTEMS}
    for _ in range(repeats):
        for system in SYSTEMS:
            runs[system].append(measure("peers", system, "--records", records, "--workload", name, logs=logs))
    median = {s: statistics.median_low(r["tokens_per_s"] for r in runs[s]) for s in SYSTEMS}
    caps = [r["max_tokens"] for r in workload(name, records)[1]]
    return {
        "workload": name, "repeats": repeats, "max_tokens_range": [min(caps), max(caps)],
        "runs": [next(r for r in runs[s] if r["tokens_per_s"] == median[s]) for s in SYSTEMS],
        "tokens_per_s": {s: [r["tokens_per_s"] for r in runs[s]] for s in SYSTEMS},
        "ratios": {
            "ray.data.llm/vllm": round(median["ray-data"] / median["vllm"], 3),
            "batchgen/vllm": round(median["batchgen"] / median["vllm"], 3),
            "batchgen/ray.data.llm": round(median["batchgen"] / median["ray-data"], 3),
        },
    }


def paired(base: str, other: str, workload: str, records: int, repeats: int, logs: Path) -> dict:
    """Two systems of `benchmarks.peers` on one workload, alternating `repeats` times: every run's tokens/s
    and wall time (s, start-up included), the ratio of the tokens/s medians, `other` over `base`, and of
    the wall-time medians, and each run's other figures (`runs`)."""
    runs = {system: [] for system in (base, other)}
    for _ in range(repeats):
        for system in runs:
            runs[system].append(measure("peers", system, "--records", records, "--workload", workload, logs=logs))
    median = {s: statistics.median_low(r["tokens_per_s"] for r in v) for s, v in runs.items()}
    wall = {s: statistics.median_low(r["wall_time_s"] for r in v) for s, v in runs.items()}
    return {"records": records, "repeats": repeats, "tokens_per_s": {s: [r["tokens_per_s"] for r in v] for s, v in runs.items()},
            "wall_time_s": {s: [r["wall_time_s"] for r in v] for s, v in runs.items()},
            "ratio": round(median[other] / median[base], 3), "wall_ratio": round(wall[other] / wall[base], 3),
            "runs": runs}


PREFIX_SYSTEMS = ("vllm", "ray-data", "batchgen-input", "batchgen")


def prefix_sharing(records: int, repeats: int, logs: Path) -> list[dict]:
    """The shared-prefix workload (`workload.prefix_records`: 16 prefixes of ~1,500 tokens in random order)
    on the plain-attention toy, each engine's KV cache holding about 4 of them: the four systems
    (`PREFIX_SYSTEMS`: plain vLLM, one engine in input order; ray.data.llm; batchgen in input order;
    batchgen scheduled) `repeats` times each, alternating, with 1 engine and with 2 (plain vLLM stays one);
    per system the tokens/s of every run and the median run (its prefix-cache hit rate and prefill tokens
    computed, as vLLM counted them), and the ratios of the medians."""
    results = []
    for replicas in (1, 2):
        runs = {system: [] for system in PREFIX_SYSTEMS}
        for _ in range(repeats):
            for system in PREFIX_SYSTEMS:
                runs[system].append(measure("peers", system, "--records", records, "--workload", "prefix",
                                            "--replicas", replicas, logs=logs))
        median = {s: statistics.median_low(r["tokens_per_s"] for r in v) for s, v in runs.items()}
        chosen = {s: next(r for r in v if r["tokens_per_s"] == median[s]) for s, v in runs.items()}
        results.append({
            "replicas": replicas, "records": records, "repeats": repeats,
            "tokens_per_s": {s: [r["tokens_per_s"] for r in v] for s, v in runs.items()},
            "median": chosen,
            "ratios": {"scheduled/vllm": round(median["batchgen"] / median["vllm"], 3),
                       "scheduled/input order": round(median["batchgen"] / median["batchgen-input"], 3),
                       "scheduled/ray.data.llm": round(median["batchgen"] / median["ray-data"], 3)},
        })
    return results


def order_cost(records: int, repeats: int, logs: Path) -> list[dict]:
    """batchgen in input order and scheduled (longest expected first) on the long-tailed workloads: the
    ratio of the generation-time medians (wall time after start-up), input order over scheduled (above 1:
    scheduled is faster), and of the tokens/s medians."""
    results = []
    for name in ("tail", "traces"):
        pair = paired("batchgen-input", "batchgen", name, records, repeats, logs)
        generation = {s: [r["generation_s"] for r in v] for s, v in pair.pop("runs").items()}
        results.append({"workload": name, **pair, "generation_s": generation,
                        "generation_ratio": round(statistics.median_low(generation["batchgen-input"])
                                                  / statistics.median_low(generation["batchgen"]), 3)})
    return results


def grading_cost(records: int, repeats: int, logs: Path) -> dict:
    """batchgen on the `peer` workload without and with grading (math-verify on every row, in the write
    tasks): the graded job's generation tokens/s over the plain one's (the issue's bar: 0.98)."""
    return paired("batchgen", "batchgen-graded", "peer", records, repeats, logs)


def table_cost(records: int, repeats: int, logs: Path) -> dict:
    """batchgen on the `peer` workload into a Parquet prefix and into an Iceberg table (commits every 10 s),
    alternating: the table job's wall time over the prefix job's (the issue's bar: at most 1.03)."""
    return paired("batchgen", "batchgen-iceberg", "peer", records, repeats, logs)


def ray_beside(records: int, repeats: int, logs: Path) -> dict:
    """Plain vLLM alone and with an idle local Ray beside it, alternating, on the `tail` workload: what
    Ray's own processes take from an engine whose cores they share (vLLM's CPU build keeps one core for
    its scheduler loop, the core Ray's processes run on too)."""
    return paired("vllm", "vllm-beside-ray", "tail", records, repeats, logs)


def budget(records: int, repeats: int, logs: Path) -> dict:
    """The budget cost on short and long prompts, `repeats` runs of each, alternating; per prompt set the
    median run's seconds and tokens/s per case, and the ratios between cases' medians."""
    runs = {prompts: [] for prompts in ("short", "long")}
    for _ in range(repeats):
        for prompts in runs:
            runs[prompts].append(measure("budget_cost", "--records", records, "--prompts", prompts, logs=logs))
    sets = {}
    for prompts, results in runs.items():
        cases = {name: {**results[0]["cases"][name],
                        "seconds": statistics.median_low(r["cases"][name]["seconds"] for r in results),
                        "tokens_per_s": statistics.median_low(r["cases"][name]["tokens_per_s"] for r in results),
                        "seconds_runs": [r["cases"][name]["seconds"] for r in results]}
                 for name in results[0]["cases"]}
        one_pass, two_requests = cases["batchgen one pass"], cases["card's two-request client"]
        reference = cases["no budget, same tokens"]
        sets[prompts] = {"prompt_tokens": results[0]["prompt_tokens"], "cases": cases, "ratios": {
            "one pass/no budget (tokens/s)": round(one_pass["tokens_per_s"] / reference["tokens_per_s"], 3),
            "two requests/no budget (tokens/s)": round(two_requests["tokens_per_s"] / reference["tokens_per_s"], 3),
            "two requests/one pass (time)": round(two_requests["seconds"] / one_pass["seconds"], 3),
        }}
    return {"records": records, "repeats": repeats, "sets": sets}


def sweep(records: int, repeats: int, logs: Path) -> dict:
    """A 4-budget sweep against 4 separate runs of the same records, alternating in one process (one engine
    start): medians of `repeats` runs each (`benchmarks.sweep_cost`)."""
    return measure("sweep_cost", "--records", records, "--repeats", repeats, logs=logs)


def scaling(per_replica: int, counts: list[int], step: float, logs: Path) -> list[dict]:
    runs = [measure("scale", "replicas", "--replicas", n, "--records", per_replica * n, "--step-seconds", step, logs=logs)
            for n in counts]
    for run in runs:
        run["speedup"] = round(run["records_per_s"] / runs[0]["records_per_s"], 2)
        run["efficiency"] = round(run["speedup"] / run["replicas"], 2)
    return runs


def pipeline_cost(small: int, large: int, logs: Path) -> dict:
    """The pipeline's CPU per record: two jobs on a stand-in too fast to matter (`scale pipeline`), the CPU
    of every process but the stand-in's own thread, the smaller job's taken from the larger's, so Ray's
    start-up and the job's fixed costs cancel and what is left is what each further record costs."""
    result = {"records": [small, large]}
    for name, flags in (("plain", []), ("templated", ["--templated"])):
        runs = [measure("scale", "pipeline", "--records", n, *flags, logs=logs) for n in (small, large)]
        cpu = [run["cpu_s_other"] - run["standin_cpu_s"] for run in runs]
        result[name] = {"runs": runs, "records_per_s": runs[1]["records_per_s"],
                        "cpu_ms_per_record": round(1000 * (cpu[1] - cpu[0]) / (large - small), 3),
                        "cpu_ms_per_record_all_in": round(1000 * cpu[1] / large, 3)}
    result["rendering"] = measure("scale", "rendering", "--records", small, logs=logs)
    result["grading"] = measure("scale", "grading", "--records", small, logs=logs)
    return result


def update_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    readme.write_text(pattern.sub(lambda _: f"{README_START}\n{table}{README_END}", text))


def main() -> None:
    parser = argparse.ArgumentParser()
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="the larger sizes (10,000 prompts, 16,384 records to scale)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the harness runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--only", default="", help="comma-separated sections to run again (e.g. prefix,order), "
                        "merged into the results.json already there")
    args = parser.parse_args()
    mode = "full" if args.full else "smoke" if args.smoke else "default"
    sizes = SIZES[mode]
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"batchgen benchmarks ({mode}); logs in {logs}")
    sections = {
        "peers": lambda: [peers(name, *sizes["peers"], logs=logs) for name in ("peer", "tail", "traces")],
        "prefix": lambda: prefix_sharing(*sizes["prefix"], logs=logs),
        "order": lambda: order_cost(*sizes["peers"], logs=logs),
        "cache_at_scale": lambda: measure("scale", "prefix", "--records", sizes["cache_at_scale"], logs=logs),
        "ray_beside": lambda: ray_beside(*sizes["peers"], logs=logs),
        "grading": lambda: grading_cost(*sizes["peers"], logs=logs),
        "table": lambda: table_cost(*sizes["peers"], logs=logs),
        "table_commits": lambda: measure("scale", "commits", "--records", sizes["commits"], logs=logs),
        "budget": lambda: budget(*sizes["budget"], logs=logs),
        "sweep": lambda: sweep(*sizes["sweep"], logs=logs),
        "memory": lambda: [measure("scale", "memory", "--records", n, logs=logs) for n in sizes["memory"]],
        "scaling": lambda: scaling(*sizes["scaling"], logs=logs),
        "pipeline": lambda: pipeline_cost(*sizes["pipeline"], logs=logs),
    }
    only = [name for name in args.only.split(",") if name]
    if unknown := set(only) - set(sections):
        raise SystemExit(f"--only: no section {', '.join(sorted(unknown))}; the sections are {', '.join(sections)}")
    results = json.loads((args.out / "results.json").read_text()) if only else {}
    results.update({
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, no GPU",
        "command": "make bench" + {"full": " BENCH_ARGS=--full", "smoke": " BENCH_ARGS=--smoke", "default": ""}[mode],
    })
    for name, section in sections.items():
        if not only or name in only:
            results[name] = section()
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "table.md").write_text(table)
    chart(results, args.out / "chart.png")
    if results.get("cache_at_scale"):
        cache_chart(results["cache_at_scale"], args.out / "cache_at_scale.png")
    if mode != "smoke":
        update_readme(table)
    print(table)


if __name__ == "__main__":
    main()
