"""The benchmark results as Markdown tables and one PNG chart (matplotlib), from results.json's dict."""

from __future__ import annotations

from pathlib import Path


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(results: dict) -> str:
    peers, budget, memory, scaling = (results[k] for k in ("peers", "budget", "memory", "scaling"))
    ceiling = peers["runs"][0]["tokens_per_s"]
    parts = [
        f"Measured {results['date']} on {results['machine']}, one run (`{results['command']}`). "
        "Ratios are the result; absolute figures vary with the machine's load.",
        f"**1. Engine ceiling and peer** ({peers['runs'][0]['records']:,} greedy prompts, max_tokens "
        f"{peers['max_tokens_range'][0]}-{peers['max_tokens_range'][1]}, same engine and arguments)",
        _table(["system", "output tokens", "tokens/s generating", "vs vLLM", "wall s (with start-up)", "start-up s",
                "CPU s: engine / the rest"],
               [[p["system"], p["output_tokens"], p["tokens_per_s"], f"{p['tokens_per_s'] / ceiling:.2f}",
                 p["wall_time_s"], p["startup_s"], f"{p['cpu_s_engine']} / {p['cpu_s_other']}"] for p in peers["runs"]]),
        f"batchgen / ray.data.llm: {peers['ratios']['batchgen/ray.data.llm']:.2f} (tokens/s generating), "
        f"{peers['ratios']['wall batchgen/ray.data.llm']:.2f} (wall time).",
        f"**2. Budget cost** ({budget['records']:,} reasoning records, budgets 8-128 tokens, one engine)",
        _table(["case", "output tokens", "tokens/s", "vs no budget", "prefill tokens recomputed"],
               [[name, c["output_tokens"], c["tokens_per_s"], f"{c['tokens_per_s'] / budget['reference_tokens_per_s']:.2f}",
                 c["prefill_tokens_recomputed"]] for name, c in budget["cases"].items()]),
        "**3. Streaming memory** (stand-in engine: no model; batchgen's readers, replicas' actor pool and writers are real)",
        _table(["input records", "driver peak MiB", "worker peak MiB", "first shard written s",
                "input read to the end s", "wall s"],
               [[m["records"], m["driver_peak_mib"], m["worker_peak_mib"], m["first_shard_s"], m["input_read_to_end_s"],
                 m["wall_time_s"]] for m in memory]),
        "**4. Replica scaling** (stand-in engine sleeping a fixed time per token, no CPU)",
        _table(["replicas", "records/s", "stand-in bound records/s", "speed-up", "efficiency",
                "tail s (last replica done - first)"],
               [[s["replicas"], s["records_per_s"], s["ideal_records_per_s"], f"{s['speedup']:.2f}",
                 f"{s['efficiency']:.2f}", s["tail_s"]] for s in scaling]),
    ]
    return "\n\n".join(parts) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    peers = results["peers"]["runs"]
    ax = axes[0][0]
    ax.bar([p["system"] for p in peers], [p["tokens_per_s"] for p in peers], color=["grey", "tab:orange", "tab:blue"])
    ax.set(title="1. Output tokens/s while generating", ylabel="tokens/s")
    cases = results["budget"]["cases"]
    ax = axes[0][1]
    ax.bar([n.replace(", ", ",\n").replace("two-request", "two-\nrequest") for n in cases],
           [c["tokens_per_s"] for c in cases.values()], color=["tab:blue", "tab:red", "grey"])
    ax.set(title="2. Thinking budgets: tokens/s", ylabel="tokens/s")
    memory = results["memory"]
    ax = axes[1][0]
    labels = [f"{m['records']:,}" for m in memory]
    width = 0.38
    ax.bar([i - width / 2 for i in range(len(memory))], [m["driver_peak_mib"] for m in memory], width, label="driver")
    ax.bar([i + width / 2 for i in range(len(memory))], [m["worker_peak_mib"] for m in memory], width, label="worker")
    ax.set_xticks(range(len(memory)), labels)
    ax.set(title="3. Peak memory by input size (stand-in engine)", ylabel="MiB", xlabel="input records")
    ax.legend()
    scaling = results["scaling"]
    ax = axes[1][1]
    counts = [s["replicas"] for s in scaling]
    ax.plot(counts, [s["speedup"] for s in scaling], "o-", label="measured")
    ax.plot(counts, counts, "--", color="grey", label="linear")
    ax.set(title="4. Replica scaling (stand-in engine)", xlabel="replicas", ylabel="speed-up over 1 replica")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
