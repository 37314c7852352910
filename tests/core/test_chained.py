"""A job over another job's output (`batchgen.core.chained`): the first job's answers as records, keyed by
its row key, its columns for the templates, and only once it has finished."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.core.prefix import OutputPrefix
from batchgen.core.blocks import schema
from batchgen.core.passthrough import Passthrough, PassthroughTypes
from batchgen.record.contract import RecordError
from batchgen.record.rows import OUTPUT_FIELDS, answer_row, error_row
from tests.inputs import job_read, spec_for
from tests.prefixes import write_prefix

JUDGE = {"user": "Is '{{ content }}' the answer to '{{ question }}'? ({{ source_id }}, sample {{ source_sample_index }})"}


def first_job(tmp_path, finished=True) -> str:
    """A first job's prefix: q1 with two samples, q2 with a budget, q3 an error row; a passthrough column."""
    def answer(rid, sample, content, budget=None):
        return answer_row(record_id=rid, model="m", mode="on", reasoning_text="hmm", content=content,
                          finish_reason="stop", reasoning_end="model", prompt_tokens=3, reasoning_tokens=2,
                          completion_tokens=4, sample_index=sample, max_thinking_tokens=budget)

    rows = [answer("q1", 0, "4"), answer("q1", 1, "5"), answer("q2", 0, "blue", budget=64),
            error_row("q3", "m", RecordError("missing_prompt", "a record needs exactly one of prompt or messages"))]
    out = write_prefix(tmp_path, [], records=3, finished=finished)
    types = PassthroughTypes()
    types.add(pa.schema([pa.field("question", pa.string())]))
    passthrough = Passthrough.build(types, OUTPUT_FIELDS)
    table = pa.Table.from_pylist([{**r, "question": q} for r, q in zip(rows, ["2+2?", "2+2?", "sky?", None])],
                                 schema=schema(passthrough))
    pq.write_table(table, f"{out}/part-0.parquet")
    return out


def test_the_first_jobs_answers_are_the_records_keyed_by_its_row_key_with_its_columns(tmp_path):
    prefix = first_job(tmp_path / "first")
    ids, records, table = job_read(spec_for(prefix, tmp_path / "judge", prompt=JUDGE))
    assert ids == ["q1#0", "q1#1", "q2#0@64"]  # the error row q3 is not judged
    assert records[0] == {"messages": [{"role": "user", "content": "Is '4' the answer to '2+2?'? (q1, sample 0)"}]}
    # the first job's columns pass through: its answer under input_*, its key as source_*, its own passthrough
    assert table.column("input_content").to_pylist() == ["4", "5", "blue"]
    assert table.column("source_id").to_pylist() == ["q1", "q1", "q2"]
    assert table.column("source_max_thinking_tokens").to_pylist() == [None, None, 64]
    assert table.column("question").to_pylist() == ["2+2?", "2+2?", "sky?"]
    assert not {"input_logprobs", "input_prompt_tokens", "input_error"} & set(table.column_names)


def test_error_rows_too_when_asked_and_only_the_columns_named(tmp_path):
    prefix = first_job(tmp_path / "first")
    spec = spec_for(prefix, tmp_path / "judge", prompt={"user": "{{ source_id }}: {{ error | default('none') }}"},
                    input={"uri": prefix, "include_errors": True, "columns": ["content"]})
    ids, records, table = job_read(spec)
    assert ids == ["q1#0", "q1#1", "q2#0@64", "q3"]
    assert records[3]["messages"][0]["content"].startswith("q3: missing_prompt: ")
    assert "question" not in table.column_names and "input_content" in table.column_names


def test_a_first_job_that_has_not_finished_is_refused_saying_what_to_do(tmp_path):
    prefix = first_job(tmp_path / "first", finished=False)
    with pytest.raises(ValueError, match=r"has not finished \(no _SUCCESS\): run it to the end first"):
        job_read(spec_for(prefix, tmp_path / "judge", prompt=JUDGE))


def test_a_job_over_a_job_output_needs_templates(tmp_path):
    prefix = first_job(tmp_path / "first")
    with pytest.raises(ValueError, match="is a batchgen job's output: a job over it needs a prompt section"):
        job_read(spec_for(prefix, tmp_path / "judge"))
    assert OutputPrefix(prefix).has("_SUCCESS")
