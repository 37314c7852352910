"""The benchmark results as Markdown tables and one PNG chart (matplotlib), from results.json's dict."""

from __future__ import annotations

from pathlib import Path


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


WORKLOAD_TITLES = {
    "peer": "the peer workload (trained toy model; multi-line and one-line reasoning, answers without)",
    "tail": "long-tailed (untrained toy, every record runs to max_tokens, reasoning off: 95% at 16-64 tokens, "
            "5% at 1,500)",
    "traces": "shaped like reasoning traces (untrained toy, to max_tokens: lognormal, median ~150, up to 1,500)",
}


def _peers(n: int, peers: dict) -> list[str]:
    spread = {s: f"{min(v):,.0f}-{max(v):,.0f}" for s, v in peers["tokens_per_s"].items()}
    ceiling = peers["runs"][0]["tokens_per_s"]
    return [
        f"**1{'abc'[n]}. Engine ceiling and peers: {WORKLOAD_TITLES[peers['workload']]}** "
        f"({peers['runs'][0]['records']:,} greedy records, max_tokens {peers['max_tokens_range'][0]}-"
        f"{peers['max_tokens_range'][1]}, same engine and arguments; median of {peers['repeats']} runs each, "
        "alternating)",
        _table(["system", "output tokens", "tokens/s generating (median)", "spread", "vs vLLM", "start-up s",
                "CPU s: engine / the rest"],
               [[p["system"], p["output_tokens"], p["tokens_per_s"], spread[s], f"{p['tokens_per_s'] / ceiling:.2f}",
                 p["startup_s"], f"{p['cpu_s_engine']} / {p['cpu_s_other']}"]
                for s, p in zip(peers["tokens_per_s"], peers["runs"])]),
        f"batchgen / ray.data.llm: {peers['ratios']['batchgen/ray.data.llm']:.2f} (medians of tokens/s generating).",
    ]


def _sweep(sweep: dict | None) -> list[str]:
    if sweep is None:  # results from before the sweep benchmark existed
        return []

    def named(budgets: list) -> str:
        return "[" + ", ".join("none" if b is None else str(b) for b in budgets) + "]"

    return [
        f"**2b. Budget sweep** ({sweep['records']:,} reasoning records of about 240 tokens, four budgets, greedy; one "
        f"batchgen sweep against one run per budget on the same replica; median of {sweep['repeats']} runs each, "
        "alternating)",
        _table(["budgets", "case", "seconds (median)", "spread s", "decoded tokens", "prefill tokens"],
               [[named(s["budgets"]), name, c["seconds"], f"{min(c['seconds_runs'])}-{max(c['seconds_runs'])}",
                 c["decode_tokens"], c["prefill_tokens"]] for s in sweep["sets"].values() for name, c in s["cases"].items()]),
        "The four separate runs take "
        + " and ".join(f"**{s['separate/sweep (time)']:.2f}x** the sweep's time at {named(s['budgets'])} (decoding "
                       f"{s['separate/sweep (decoded tokens)']:.2f}x its tokens)" for s in sweep["sets"].values())
        + "; the rows are " + ("identical, budget by budget." if all(s["identical_rows"] for s in sweep["sets"].values())
                               else "NOT identical (a defect)."),
    ]


def _grading(grading: dict | None, ratio: dict | None = None) -> list[str]:
    """The grading CPU per row, by comparison, and what grading takes from generation (none in results
    from before grading existed)."""
    lines = []
    if grading:
        lines.append(f"**Grading** ({grading['rows']:,} answer rows graded in-process as the write tasks grade them, "
                     f"median of {grading['repeats']}): " + ", ".join(
                         f"{name} {grading[f'{name}_ms_per_row']} ms CPU per row" for name in ("exact", "numeric", "math")))
    if ratio:
        lines.append(f"**Grading beside generation** (`peer` workload, {ratio['records']:,} records, {ratio['repeats']} "
                     f"runs each, alternating; math-verify on every row): graded/plain generation tokens/s "
                     f"**{ratio['ratio']:.2f}** (medians; plain {ratio['tokens_per_s']['batchgen']}, graded "
                     f"{ratio['tokens_per_s']['batchgen-graded']})")
    return lines


def _into_table(table: dict | None, piled: dict | None = None) -> list[str]:
    """Into an Iceberg table against into a Parquet prefix, and a commit's time as commits pile up (none in
    results from before tables existed)."""
    lines = [] if not piled else [
        f"**Commits piling up** ({piled['commits']:,} commits of one {piled['rows_per_file']:,}-row file each into one "
        f"table; `python -m benchmarks.scale commits`): a commit took {piled['first_tenth_commit_s']} s over the first "
        f"tenth, {piled['last_tenth_commit_s']} s over the last (PyIceberg copies the table's metadata, every snapshot "
        f"in it, several times per commit); a rerun's start and no-op finish {piled['rerun_start_and_finish_s']} s, "
        f"adding {piled['rerun_added']} files"]
    if not table:
        return lines
    commits = [c for r in table["runs"]["batchgen-iceberg"] for c in r.get("table_commits", [])]
    seconds = sorted(c["seconds"] for c in commits) or [0]
    return [f"**Into an Iceberg table** (`peer` workload, {table['records']:,} records, {table['repeats']} runs each, "
            f"alternating; PyIceberg's SQL catalog on SQLite, a commit every 10 s, 30x the default cadence): wall time "
            f"table/prefix **{table['wall_ratio']:.3f}** (medians; prefix {table['wall_time_s']['batchgen']} s, table "
            f"{table['wall_time_s']['batchgen-iceberg']} s); {len(commits)} commits took "
            f"{seconds[len(seconds) // 2]:.2f} s each (median; at most {seconds[-1]:.2f} s), off the job's path", *lines]


PREFIX_NAMES = {"vllm": "plain vLLM", "ray-data": "ray.data.llm", "batchgen-input": "batchgen, input order",
                "batchgen": "batchgen, scheduled"}


def _prefix(prefix: list[dict] | None, order: list[dict] | None, at_scale: dict | None) -> list[str]:
    """6. Order and prefix caching: the shared-prefix workload on the plain-attention toy (1 and 2 engines),
    the long-tailed workloads in input order and scheduled, and the stand-in with a prefix cache at 8
    replicas (none in results from before the order existed)."""
    lines = []
    if prefix:
        rows = []
        for case in prefix:
            for system, runs in case["tokens_per_s"].items():
                median = case["median"][system]
                cache = median.get("prefix_cache") or {}
                rows.append([case["replicas"], PREFIX_NAMES[system], median["tokens_per_s"], f"{min(runs):,.0f}-{max(runs):,.0f}",
                             f"{cache['hit_rate']:.1%}" if cache else "not reported",
                             f"{cache['prefill_tokens_computed']:,}" if cache else "-", median["generation_s"]])
        first = prefix[0]
        lines += [
            f"**6. Order and prefix caching** (`benchmarks/workload.py` `prefix_records`: {first['records']:,} records "
            "over 16 documents of ~1,500 tokens in random order, a short question each, 16-token answers, greedy; the "
            "plain-attention toy (`toy:qwen3`), prefix caching on, each engine's KV cache 6,400 tokens (about 4 "
            f"documents); {first['repeats']} runs of each system, alternating; plain vLLM is one engine in both cases; "
            "hit rates and prefill tokens computed are vLLM's own counts, `num_cached_tokens`, of the median run)",
            _table(["engines", "system", "tokens/s (median)", "spread", "prefix cache hit rate", "prefill tokens computed",
                    "generation s"], rows),
            "Scheduled over the others (medians): " + "; ".join(
                f"{case['replicas']} engine{'s' if case['replicas'] > 1 else ''}: "
                + ", ".join(f"{name} **{ratio:.2f}x**" for name, ratio in case["ratios"].items()) for case in prefix) + ".",
        ]
    if order:
        lines.append("**Longest first** (batchgen scheduled over batchgen in input order, the long-tailed workloads, "
                     f"{order[0]['records']:,} records, {order[0]['repeats']} runs each, alternating; generation time is "
                     "the wall time after start-up): " + "; ".join(
                         f"`{o['workload']}` generation time input/scheduled **{o['generation_ratio']:.3f}** (input "
                         f"{', '.join(map(str, o['generation_s']['batchgen-input']))} s; scheduled "
                         f"{', '.join(map(str, o['generation_s']['batchgen']))} s), tokens/s scheduled/input {o['ratio']:.3f}"
                         for o in order) + ".")
    if at_scale:
        from benchmarks.cache_chart import markdown_lines

        lines += [*markdown_lines(at_scale), "![prefix cache at scale](benchmarks/results/cache_at_scale.png)"]
    return lines


def _worker_peak(memory: dict, title: str) -> int | str:
    """The peak RSS in MiB of the Ray workers whose process title starts with `title` (an actor's title
    gains the method it runs: `ray::Progress.taken`), or "-" where none ran."""
    peaks = [mib for name, mib in memory.get("peak_mib_by_worker", {}).items() if name.startswith(title)]
    return max(peaks) if peaks else "-"


def markdown(results: dict) -> str:
    peers, budget, memory, scaling, pipeline = (results[k] for k in ("peers", "budget", "memory", "scaling", "pipeline"))
    parts = [
        f"Measured {results['date']} on {results['machine']} (`{results['command']}`). "
        "Ratios are the result; absolute figures vary with the machine's load.",
        *[line for n, p in enumerate(peers) for line in _peers(n, p)],
        f"**1d. Ray beside the engine** (plain vLLM on the `tail` workload, alone and with an idle local Ray "
        f"started first; median of {results['ray_beside']['repeats']} runs each, alternating): tokens/s "
        + ", ".join(f"{s} {min(v):,.0f}-{max(v):,.0f}" for s, v in results["ray_beside"]["tokens_per_s"].items())
        + f"; with Ray / alone: **{results['ray_beside']['ratio']:.2f}**.",
        f"**2. Budget cost** ({budget['records']:,} reasoning records, budgets 8-128 tokens; short prompts "
        f"(~{budget['sets']['short']['prompt_tokens'] // budget['records']} tokens) and long ones (documents before the "
        f"question, 512-2,048 tokens, ~{budget['sets']['long']['prompt_tokens'] // budget['records']} on average); "
        f"median of {budget['repeats']} runs each, alternating)",
        _table(["prompts", "case", "output tokens", "seconds (median)", "spread s", "tokens/s", "vs no budget",
                "prefill tokens recomputed"],
               [[prompts, name, c["output_tokens"], c["seconds"], f"{min(c['seconds_runs'])}-{max(c['seconds_runs'])}",
                 c["tokens_per_s"], f"{c['tokens_per_s'] / s['cases']['no budget, same tokens']['tokens_per_s']:.2f}",
                 c["prefill_tokens_recomputed"]]
                for prompts, s in budget["sets"].items() for name, c in s["cases"].items()]),
        "The same records take the two-request client "
        + " and ".join(f"**{s['ratios']['two requests/one pass (time)']:.2f}x** the one-pass time on {p} prompts"
                       for p, s in budget["sets"].items()) + ".",
        *_sweep(results.get("sweep")),
        "**3. Streaming memory** (stand-in engine: no model; batchgen's readers, replicas' actor pool and writers are real)",
        _table(["input records", "driver peak MiB", "driver private peak MiB", "progress actor peak MiB",
                "replica actor peak MiB", "largest Ray worker peak MiB", "first shard written s",
                "input read to the end s", "wall s"],
               [[m["records"], m["driver_peak_mib"], m.get("driver_private_peak_mib", "-"),
                 _worker_peak(m, "ray::Progress"), _worker_peak(m, "ray::MapWorker"),
                 m["worker_peak_mib"], m["first_shard_s"], m["input_read_to_end_s"], m["wall_time_s"]] for m in memory]),
        "**4. Replicas and engine occupancy** (GPU-like STAND-IN engine: continuous batching, a fixed time per "
        "decode step for up to 256 sequences, long-tailed lengths; no model)",
        _table(["replicas", "records", "records/s", "stand-in bound records/s", "efficiency vs 1",
                "occupancy (running / max_num_seqs, until the input ran out)"],
               [[s["replicas"], s["records"], s["records_per_s"], s["ideal_records_per_s"], f"{s['efficiency']:.2f}",
                 f"{s['occupancy']:.2f}"] for s in scaling]),
        f"**5. The pipeline's own cost** (one replica, a stand-in too fast to matter: one-token records; the "
        f"{pipeline['records'][0]:,}-record job's CPU taken from the {pipeline['records'][1]:,}-record job's, "
        "every process but the stand-in counted; templated: the same records made by a prompt section with a "
        "system and a user template and 2 few-shot examples drawn per record; rendering: the blocks decoded "
        "in-process, median of 5)",
        _table(["records given as", "CPU ms per further record", "CPU ms per record, start-up included",
                "records/s (pipeline-bound)", "decode CPU ms per record (in-process)"],
               [[name, pipeline[name]["cpu_ms_per_record"], pipeline[name]["cpu_ms_per_record_all_in"],
                 pipeline[name]["records_per_s"], pipeline["rendering"][key]]
                for name, key in (("plain", "decode_ms_per_record"), ("templated", "templated_decode_ms_per_record"))]),
        *_grading(pipeline.get("grading"), results.get("grading")),
        *_into_table(results.get("table"), results.get("table_commits")),
        *_prefix(results.get("prefix"), results.get("order"), results.get("cache_at_scale")),
    ]
    return "\n\n".join(parts) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0][0]
    width = 0.27
    for n, (system, color) in enumerate(zip(("vllm", "ray-data", "batchgen"), ("grey", "tab:orange", "tab:blue"))):
        values = [p["runs"][n]["tokens_per_s"] / p["runs"][0]["tokens_per_s"] for p in results["peers"]]
        ax.bar([i + (n - 1) * width for i in range(len(values))], values, width, color=color, label=system)
    ax.set_xticks(range(len(results["peers"])), [p["workload"] for p in results["peers"]])
    ax.set(title="1. Tokens/s generating, vs plain vLLM (medians)", ylabel="ratio")
    ax.legend()
    ax = axes[0][1]
    sets = results["budget"]["sets"]
    names = list(sets["short"]["cases"])
    for n, (name, color) in enumerate(zip(names, ("tab:blue", "tab:red", "grey"))):
        ax.bar([i + (n - 1) * width for i in range(len(sets))], [s["cases"][name]["seconds"] for s in sets.values()],
               width, color=color, label=name)
    ax.set_xticks(range(len(sets)), [f"{p} prompts" for p in sets])
    ax.set(title="2. Thinking budgets: seconds for the same records (medians)", ylabel="s")
    ax.legend(fontsize="small")
    memory = results["memory"]
    ax = axes[1][0]
    labels = [f"{m['records']:,}" for m in memory]
    width = 0.38
    ax.bar([i - width / 2 for i in range(len(memory))], [m["driver_peak_mib"] for m in memory], width, label="driver")
    ax.bar([i + width / 2 for i in range(len(memory))], [m["worker_peak_mib"] for m in memory], width, label="worker")
    ax.set_xticks(range(len(memory)), labels)
    ax.set(title="3. Peak memory by input size (stand-in engine)", ylabel="MiB", xlabel="input records")
    ax.legend()
    ax = axes[1][1]
    for run in results["scaling"]:
        times, occupancy = zip(*run["occupancy_over_time"]) if run["occupancy_over_time"] else ((), ())
        ax.plot(times, occupancy, label=f"{run['replicas']} replica(s)")
    ax.set(title="4. Engine occupancy over time (GPU-like stand-in)", xlabel="s since the job started",
           ylabel="running / max_num_seqs", ylim=(0, 1.05))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
