"""What `batchgen inspect` reads off an output prefix, over prefixes written by hand (no engine; the engine
tests inspect real ones: the demo's, a killed job's, one on S3)."""

from __future__ import annotations

import os

import pytest

from batchgen.core.prefix import OutputPrefix
from batchgen.record.contract import RecordError
from batchgen.record.rows import answer_row, error_row
from batchgen.views.survey import describe, percentiles_of, survey
from tests.prefixes import MODEL, ROWS, STATS, write_prefix


def test_a_finished_prefix_is_counted_from_its_rows(tmp_path):
    found = survey(write_prefix(tmp_path, ROWS, records=9, finished=True))
    assert (found.state, found.resumable, found.done, found.total, found.files) == ("complete", False, 9, 9, 1)
    assert found.errors == 3 and found.errors_by_code == {"invalid_type": 1, "missing_prompt": 2}
    assert found.error_examples == {"invalid_type": ["bad-2"], "missing_prompt": ["bad-1", "bad-3"]}
    assert found.finish_reasons == {"error": 3, "length": 1, "stop": 5}
    assert found.reasoning_modes == {"none (error)": 3, "off": 2, "on": 4}
    assert found.reasoning_ends == {"budget_line_break": 1, "length": 1, "model": 2}
    # reasoning tokens of the rows with reasoning on: 40, 41, 300, 512 (nearest rank)
    assert found.reasoning_tokens_percentiles == {"p50": 41, "p90": 512, "p99": 512, "max": 512}
    assert (found.budget_hits, found.reasoning_tokens, found.completion_tokens) == (1, 893, 1012)
    assert found.stats["generation_tokens_per_s"] == STATS.generation_tokens_per_s


def test_a_killed_job_is_partial_and_a_stopped_one_says_so(tmp_path):
    partial = write_prefix(tmp_path / "a", ROWS[:4], records=9)
    assert survey(partial).state == "partial" and survey(partial).resumable and survey(partial).done == 4
    stopped = write_prefix(tmp_path / "b", ROWS, records=9)
    OutputPrefix(stopped).write_stats(STATS)  # a job that ended without success writes its stats, no _SUCCESS
    assert survey(stopped).state == "stopped"
    # stats of an earlier run, then a later run killed after writing more: partial, not stopped
    stats_file = f"{stopped}/_stats.json"
    os.utime(stats_file, (os.path.getmtime(stats_file) - 60,) * 2)
    assert survey(stopped).state == "partial"


def test_nothing_there_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no batchgen output here \(no _job.json\); give the output.uri"):
        survey(str(tmp_path))


def test_describe_says_what_to_do_with_an_unfinished_prefix(tmp_path):
    text = describe(survey(write_prefix(tmp_path, ROWS[:4], records=9)))
    # hand-written: no checkpoint, so nothing is committed and a resume would redo all four rows
    assert "partial, 4 of 9 records in 1 files (0 committed: a resume keeps those, and redoes the rest)" in text
    assert "to finish  run the same job spec again onto this output" in text
    assert "p50 41, p90 512, p99 512, max 512 tokens" in text
    done = describe(survey(write_prefix(tmp_path / "done", ROWS, records=9, finished=True)))
    assert "missing_prompt 2 (e.g. bad-1, bad-3)" in done and "to finish" not in done
    assert "289.1 tokens/s generating" in done


def test_percentiles_by_nearest_rank():
    assert percentiles_of(list(range(1, 101))) == {"p50": 50, "p90": 90, "p99": 99, "max": 100}
    assert percentiles_of([7]) == {"p50": 7, "p90": 7, "p99": 7, "max": 7} and percentiles_of([]) == {}



def test_a_sweep_is_summed_up_by_budget(tmp_path):
    rows = [answer_row(record_id=f"r{i}", model=MODEL, mode="on", reasoning_text="t", content="a", finish_reason="stop",
                       reasoning_end="budget_line_break" if b is not None and b < 40 else "model", prompt_tokens=5,
                       reasoning_tokens=min(b, 40) if b is not None else 40, completion_tokens=45,
                       max_thinking_tokens=b)
            for i in range(3) for b in (8, 16, None)]
    rows.append(error_row("bad", MODEL, RecordError("missing_prompt", "x")))
    found = survey(write_prefix(tmp_path, rows, records=4, finished=True))
    assert list(found.by_budget) == ["8", "16", "none"]
    assert found.by_budget["8"] == {"rows": 3, "budget_hits": 3, "reasoning_tokens_percentiles":
                                    {"p50": 8, "p90": 8, "p99": 8, "max": 8}}
    assert "by budget  8: 3 rows, reasoning p50 8, budget hit 3; 16: 3 rows" in describe(found)
    # one budget: no breakdown
    assert survey(write_prefix(tmp_path / "one", rows[:1], records=1, finished=True)).by_budget == {}
