"""What a job counts (pure logic): the running tally and its early-stop verdict, and the job's stats as
written to `_stats.json`.

The tally is what the replicas report as they go (retried work may count twice: it is for progress and
the early stop only). The stats are counted from the data files the job wrote, so they are exact.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa


@dataclass
class Tally:
    """Records, their rows, error rows and generated tokens so far; `verdict` says why the job must stop
    early, once the share of error rows passed `max_fraction` after at least `min_records` records (the
    spec's `errors`; the same share `JobStats.failed_share` judges at the end)."""

    max_fraction: float
    min_records: int
    records: int = 0
    errors: int = 0  # rows with an error
    rows: int = 0
    completion_tokens: int = 0
    verdict: str = ""
    first_ready: float | None = None  # wall clock (s) when the first replica was ready
    # replica name -> its engine's counters so far (`Replica.engine_tokens`: prefill, cached, decode tokens)
    engines: dict[str, dict] = field(default_factory=dict)

    def add(self, records: int, rows: int, errors: int, completion_tokens: int) -> str:
        self.records += records
        self.rows += rows
        self.errors += errors
        self.completion_tokens += completion_tokens
        if not self.verdict and self.records >= self.min_records and self.errors > self.max_fraction * self.rows:
            self.verdict = (f"stopped early: {self.errors} of the first {self.rows} rows failed, "
                            f"more than errors.max_fraction {self.max_fraction}")
        return self.verdict

    def ready(self, at: float) -> None:
        self.first_ready = min(at, self.first_ready or at)


@dataclass
class RowCounts:
    """Counts over output rows: rows, errors by code, token totals."""

    rows: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    COLUMNS = ("error", "prompt_tokens", "completion_tokens", "reasoning_tokens")

    @classmethod
    def of(cls, batches: Iterable[pa.RecordBatch | pa.Table]) -> RowCounts:
        """From batches holding at least `COLUMNS`."""
        counts, errors = cls(), Counter()
        for batch in batches:
            counts.rows += batch.num_rows
            for name in cls.COLUMNS[1:]:
                setattr(counts, name, getattr(counts, name) + sum(v or 0 for v in batch.column(name).to_pylist()))
            errors.update(e.split(":", 1)[0] for e in batch.column("error").to_pylist() if e)
        counts.errors_by_code = dict(sorted(errors.items()))
        return counts

    @property
    def errors(self) -> int:
        return sum(self.errors_by_code.values())


@dataclass
class JobStats:
    """`_stats.json`: the output's counts, and this run's times (s) and throughput (tokens/s)."""

    job: str
    model: str
    input_files: int
    records: int  # input records with rows
    ok: int  # rows with no error (a record with n samples has n rows)
    errors: int  # rows with an error
    errors_by_code: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    files: int
    skipped_already_done: int  # input records an earlier run had committed (the checkpoint's distinct ids)
    wall_time_s: float
    tokens_per_s: float
    engine_startup_s: float  # from the start of the run to the first replica ready
    generation_time_s: float  # from the first replica ready to the end
    generation_tokens_per_s: float  # tokens generated in this run over generation_time_s
    already_complete: bool = False  # true only in what `run` returns for a job that had nothing to do
    rows: int = 0  # rows written: records, or more where records asked for n samples
    # output.format iceberg: the table, and this run's commits into it (snapshot id, files, rows, seconds)
    table: dict | None = None
    # this run's prompt tokens and those vLLM found in its prefix cache, over all replicas and per replica
    # (`prefix_cache`); None where the replicas keep no counters (a stand-in engine)
    prefix_cache: dict | None = None

    @classmethod
    def build(cls, *, job: str, model: str, input_files: int, files: int, counts: RowCounts, records: int,
              skipped: int, started: float, first_ready: float | None, generated_tokens: int, now: float) -> JobStats:
        """`counts`: over the rows written; `records`: how many input records they are the rows of."""
        wall = now - started
        first_ready = first_ready or now
        generation = now - first_ready
        return cls(
            job=job, model=model, input_files=input_files, records=records, rows=counts.rows,
            ok=counts.rows - counts.errors,
            errors=counts.errors, errors_by_code=counts.errors_by_code, prompt_tokens=counts.prompt_tokens,
            completion_tokens=counts.completion_tokens, reasoning_tokens=counts.reasoning_tokens, files=files,
            skipped_already_done=skipped, wall_time_s=round(wall, 2),
            tokens_per_s=round(counts.completion_tokens / wall, 1) if wall > 0 else 0.0,
            engine_startup_s=round(first_ready - started, 2), generation_time_s=round(generation, 2),
            generation_tokens_per_s=round(generated_tokens / generation, 1) if generation > 0 else 0.0,
        )

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("already_complete")
        return data

    @classmethod
    def from_json(cls, data: dict) -> JobStats:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def failed_share(self, max_fraction: float) -> str | None:
        """Why the job must not count as a success (too many failed records), or None."""
        rows = self.rows or self.records  # stats written before `rows` existed: one row per record
        if rows and self.errors / rows > max_fraction:
            return (f"{self.errors} of {rows} rows failed, more than errors.max_fraction "
                    f"{max_fraction}: {self.errors_by_code}")
        return None


def prefix_cache(engines: dict[str, dict]) -> dict | None:
    """The prefix cache's work from the replicas' engine counters (`Tally.engines`: per replica, `prefill`
    prompt tokens and `cached` of them found in vLLM's prefix cache): `prompt_tokens`, `cached_tokens`
    (OpenAI's name for the same count), `prefill_tokens_computed` (prompt tokens the engines had to compute),
    `hit_rate` (cached over prompt tokens, 0-1), and the same per replica, by name. None without counters.
    Counted per engine request: a budget sweep's forks count their prompts, kept reasoning included."""
    def of(counts: dict) -> dict:
        prompt, cached = counts.get("prefill", 0), counts.get("cached", 0)
        return {"prompt_tokens": prompt, "cached_tokens": cached, "prefill_tokens_computed": prompt - cached,
                "hit_rate": round(cached / prompt, 4) if prompt else 0.0}

    if not engines:
        return None
    total = of({k: sum(c.get(k, 0) for c in engines.values()) for k in ("prefill", "cached")})
    return {**total, "replicas": [{"replica": name, **of(counts)} for name, counts in sorted(engines.items())]}
