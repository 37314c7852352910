"""What an output prefix holds, read from the prefix alone (no spec, no Ray): the job that wrote it, how far
it got, and what came out; for a job into a lake table, what the table holds of it, read from the table.
`batchgen inspect` prints it; `batchgen report` draws it.

Everything is counted from the data files as they are, so a half-finished (killed) job is surveyed as
well as a finished one; the total comes from the manifest, where the job wrote its input's record count
after its scan.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from batchgen.core.prefix import STATS_FILE, SUCCESS_FILE, OutputPrefix
from batchgen.core.scores import JUDGE_KEY, judged, scores
from batchgen.core.failures import root_cause
from batchgen.core.stats import RowCounts
from batchgen.lake.iceberg import IcebergTable, committed_by_jobs
from batchgen.spec.job import TableSpec
from batchgen.record.sweep import sweep_order

# The row columns a survey reads (never the texts: a survey of a million rows reads a few MB).
COLUMNS = ["id", "reasoning", "finish_reason", "thinking_budget_hit", "reasoning_end", "prompt_tokens",
           "reasoning_tokens", "completion_tokens", "error", "max_thinking_tokens", "sample_index", "extracted_answer",
           "correct", "ungraded_reason"]
EXAMPLES = 3  # example ids kept per error code
PERCENTILES = (0.5, 0.9, 0.99)


@dataclass
class Survey:
    """An output prefix at a glance. `state`: "complete" (`_SUCCESS`), "stopped" (the job ended without
    success: an early stop or too many failed records; `_stats.json` says which), "partial" (killed, or
    still running). Any state but complete resumes when the job runs again with the same spec. Token
    figures are in tokens; `reasoning_tokens_percentiles` is over the rows with reasoning on."""

    uri: str
    job: str
    fingerprint: str
    model: str
    input_uri: str
    state: str
    done: int  # records with rows in the data files
    rows: int  # rows in the data files (a record with n samples has n)
    committed: int  # records Ray Data's checkpoint committed: what a resume keeps (a killed job's last data file
    # may not be among them yet; a resume deletes and redoes it)
    total: int | None  # input records (None: the job was stopped before its scan ended)
    files: int
    errors: int
    errors_by_code: dict[str, int]
    error_examples: dict[str, list[str]]
    finish_reasons: dict[str, int]
    reasoning_modes: dict[str, int]
    reasoning_ends: dict[str, int]
    budget_hits: int
    prompt_tokens: int
    reasoning_tokens: int
    completion_tokens: int
    reasoning_tokens_percentiles: dict[str, int] = field(default_factory=dict)
    # Where rows ran at more than one thinking budget (a sweep): per budget ("none": no budget) its rows,
    # the reasoning tokens' percentiles over its rows with reasoning on, and its budget hits.
    by_budget: dict[str, dict] = field(default_factory=dict)
    stats: dict | None = None  # `_stats.json`, when a run got as far as writing it
    # A graded job's figures (`batchgen.core.scores`): every row ("all"), then per reasoning mode and budget;
    # [] when the job does not grade.
    scores: list[dict] = field(default_factory=list)
    judged_by: str | None = None  # the judge job's output whose verdicts graded the rows
    # output.format iceberg: the table, and what this output committed into it (`lake.iceberg.committed_by_jobs`:
    # rows, snapshots, the last one's id and time), or why the catalog could not say (`error`)
    table: dict | None = None

    @property
    def resumable(self) -> bool:
        return self.state != "complete"

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "resumable": self.resumable}


def survey(uri: str, storage: dict | None = None, judged_by: str | None = None) -> Survey:
    """Surveys `uri` (a local path or an fsspec URL; `storage`: fsspec options such as `endpoint_url`);
    `judged_by`: the output of a judge job chained onto it (`grade.compare: verdict`), whose verdicts grade
    its rows. Raises FileNotFoundError when no batchgen job wrote there."""
    return survey_rows(uri, storage, judged_by)[0]


def survey_rows(uri: str, storage: dict | None = None, judged_by: str | None = None) -> tuple[Survey, list[dict]]:
    """The survey and the rows it was counted from (their `COLUMNS`; graded by the judge's verdicts with
    `judged_by`), for what draws them (`report`)."""
    prefix = OutputPrefix(uri, storage)
    manifest = prefix.read_manifest()
    if manifest is None:
        raise FileNotFoundError(f"{uri}: no batchgen output here (no _job.json); give the output.uri of a job")
    stats = prefix.read_stats().to_json() if prefix.has(STATS_FILE) else None
    # A stats file from an earlier run says nothing of a later one that was killed: it only marks a stop
    # when no data file is newer than it.
    state = "complete"
    files = prefix.data_files()
    if not prefix.has(SUCCESS_FILE):
        state = "stopped" if stats is not None and _stats_is_last(prefix, files) else "partial"
    table = prefix.read(COLUMNS, files)
    rows = table.to_pylist()
    if judged_by is not None:
        rows = judged(rows, _verdicts(judged_by, storage, uri))
    done = pc.count_distinct(table.column("id")).as_py()
    spec = manifest["spec"]
    found = Survey(
        uri=uri, job=spec["name"], fingerprint=manifest["fingerprint"], model=spec["model"]["path"],
        input_uri=spec["input"]["uri"], state=state, done=done, rows=table.num_rows, committed=prefix.committed_records(),
        # a complete output holds rows of every input record, whether or not its job wrote the count
        total=manifest.get("records", done if state == "complete" else None),
        files=len(files), stats=stats, **_tally(table),
        scores=[g.as_dict() for g in scores(rows)] if spec.get("grade") or judged_by else [],
        judged_by=judged_by, table=_table_of(spec, prefix, storage),
    )
    return found, rows


def _table_of(spec: dict, prefix: OutputPrefix, storage: dict | None) -> dict | None:
    """What the output committed into its table (format iceberg), read from the table itself; None for
    other formats."""
    table = spec["output"].get("table")
    if spec["output"]["format"] != "iceberg" or not table:
        return None
    found = {"identifier": table["identifier"]}
    try:
        lake = IcebergTable(TableSpec.model_validate({k: table[k] for k in ("identifier", "catalog", "catalog_name")}),
                            storage or spec.get("storage"))
        mine = [j for j in committed_by_jobs(lake.load()) if j["output"].rstrip("/") == prefix.url(prefix.path)]
    except Exception as error:  # a catalog out of reach: the prefix's survey stands on its own
        return found | {"error": root_cause(error)}
    return found | (mine[0] if mine else {"rows": 0, "snapshots": 0})


def _verdicts(uri: str, storage: dict | None, judged: str) -> list[dict]:
    """A judge job's verdict rows. Raises FileNotFoundError unless `uri` is the output of a job that grades
    verdicts (`grade.compare: verdict`) over a chained input."""
    judge = OutputPrefix(uri, storage)
    manifest = judge.read_manifest()
    grade = ((manifest or {}).get("spec") or {}).get("grade") or {}
    if grade.get("compare") != "verdict":
        raise FileNotFoundError(f"--judged-by {uri}: not the output of a judge job (its spec has no grade section "
                                f"with compare: verdict)")
    rows = judge.read([*JUDGE_KEY, "correct", "ungraded_reason"]).to_pylist()
    if rows and JUDGE_KEY[0] not in rows[0]:
        raise FileNotFoundError(f"--judged-by {uri}: its rows have no {JUDGE_KEY[0]}: its input was not {judged}")
    return rows


def _scores_line(group: dict) -> str:
    """One group's figures: `all: accuracy 0.750 (3 of 4 rows, 1 left out), pass@1 0.750, pass@2 1.000,
    maj@2 1.000, reasoning 45 tokens a row`."""
    mode = group["reasoning"] or "not run"
    name = mode if group["max_thinking_tokens"] is None else f"{mode} @{group['max_thinking_tokens']}"
    if not group["rows"]:
        return f"{name}: nothing graded ({group['rows_left_out']:,} rows left out)"
    ks = sorted(int(k) for k in group["pass_at_k"])
    shown = sorted({1, ks[-1]} | ({4, 8, 16, 32, 64} & set(ks)))
    return (f"{name}: accuracy {group['accuracy']:.3f} ({group['correct']:,} of {group['rows']:,} rows"
            + (f", {group['rows_left_out']:,} left out" if group["rows_left_out"] else "") + "), "
            + ", ".join(f"pass@{k} {group['pass_at_k'][str(k)]:.3f}" for k in shown) + ", "
            + ", ".join(f"maj@{k} {group['majority_at_k'][str(k)]:.3f}" for k in shown if k > 1 or len(shown) == 1)
            + f", reasoning {group['mean_reasoning_tokens']:,.0f} tokens a row")


def _stats_is_last(prefix: OutputPrefix, files: list[str]) -> bool:
    stamps = [prefix.fs.modified(f) for f in files]
    return not stamps or prefix.fs.modified(f"{prefix.path}/{STATS_FILE}") >= max(stamps)


def percentiles_of(values: list[int]) -> dict[str, int]:
    """{"p50": .., "p90": .., "p99": .., "max": ..} by nearest rank; {} for no values."""
    if not values:
        return {}
    ordered = sorted(values)
    # nearest rank: the smallest value with at least q of the values at or below it
    ranks = {f"p{round(q * 100)}": ordered[max(0, math.ceil(q * len(ordered)) - 1)] for q in PERCENTILES}
    return {k: int(v) for k, v in ranks.items()} | {"max": int(ordered[-1])}


def _tally(table: pa.Table) -> dict:
    """The counts of a survey over its rows (the `COLUMNS` of every row written)."""
    rows, counts = table.to_pylist(), RowCounts.of([table])
    examples = defaultdict(list)
    for row in rows:
        code = row["error"].split(":", 1)[0] if row["error"] else None
        if code and len(examples[code]) < EXAMPLES:
            examples[code].append(row["id"])
    ends = Counter(r["reasoning_end"] for r in rows if r["reasoning_end"])
    percentiles = percentiles_of([r["reasoning_tokens"] for r in rows if r["reasoning"] == "on"])
    return dict(
        errors=counts.errors, errors_by_code=counts.errors_by_code, error_examples=dict(sorted(examples.items())),
        finish_reasons=dict(sorted(Counter(r["finish_reason"] for r in rows).items())),
        reasoning_modes=dict(sorted(Counter(r["reasoning"] or "none (error)" for r in rows).items())),
        reasoning_ends=dict(sorted(ends.items())),
        budget_hits=sum(bool(r["thinking_budget_hit"]) for r in rows),
        prompt_tokens=counts.prompt_tokens, reasoning_tokens=counts.reasoning_tokens,
        completion_tokens=counts.completion_tokens,
        reasoning_tokens_percentiles=percentiles,
        by_budget=_by_budget(rows),
    )


def _by_budget(rows: list[dict]) -> dict[str, dict]:
    groups = defaultdict(list)
    for row in rows:
        if row["finish_reason"] != "error":  # answers; a record that could not run has no budget to count
            groups[row.get("max_thinking_tokens")].append(row)
    if len(groups) < 2:
        return {}
    return {("none" if b is None else str(b)): {
        "rows": len(groups[b]), "budget_hits": sum(bool(r["thinking_budget_hit"]) for r in groups[b]),
        "reasoning_tokens_percentiles": percentiles_of([r["reasoning_tokens"] for r in groups[b] if r["reasoning"] == "on"]),
    } for b in sweep_order(list(groups))}


def cache_line(cache: dict) -> str:
    """The last run's prefix cache in a line (`core.stats.prefix_cache`): the share of prompt tokens the
    engines found cached, what they computed, and each replica's share when there are several."""
    line = (f"{cache['hit_rate']:.1%} of {cache['prompt_tokens']:,} prompt tokens found in the prefix cache, "
            f"{cache['prefill_tokens_computed']:,} computed")
    replicas = cache.get("replicas") or []
    if len(replicas) > 1:
        line += "; by replica " + ", ".join(f"{r['hit_rate']:.1%} of {r['prompt_tokens']:,}" for r in replicas)
    return line


def describe(found: Survey) -> str:
    """The survey as `batchgen inspect` prints it: a few aligned lines, the counts grouped."""
    def counts(mapping: dict) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in mapping.items()) or "none"

    total = f"{found.total:,}" if found.total is not None else "? (not counted yet)"
    lines = [
        f"{found.job}  model {found.model}  spec fingerprint {found.fingerprint}",
        f"  input      {found.input_uri}",
        f"  output     {found.uri}: {found.state}, {found.done:,} of {total} records"
        + (f" ({found.rows:,} rows: samples or budgets)" if found.rows != found.done else "") + f" in {found.files} files"
        + (f" ({found.committed:,} committed: a resume keeps those, and redoes the rest)"
           if found.state != "complete" and found.committed != found.done else ""),
        "  errors     " + (", ".join(f"{code} {n:,} (e.g. {', '.join(found.error_examples[code])})"
                                   for code, n in found.errors_by_code.items()) or "none"),
        f"  tokens     prompt {found.prompt_tokens:,}, reasoning {found.reasoning_tokens:,}, "
        f"completion {found.completion_tokens:,}",
        "  reasoning  " + (", ".join(f"{k} {v:,}" for k, v in found.reasoning_tokens_percentiles.items())
                           + " tokens (rows with reasoning on)" if found.reasoning_tokens_percentiles else "no rows with reasoning on"),
        f"  modes      {counts(found.reasoning_modes)}",
        f"  ended by   {counts(found.reasoning_ends)}; thinking budget hit {found.budget_hits:,}",
        f"  finish     {counts(found.finish_reasons)}",
    ]
    if found.by_budget:
        lines.append("  by budget  " + "; ".join(
            f"{budget}: {g['rows']:,} rows, reasoning p50 {g['reasoning_tokens_percentiles'].get('p50', 0):,}, "
            f"budget hit {g['budget_hits']:,}" for budget, g in found.by_budget.items()))
    for group in found.scores:
        lines.append(f"  {'graded' if group['reasoning'] == 'all' else '':<10} " + _scores_line(group))
    if found.judged_by and found.scores:
        lines.append(f"  {'':<10} (verdicts of the judge job in {found.judged_by})")
    if found.table:
        table = found.table
        lines.append(f"  table      {table['identifier']}: " + (
            f"not read ({table['error']})" if "error" in table else
            f"{table['rows']:,} rows of this output in {table['snapshots']} commit{'' if table['snapshots'] == 1 else 's'}"
            + (f", the last snapshot {table['last_snapshot_id']} at "
               f"{datetime.datetime.fromtimestamp(table['last_at_ms'] / 1000, datetime.UTC):%Y-%m-%d %H:%M:%S} UTC"
               if table["snapshots"] else "")))
    if found.stats:
        stats = found.stats
        lines.append(f"  last run   {stats['wall_time_s']:.1f} s (engine start-up {stats['engine_startup_s']:.1f} s), "
                     f"{stats['generation_tokens_per_s']:,.1f} tokens/s generating")
        if stats.get("prefix_cache"):
            lines.append(f"  cache      {cache_line(stats['prefix_cache'])}")
    if found.resumable:
        lines.append("  to finish  run the same job spec again onto this output: finished records are skipped")
    return "\n".join(lines)
