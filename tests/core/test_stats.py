"""The job's tally and stats (`batchgen.core.stats`)."""

from __future__ import annotations

import json

import pyarrow as pa

from batchgen.core.stats import JobStats, RowCounts, Tally


def test_the_tally_stops_the_job_once_too_many_records_failed():
    tally = Tally(max_fraction=0.5, min_records=4)
    assert tally.add(3, 3, 3, 0) == ""  # too few records to judge
    # judged on rows, as the final share is: a record with two samples brings two rows
    verdict = "stopped early: 3 of the first 5 rows failed, more than errors.max_fraction 0.5"
    assert tally.add(1, 2, 0, 10) == verdict
    assert tally.add(2, 2, 0, 0) == verdict and tally.completion_tokens == 10  # the first verdict stands


def test_stats_count_rows_and_round_trip_through_json():
    counts = RowCounts.of([pa.table({"error": [None, "invalid_json: x", "duplicate_id: y"], "prompt_tokens": [3, 0, 0],
                                     "completion_tokens": [5, 0, None], "reasoning_tokens": [2, 0, 0]})])
    assert (counts.rows, counts.errors, counts.errors_by_code) == (3, 2, {"duplicate_id": 1, "invalid_json": 1})
    # three rows of two records (one with two samples)
    stats = JobStats.build(job="j", model="m", input_files=1, files=1, counts=counts, records=2, skipped=0,
                           started=0.0, first_ready=2.0, generated_tokens=5, now=7.0)
    assert (stats.records, stats.rows, stats.ok) == (2, 3, 1)
    assert (stats.engine_startup_s, stats.generation_time_s, stats.generation_tokens_per_s) == (2.0, 5.0, 1.0)
    assert JobStats.from_json(json.loads(json.dumps(stats.to_json()))) == stats
    assert stats.failed_share(0.5) == "2 of 3 rows failed, more than errors.max_fraction 0.5: " \
        "{'duplicate_id': 1, 'invalid_json': 1}"
