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

    parse_failed = {**answer("q4", 0, "<TOOLCALL>[oops"), "error": "tool_call_parse_error: not JSON"}
    rows = [answer("q1", 0, "4"), answer("q1", 1, "5"), answer("q2", 0, "blue", budget=64),
            error_row("q3", "m", RecordError("missing_prompt", "a record needs exactly one of prompt or messages")),
            parse_failed]
    out = write_prefix(tmp_path, [], records=3, finished=finished)
    types = PassthroughTypes()
    types.add(pa.schema([pa.field("question", pa.string())]))
    passthrough = Passthrough.build(types, OUTPUT_FIELDS)
    table = pa.Table.from_pylist([{**r, "question": q} for r, q in zip(rows, ["2+2?", "2+2?", "sky?", None, "call?"])],
                                 schema=schema(passthrough))
    pq.write_table(table, f"{out}/part-0.parquet")
    return out


def test_the_first_jobs_answers_are_the_records_keyed_by_its_row_key_with_its_columns(tmp_path):
    prefix = first_job(tmp_path / "first")
    ids, records, table = job_read(spec_for(prefix, tmp_path / "judge", prompt=JUDGE))
    # the error row q3 is not judged; q4 is an answer whose tool calls did not parse: it is
    assert ids == ["q1#0", "q1#1", "q2#0@64", "q4#0"]
    assert records[0] == {"messages": [{"role": "user", "content": "Is '4' the answer to '2+2?'? (q1, sample 0)"}]}
    # the first job's columns pass through: its answer under input_*, its key as source_*, its own passthrough
    assert table.column("input_content").to_pylist() == ["4", "5", "blue", "<TOOLCALL>[oops"]
    assert table.column("source_id").to_pylist() == ["q1", "q1", "q2", "q4"]
    assert table.column("source_max_thinking_tokens").to_pylist() == [None, None, 64, None]
    assert table.column("question").to_pylist() == ["2+2?", "2+2?", "sky?", "call?"]
    assert table.column("input_error").to_pylist() == [None, None, None, "tool_call_parse_error: not JSON"]
    assert not {"input_logprobs", "input_prompt_tokens"} & set(table.column_names)


def test_error_rows_too_when_asked_and_only_the_columns_named(tmp_path):
    prefix = first_job(tmp_path / "first")
    spec = spec_for(prefix, tmp_path / "judge", prompt={"user": "{{ source_id }}: {{ error | default('none') }}"},
                    input={"uri": prefix, "include_errors": True, "columns": ["content"]})
    ids, records, table = job_read(spec)
    assert ids == ["q1#0", "q1#1", "q2#0@64", "q3", "q4#0"]
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


def test_a_job_over_a_chained_jobs_output_renames_the_key_again(tmp_path):
    """generate -> judge -> meta-judge: the judge's rows already hold source_id."""
    prefix = first_job(tmp_path / "first")
    ids, _, judged = job_read(spec_for(prefix, tmp_path / "judge", prompt=JUDGE))
    rows = [answer_row(record_id=rid, model="m", mode="off", reasoning_text=None, content="yes", finish_reason="stop",
                       reasoning_end=None, prompt_tokens=1, reasoning_tokens=0, completion_tokens=1) for rid in ids]
    second = write_prefix(tmp_path / "second", [], records=len(ids), finished=True)
    types = PassthroughTypes()
    keep = [n for n in judged.column_names if n not in OUTPUT_FIELDS]
    types.add(judged.select(keep).schema)
    table = pa.Table.from_pylist([{**r, **{k: judged.column(k)[i].as_py() for k in keep}} for i, r in enumerate(rows)],
                                 schema=schema(Passthrough.build(types, OUTPUT_FIELDS)))
    pq.write_table(table, f"{second}/part-0.parquet")
    meta_ids, records, meta = job_read(spec_for(second, tmp_path / "meta", prompt={
        "user": "{{ source_source_id }} / {{ source_id }}: {{ content }}"}))
    assert meta_ids == [f"{rid}#0" for rid in ids]
    # the judge's own id is the new one renamed; the first job's id keeps the name the judge gave it
    assert records[0]["messages"][0]["content"] == "q1#0 / q1: yes"
    assert meta.column("source_source_id").to_pylist() == ids
    assert meta.column("source_id").to_pylist() == ["q1", "q1", "q2", "q4"]
