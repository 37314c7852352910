"""A graded job's figures, from its rows: accuracy, pass@k and majority@k, per reasoning mode and thinking
budget (`Scores`). Computed from the committed rows alone, so they are the same whether the job ran once
or was killed and resumed.

Definitions (the README's "Grading"):
- A row counts when its record can be graded: it has a reference the comparison can read (or, judged, a
  verdict). Rows whose grade is null for `no_reference`, `bad_reference` or `no_verdict` are left out; every other row that is not correct
  (error rows, `no_answer`, `timeout`, wrong answers, answers cut by `max_tokens`) counts as incorrect.
- accuracy: correct rows / counted rows (every sample of every record).
- pass@k: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on Code",
  eq. 1), 1 - C(n-c, k) / C(n, k) for a record with n counted samples of which c are correct, averaged
  over the records with n >= k.
- majority@k: a record's first k samples (by `sample_index`) vote with their extracted answers (in the
  exact comparison's normal form); the most frequent wins, a tie going to the answer that came first; the
  record scores 1 when the winning answer's first row is correct. Averaged over the records with n >= k;
  a record whose k samples extracted nothing scores 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from batchgen.record.grading import UNGRADED, normalized


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of k samples drawn without replacement from n, c of them correct, is
    correct: 1 - C(n-c, k)/C(n, k), as the product form of Chen et al. 2021 (no large binomials).
    Raises ValueError unless 0 <= c <= n and 1 <= k <= n."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    missed = 1.0
    for i in range(n - c + 1, n + 1):
        missed *= 1.0 - k / i
    return 1.0 - missed


def majority_at_k(samples: list[tuple[str | None, bool]], k: int) -> float:
    """majority@k of one record: `samples` are (extracted answer, correct) in sample order; 1.0 when the
    most frequent answer of the first k (normalised; a tie to the one seen first) is correct, else 0.0."""
    votes: dict[str, list] = {}
    for answer, correct in samples[:k]:
        if answer is not None:
            votes.setdefault(normalized(answer), [0, correct])[0] += 1
    if not votes:
        return 0.0
    best = max(votes.values(), key=lambda vote: vote[0])  # max keeps the first of equals: the earliest answer
    return 1.0 if best[1] else 0.0


@dataclass
class GroupScores:
    """One (reasoning mode, thinking budget) group's figures."""

    reasoning: str | None
    max_thinking_tokens: int | None
    rows: int = 0
    correct: int = 0
    left_out: int = 0
    reasoning_tokens: int = 0
    records: int = 0
    pass_at: dict[int, float] = field(default_factory=dict)
    majority_at: dict[int, float] = field(default_factory=dict)
    # unit (a record, or a record at one mode and budget) -> its counted samples: (sample_index, answer, correct)
    samples: dict[tuple, list] = field(default_factory=lambda: defaultdict(list), repr=False)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.rows if self.rows else None

    def as_dict(self) -> dict:
        return {"reasoning": self.reasoning, "max_thinking_tokens": self.max_thinking_tokens, "rows": self.rows,
                "correct": self.correct, "accuracy": self.accuracy, "rows_left_out": self.left_out,
                "records": self.records,
                "mean_reasoning_tokens": self.reasoning_tokens / self.rows if self.rows else None,
                "pass_at_k": {str(k): v for k, v in self.pass_at.items()},
                "majority_at_k": {str(k): v for k, v in self.majority_at.items()}}


def counts(reason: str | None) -> bool:
    """Whether a row whose grade is null for `reason` counts (as incorrect) in the figures."""
    return reason is None or UNGRADED.get(reason.split(":", 1)[0], True)


JUDGE_KEY = ("source_id", "source_sample_index", "source_max_thinking_tokens")  # a chained job's row: the key it judged


def judged(rows: Iterable[dict], verdicts: Iterable[dict]) -> list[dict]:
    """A job's rows graded by a judge job chained onto it (`compare: verdict`): each row takes `correct`
    from the judge's row whose `JUDGE_KEY` is its (id, sample_index, max_thinking_tokens). A row the judge
    gave no verdict on (its row failed, was not there, or said neither) is `no_verdict` and left out; an
    error row of the judged job stays `error_row` (it counts as incorrect). `extracted_answer` stays the
    judged job's own (majority@k needs that job's extraction)."""
    found = {tuple(v.get(k) for k in JUDGE_KEY): v for v in verdicts}
    out = []
    for row in rows:
        if row.get("error") is not None:
            out.append(row | {"correct": None, "ungraded_reason": "error_row: an error row has no answer"})
            continue
        verdict = found.get((row["id"], row.get("sample_index"), row.get("max_thinking_tokens")))
        if verdict is None or verdict.get("correct") is None:
            why = "no row of the judge" if verdict is None else f"the judge's row: {verdict.get('ungraded_reason')}"
            out.append(row | {"correct": None, "ungraded_reason": f"no_verdict: {why}"})
        else:
            out.append(row | {"correct": verdict["correct"], "ungraded_reason": None})
    return out


def scores(rows: Iterable[dict]) -> list[GroupScores]:
    """The figures of graded rows (dicts with `id`, `sample_index`, `reasoning`, `max_thinking_tokens`,
    `correct`, `ungraded_reason`, `extracted_answer`, `reasoning_tokens`): first over every row (reasoning
    "all": a record's samples at one mode and budget are one unit of pass@k and majority@k), then per
    (reasoning, max_thinking_tokens) group in order of mode then budget (None first). Error rows of records
    that could not run have no mode (reasoning None): they count in "all" and in a group of their own."""
    overall = GroupScores("all", None)
    groups: dict[tuple, GroupScores] = {}
    for row in rows:
        key = (row.get("reasoning"), row.get("max_thinking_tokens"))
        group = groups.setdefault(key, GroupScores(*key))
        for target, unit in ((group, (row["id"],)), (overall, (row["id"], *key))):
            if not counts(row.get("ungraded_reason")):
                target.left_out += 1
                continue
            correct = row.get("correct") is True
            target.rows += 1
            target.correct += correct
            target.reasoning_tokens += row.get("reasoning_tokens") or 0
            target.samples[unit].append((row.get("sample_index") or 0, row.get("extracted_answer"), correct))
    ordered_groups = [overall] + [groups[key] for key in sorted(groups, key=lambda t: (t[0] or "", -1 if t[1] is None else t[1]))]
    for group in ordered_groups:
        if not group.samples:
            continue
        group.records = len(group.samples)
        ordered = [[(answer, correct) for _, answer, correct in sorted(s, key=lambda t: t[0])]
                   for s in group.samples.values()]
        for k in range(1, max(len(s) for s in ordered) + 1):
            eligible = [s for s in ordered if len(s) >= k]
            group.pass_at[k] = sum(pass_at_k(len(s), sum(c for _, c in s), k) for s in eligible) / len(eligible)
            group.majority_at[k] = sum(majority_at_k(s, k) for s in eligible) / len(eligible)
    return ordered_groups
