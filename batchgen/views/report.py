"""The HTML report of an output prefix (`batchgen report`): one self-contained page, drawn from the prefix
alone, that says what a job made of its input.

The figures at a glance come from `survey` (state, counts, token totals, `_stats.json`); from the rows the
survey was counted from, this module draws what a survey does not keep: token counts by mode, the
longest records and the error messages; for a graded job, accuracy by thinking budget (with the reasoning
tokens spent), pass@k and majority@k against k, and accuracy by reasoning length. plotly.js is inlined once, so the page opens without a network.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from html import escape
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from batchgen.views.survey import Survey, cache_line, survey_rows

TOP = 10  # rows in each table
MODES = {"on": "#4c6ef5", "off": "#f59f00"}
CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1200px; margin: 2em auto; padding: 0 1em; }
h1 { margin: 0 0 .3em; } h2 { font-size: 1.1em; margin: 0 0 .4em; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: 0 0 1.5em; }
dt { color: #666; } dd { margin: 0; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1em; }
section.wide { grid-column: 1 / -1; }
section { border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; min-width: 0; }
table { border-collapse: collapse; width: 100%; font-size: .92em; }
th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #eee; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td { overflow-wrap: anywhere; } .note { color: #666; font-size: .9em; margin: .4em 0 0; }
"""


def render(uri: str, storage: dict | None = None, judged_by: str | None = None) -> str:
    """The report of the output prefix at `uri` (a local path or fsspec URL; `storage`: fsspec options) as
    one HTML page; `judged_by`: a judge job's output whose verdicts grade the rows (`survey`). Raises
    FileNotFoundError when no batchgen job wrote there."""
    glance, rows = survey_rows(uri, storage, judged_by)  # one read of the rows serves the survey and the charts
    answered = [r for r in rows if r["finish_reason"] != "error"]  # error rows generated nothing to plot
    charts = [
        ("Reasoning tokens per record", _histogram(answered, lambda r: r["reasoning_tokens"], "reasoning tokens")),
        ("Answer tokens per record",
         _histogram(answered, lambda r: r["completion_tokens"] - r["reasoning_tokens"], "answer tokens")),
        ("Finish reasons", _bar(glance.finish_reasons, "finish reason") or "no data: no rows written yet"),
        ("How the reasoning ended",
         _bar(glance.reasoning_ends, "ended by") or "no data: no record answered with reasoning on"),
        ("Errors by code", _bar(glance.errors_by_code, "error code") or "no errors"),
        ("Throughput", _throughput(glance.stats)),
    ]
    if glance.scores:
        charts += [("Accuracy by thinking budget", _accuracy_by_budget(glance.scores)),
                   ("pass@k and majority@k", _at_k(glance.scores[0])),
                   ("Accuracy by reasoning length", _accuracy_by_length(rows))]
    longest = heapq.nlargest(TOP, answered, key=lambda r: r["completion_tokens"])
    failed = [r for r in rows if r["error"]][:TOP]
    sections = [_section(title, _figure(body)) for title, body in charts] + [
        _section("Longest records", wide=True, body=_table(
            ["id", "reasoning", "reasoning tokens", "answer tokens", "finish reason", "budget hit"],
            [[r["id"], r["reasoning"], r["reasoning_tokens"], r["completion_tokens"] - r["reasoning_tokens"],
              r["finish_reason"], "yes" if r["thinking_budget_hit"] else "no"] for r in longest])
            + '<p class="note">By completion tokens; rows hold no timings, so the slowest records cannot be told.</p>'),
        _section(f"Example errors (first {len(failed)} of {glance.errors})" if failed else "Example errors", wide=True,
                 body=_table(["id", "error"], [[r["id"], r["error"]] for r in failed])),
    ]
    drawn = any(isinstance(body, go.Figure) for _, body in charts)
    # Inlined once in the head; every figure is written without it (a page with no chart needs none).
    plotly_js = f"<script>{get_plotlyjs()}</script>" if drawn else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>batchgen report: '
            f'{escape(glance.job)}</title><style>{CSS}</style>{plotly_js}</head>\n<body>{_header(glance)}'
            f'<main>{"".join(sections)}</main></body></html>\n')


def write(uri: str, path: str | Path, storage: dict | None = None, judged_by: str | None = None) -> Path:
    """Writes the report of `uri` to the local file `path` and returns its path."""
    path = Path(path)
    path.write_text(render(uri, storage, judged_by), encoding="utf-8")
    return path


def _header(s: Survey) -> str:
    """The job at a glance: what ran, how far it got, what it counted, and the run's times."""
    total = f"of {s.total:,}" if s.total is not None else "(the input's total is not in _job.json yet)"
    tokens = (f"{s.prompt_tokens:,} prompt, {s.reasoning_tokens:,} reasoning, "
              f"{s.completion_tokens:,} completion (reasoning + answer)")
    files = f"{s.files} data file{'s' if s.files != 1 else ''}"
    items = [("job", s.job), ("model", s.model), ("input", s.input_uri), ("output", s.uri), ("state", s.state),
             ("records", f"{s.done:,} done {total}, in {files}"), ("errors", f"{s.errors:,}"), ("tokens", tokens)]
    if s.stats:
        st = s.stats
        items.append(("run", f"{st['wall_time_s']} s wall time ({st['engine_startup_s']} s engine start-up, "
                             f"{st['generation_time_s']} s generating at {st['generation_tokens_per_s']} tokens/s)"))
        if st.get("prefix_cache"):
            items.append(("prefix cache", cache_line(st["prefix_cache"])))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in items)
    return f"<h1>batchgen report: {escape(s.job)}</h1><dl>{rows}</dl>"


def _histogram(rows: list[dict], value: Callable[[dict], int], axis: str) -> go.Figure | str:
    """A histogram of `value` per row, one trace per reasoning mode, or a line saying there is no data."""
    # Counted first: the page holds one number per distinct value, not one per row.
    counts = {mode: Counter(value(r) for r in rows if r["reasoning"] == mode) for mode in MODES}
    counts = {mode: c for mode, c in counts.items() if c}
    if not counts:
        return "no data: no records were answered yet"
    # Bins set here, shared by the traces: plotly would bin the distinct values, not the records.
    size = _bin_size(max(max(c) for c in counts.values()))
    fig = go.Figure([go.Histogram(x=list(c), y=list(c.values()), histfunc="sum", name=f"reasoning {mode}",
                                  xbins=dict(start=min(0, min(c)), size=size), marker_color=MODES[mode], opacity=0.75)
                     for mode, c in counts.items()])
    tallest = max(max(_binned(c, size).values()) for c in counts.values())
    return _layout(fig, axis, tallest, barmode="overlay")


def _bin_size(top: int) -> int:
    """A round bin width (1, 2, 5, 10, 20, ...) giving at most about 40 bins from 0 to `top`."""
    return next(m * 10**k for k in range(15) for m in (1, 2, 5) if m * 10**k >= (top + 1) / 40)


def _binned(counts: Counter, size: int) -> Counter:
    """`counts` of values as counts per bin of `size` (keyed by bin number)."""
    binned = Counter()
    for value, n in counts.items():
        binned[value // size] += n
    return binned


def _accuracy_by_budget(scores: list[dict]) -> go.Figure | str:
    """A graded job's accuracy per thinking budget, a line per reasoning mode, with the mean reasoning
    tokens of each budget's rows (dashed, right axis). Budgets are categories in order, "none" last."""
    groups = [g for g in scores if g["reasoning"] in MODES and g["rows"]]
    if not groups:
        return "no data: no graded rows yet"
    budgets = sorted({g["max_thinking_tokens"] for g in groups}, key=lambda b: (b is None, b or 0))
    label = {b: "none" if b is None else str(b) for b in budgets}
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for mode in MODES:
        mine = sorted((g for g in groups if g["reasoning"] == mode), key=lambda g: budgets.index(g["max_thinking_tokens"]))
        if not mine:
            continue
        x = [label[g["max_thinking_tokens"]] for g in mine]
        fig.add_trace(go.Scatter(x=x, y=[g["accuracy"] for g in mine], name=f"accuracy, reasoning {mode}",
                                 mode="lines+markers", line=dict(color=MODES[mode])), secondary_y=False)
        fig.add_trace(go.Scatter(x=x, y=[g["mean_reasoning_tokens"] for g in mine], mode="lines+markers",
                                 name=f"reasoning tokens, {mode}", line=dict(color=MODES[mode], dash="dot")),
                      secondary_y=True)
    _layout(fig, "max_thinking_tokens", yaxis_title="accuracy")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=[label[b] for b in budgets])
    fig.update_yaxes(range=[0, 1.02], secondary_y=False)
    return fig.update_yaxes(title_text="mean reasoning tokens a row", secondary_y=True, rangemode="tozero")


def _at_k(overall: dict) -> go.Figure | str:
    """pass@k and majority@k against k over every graded row (one point at k=1 without samples)."""
    if not overall["pass_at_k"]:
        return "no data: no graded rows yet"
    ks = sorted(int(k) for k in overall["pass_at_k"])
    fig = go.Figure([go.Scatter(x=ks, y=[overall[key][str(k)] for k in ks], name=name, mode="lines+markers",
                                line=dict(color=colour))
                     for key, name, colour in [("pass_at_k", "pass@k", "#4c6ef5"), ("majority_at_k", "majority@k", "#f59f00")]])
    _layout(fig, "k (samples)", yaxis_title="share of records")
    return fig.update_yaxes(range=[0, 1.02]).update_xaxes(dtick=1)


def _accuracy_by_length(rows: list[dict]) -> go.Figure | str:
    """The share of correct rows among the graded answers, by reasoning tokens (bins as the histograms'),
    a line per mode with reasoning; the rows each bin holds as hover text."""
    graded = [r for r in rows if r["correct"] is not None and r["reasoning"] == "on"]
    if not graded:
        return "no data: no graded rows with reasoning on"
    size = _bin_size(max(r["reasoning_tokens"] for r in graded))
    bins: dict[int, list[bool]] = {}
    for r in graded:
        bins.setdefault(r["reasoning_tokens"] // size, []).append(r["correct"])
    keys = sorted(bins)
    fig = go.Figure(go.Scatter(x=[k * size for k in keys], y=[sum(bins[k]) / len(bins[k]) for k in keys],
                               text=[f"{len(bins[k])} rows" for k in keys], mode="lines+markers",
                               name="reasoning on", line=dict(color=MODES["on"])))
    _layout(fig, f"reasoning tokens (bins of {size})", yaxis_title="accuracy")
    return fig.update_yaxes(range=[0, 1.02])


def _bar(counts: dict[str, int], axis: str) -> go.Figure | None:
    """A bar per key of `counts`, or None when there are none."""
    if not counts:
        return None
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), text=list(counts.values()),
                           marker_color="#5c7cfa"))
    return _layout(fig, axis, max(counts.values()))


def _throughput(stats: dict | None) -> go.Figure | str:
    """The run's seconds split into engine start-up and generation, or why there are none to show."""
    if not stats:
        return "no _stats.json: the job has not finished a run (still running, or killed)"
    fig = go.Figure([go.Bar(y=[""], x=[stats[key]], name=f"{name}: {stats[key]} s", orientation="h",
                            marker_color=colour)
                     for key, name, colour in [("engine_startup_s", "engine start-up", "#adb5bd"),
                                               ("generation_time_s", "generation", "#4c6ef5")]])
    _layout(fig, "seconds", barmode="stack", height=230, legend=dict(orientation="h", y=-0.6, traceorder="normal"),
            title=f"{stats['generation_tokens_per_s']} tokens/s generating", margin=dict(l=20, r=20, t=50, b=40))
    return fig.update_yaxes(title=None, showticklabels=False)


def _layout(fig: go.Figure, axis: str, tallest: int | None = None, height: int = 320, **layout) -> go.Figure:
    """The look every chart shares; `tallest`: the highest count on a y axis of records."""
    fig.update_layout(**{"template": "plotly_white", "height": height, "margin": dict(l=50, r=20, t=30, b=45),
                         "xaxis_title": axis, "yaxis_title": "records", "legend": dict(orientation="h", y=1.15),
                         **layout})
    if tallest is not None and tallest < 6:
        fig.update_yaxes(dtick=1)  # records are whole: no 0.2 steps
    return fig


def _figure(body: go.Figure | str) -> str:
    """A chart's HTML (plotly.js is in the page's head), or its text when there was nothing to draw."""
    if isinstance(body, go.Figure):
        return body.to_html(full_html=False, include_plotlyjs=False,
                            config={"displaylogo": False, "responsive": True})
    return f'<p class="note">{escape(body)}</p>'


def _section(title: str, body: str, wide: bool = False) -> str:
    """A titled box of the page; `wide` ones take a whole row of the grid."""
    return f'<section{" class=wide" if wide else ""}><h2>{escape(title)}</h2>{body}</section>'


def _table(headers: list[str], rows: list[list]) -> str:
    """An HTML table of `rows`, every value escaped; numbers right-aligned."""
    if not rows:
        return '<p class="note">none</p>'
    numeric = [all(isinstance(r[i], int) and not isinstance(r[i], bool) for r in rows) for i in range(len(headers))]

    def cells(values: list, tag: str) -> str:
        return "".join(f'<{tag}{" class=n" if numeric[i] else ""}>{escape(str(v if v is not None else "-"))}</{tag}>'
                       for i, v in enumerate(values))

    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    return f"<table><thead><tr>{cells(headers, 'th')}</tr></thead><tbody>{body}</tbody></table>"
