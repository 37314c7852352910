"""The prefix benchmark's figures (`python -m benchmarks.scale prefix`): a PNG comparing the job in input
order and scheduled (records done and prefill tokens computed over time, and the totals), and a few lines
of Markdown. Both read the dict the benchmark prints.
"""

from __future__ import annotations

from pathlib import Path

ORDERS = (("input", "tab:orange"), ("scheduled", "tab:blue"))


def chart(result: dict, path: Path) -> Path:
    """Three panels: records done over time, prefill tokens computed over time (all replicas), and the
    prefill tokens each order computed in all, with its hit rate and generation time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, (done, computed, totals) = plt.subplots(1, 3, figsize=(15, 4.5))
    for order, color in ORDERS:
        total = runs[order]["timeline"]["total"]
        times = [p[0] for p in total]
        done.plot(times, [p[1] for p in total], color=color, label=order)
        computed.plot(times, [p[2] / 1e6 for p in total], color=color, label=order)
    done.set(title="records done", xlabel="seconds since the job started", ylabel="records")
    computed.set(title="prefill tokens computed (all replicas)", xlabel="seconds since the job started",
                 ylabel="million tokens")
    for ax in (done, computed):
        ax.legend()
        ax.grid(alpha=0.3)
    values = [runs[order]["prefill_tokens_computed"] / 1e6 for order, _ in ORDERS]
    bars = totals.bar([order for order, _ in ORDERS], values, color=[color for _, color in ORDERS])
    for bar, (order, _) in zip(bars, ORDERS):
        run = runs[order]
        totals.annotate(f"hit rate {run['hit_rate']:.0%}\n{run['generation_time_s']:.0f} s generating",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=9)
    totals.set(title="prefill tokens computed, in all", ylabel="million tokens", ylim=(0, max(values) * 1.25))
    fig.suptitle(f"Prefix cache: {result['records']:,} records over {result['documents']} documents of "
                 f"~{result['document_tokens']:,} tokens, {result['replicas']} stand-in replicas each caching "
                 f"~{result['documents_cached']} documents ({result['cache_blocks']} KV blocks)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_lines(result: dict) -> list[str]:
    """A title, a table of the two orders (one string), and the ratios."""
    runs, ratios = result["runs"], result["scheduled/input"]
    header = ["order", "wall s", "generation s", "records/s", "prefill tokens computed", "hit rate", "mean running"]
    rows = [[order, r["wall_time_s"], r["generation_time_s"], r["records_per_s"], f"{r['prefill_tokens_computed']:,}",
             f"{r['hit_rate']:.1%}", r["mean_running"]] for order, r in ((o, runs[o]) for o, _ in ORDERS)]
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
                      + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows])
    return [
        f"**Prefix cache, input order vs scheduled** ({result['records']:,} questions in random order over "
        f"{result['documents']} documents of ~{result['document_tokens']:,} tokens, max_tokens {result['max_tokens']}; "
        f"{result['replicas']} stand-in replicas, each caching ~{result['documents_cached']} documents "
        f"({result['cache_blocks']} KV blocks, the running records' own included), max_num_seqs "
        f"{result['max_num_seqs']}, a {result['step_s'] * 1000:g} ms decode step, a document's prefill "
        f"{result['document_prefill_s'] * 1000:.0f} ms)",
        table,
        f"Scheduled takes **{ratios['generation_time']:.2f}x** input order's generation time "
        f"({ratios['wall_time']:.2f}x wall) and computes **{ratios['prefill_tokens_computed']:.2f}x** its prefill tokens.",
    ]
