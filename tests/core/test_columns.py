"""Tables with their own columns as a job's input (`batchgen.core.columns`, `batchgen.core.blocks`): the id
column, the columns read, Hive partition folders, and a prompt section's templates over them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.core.prefix import Manifest
from batchgen.core.prompts import prompt_plan
from batchgen.record.contract import RecordError
from tests.inputs import LAKE_PROMPT, LAKE_ROWS, job_read, spec_for, write_lake_table, write_lines


def lake_spec(tmp_path, **input_section):
    prompt = {**LAKE_PROMPT, "examples": {**LAKE_PROMPT["examples"], "uri": str(tmp_path / "examples.jsonl")}}
    return spec_for(tmp_path / "table", tmp_path / "out", prompt=prompt,
                    input={"uri": str(tmp_path / "table"), "id_column": "qid", **input_section})


def test_a_partitioned_table_with_a_template_gives_every_row_a_prompt_or_an_error_naming_the_column(tmp_path):
    write_lake_table(tmp_path)
    ids, records, table = job_read(lake_spec(tmp_path))
    assert ids == ["1", "2", "3", "4", "5"]
    errors = {rid: r for rid, r in zip(ids, records) if isinstance(r, RecordError)}
    assert errors == {rid: RecordError("missing_field", "the user template needs 'context'; this record has "
                                       "answer, lang, n, qid, question") for rid in ("2", "5")}
    first = records[0]["messages"]
    assert first[0] == {"role": "system", "content": "You answer questions in en."}
    assert first[-1] == {"role": "user", "content": "Context: Add the numbers.\nQuestion: What is 2 plus 3?"}
    assert len(first) == 1 + 2 * 2 + 1 and "n" not in records[0]  # k=2 examples; a column named n is data
    assert records[3]["messages"][0]["content"] == "You answer questions in fr."
    # every column is data: passed through with its Parquet type, the partition value as a string
    assert table.column("lang").to_pylist() == ["en", "en", "en", "fr", "fr"]
    assert table.column("qid").type == pa.int64() and table.column("qid").to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("n").to_pylist() == [7, 1, 2, 3, 5]  # with templates a column named like a record field is data


def test_only_the_columns_asked_for_are_read_with_the_ones_the_job_needs(tmp_path):
    write_lake_table(tmp_path)
    spec = lake_spec(tmp_path, columns=["answer"])
    spec = spec.model_copy(update={"prompt": spec.prompt.model_copy(update={"system": "Be brief."})})  # no {{ lang }}
    _, records, table = job_read(spec)
    # the id column, the templates' columns (question, context) and the partition keys are read too; n is not
    assert [c for c in table.column_names if c in ("qid", "question", "context", "answer", "lang", "n")] == [
        "qid", "question", "context", "answer", "lang"]
    assert isinstance(records[0], dict)


def test_without_hive_partitioning_a_folder_is_not_a_column(tmp_path):
    write_lake_table(tmp_path)
    _, records, table = job_read(lake_spec(tmp_path, partitioning="none"))
    assert "lang" not in table.column_names
    assert records[0] == RecordError("missing_field", "the system template needs 'lang'; this record has answer, "
                                     "context, n, qid, question")


def test_jsonl_in_partition_folders_gets_the_same_columns_and_its_own_field_wins(tmp_path):
    write_lines(tmp_path / "in" / "lang=de" / "a.jsonl", [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y", "lang": "it"}])
    ids, records, table = job_read(spec_for(tmp_path / "in", tmp_path / "out"))
    assert records == [{"id": "a", "prompt": "x", "lang": "de"}, {"id": "b", "prompt": "y", "lang": "it"}]
    assert table.column("lang").to_pylist() == ["de", "it"]


def test_fields_from_columns_steer_a_record_and_register_the_budget_processor(tmp_path):
    pq.write_table(pa.table({"q": ["a", "b"], "budget": pa.array([64, None], pa.int64())}), tmp_path / "t.parquet")
    spec = spec_for(tmp_path / "t.parquet", tmp_path / "out",
                    prompt={"user": "{{ q }}", "fields": {"max_thinking_tokens": "budget"}})
    from batchgen.core.columns import job_inputs
    from batchgen.core.reading import read_file
    from batchgen.core.scan import scan

    fs, inputs = job_inputs(spec)
    assert scan(inputs, read_file(fs, inputs, inputs.files[0], scan=True)).budgeted
    _, records, _ = job_read(spec)
    assert [r.get("max_thinking_tokens") for r in records] == [64, None]


@pytest.mark.parametrize("change", [
    {"prompt": {**LAKE_PROMPT, "user": "Q: {{ question }} ({{ context }})"}},
    {"prompt": {**LAKE_PROMPT, "examples": {**LAKE_PROMPT["examples"], "k": 1}}},
    {"examples_file": [{"id": "x9", "question": "What is 9 plus 9?", "answer": "18"}]},
    {"input": {"id_column": None}},
])
def test_the_wording_the_examples_and_their_draw_are_part_of_the_outputs_identity(tmp_path, change):
    from batchgen.core.columns import job_inputs

    write_lake_table(tmp_path)

    def fingerprint(spec):
        return Manifest.of(spec, job_inputs(spec)[1], prompt_plan(spec)).fingerprint

    before = fingerprint(lake_spec(tmp_path))
    assert before == fingerprint(lake_spec(tmp_path))
    spec = lake_spec(tmp_path)
    if "examples_file" in change:
        write_lines(tmp_path / "examples.jsonl", change["examples_file"])
    elif "input" in change:
        spec = spec.model_copy(update={"input": spec.input.model_copy(update=change["input"])})
    else:
        prompt = {**change["prompt"], "examples": {**change["prompt"]["examples"], "uri": str(tmp_path / "examples.jsonl")}}
        spec = spec_for(tmp_path / "table", tmp_path / "out", prompt=prompt,
                        input={"uri": str(tmp_path / "table"), "id_column": "qid"})
    assert fingerprint(spec) != before


def test_a_job_without_templates_keeps_its_fingerprint(tmp_path):
    from batchgen.core.columns import job_inputs

    write_lines(tmp_path / "in.jsonl", [{"prompt": "x"}])
    spec = spec_for(tmp_path / "in.jsonl", tmp_path / "out")
    manifest = Manifest.of(spec, job_inputs(spec)[1], prompt_plan(spec))
    assert "prompt" not in manifest.to_json() and "columns" not in manifest.input
    assert manifest.fingerprint == Manifest(manifest.spec, manifest.input).fingerprint
    assert LAKE_ROWS  # the shared table stays non-empty for the other tests


def test_partition_folders_read_as_arrow_reads_them_and_whatever_the_columns_say(tmp_path):
    write_lines(tmp_path / "in" / "city=New%20York" / "a.jsonl", [{"id": "a", "prompt": "x"}])
    write_lines(tmp_path / "in" / "city=__HIVE_DEFAULT_PARTITION__" / "b.jsonl", [{"id": "b", "prompt": "y"}])
    _, records, table = job_read(spec_for(tmp_path / "in", tmp_path / "out",
                                          input={"uri": str(tmp_path / "in"), "columns": ["prompt"]}))
    assert {r["id"]: r["city"] for r in records} == {"a": "New York", "b": None}
    assert dict(zip(table.column("id").to_pylist(), table.column("city").to_pylist())) == {"a": "New York", "b": None}


def test_a_records_own_example_is_left_out_when_its_id_column_holds_floats(tmp_path):
    # pandas writes an integer column with nulls as float64: 1.0 is the id 1, and example 1 is the record itself
    pq.write_table(pa.table({"qid": pa.array([1.0, None, 3.0]), "q": ["a", "b", "c"]}), tmp_path / "t.parquet")
    write_lines(tmp_path / "shots.jsonl", [{"qid": 1, "q": "one", "a": "1"}, {"qid": 3, "q": "three", "a": "3"}])
    spec = spec_for(tmp_path / "t.parquet", tmp_path / "out", input={"uri": str(tmp_path / "t.parquet"), "id_column": "qid"},
                    prompt={"user": "{{ q }} ({{ id }})", "examples": {"uri": str(tmp_path / "shots.jsonl"),
                                                                       "assistant": "{{ a }}", "id_column": "qid"}})
    ids, records, _ = job_read(spec)
    assert ids == ["1", "t.parquet:1", "3"]
    shown = [[m["content"] for m in r["messages"]] for r in records]
    assert shown == [["three (3)", "3", "a (1)"], ["one (1)", "1", "three (3)", "3", "b (t.parquet:1)"],
                     ["one (1)", "1", "c (3)"]]


def test_what_decides_the_records_is_the_inputs_identity_and_what_shapes_them_is_allowed_to_change(tmp_path):
    from batchgen.core.columns import job_inputs
    from batchgen.core.prefix import OutputPrefix, PrefixRefused

    write_lake_table(tmp_path)

    def manifest(**input_section):
        spec = lake_spec(tmp_path, **input_section)
        return Manifest.of(spec, job_inputs(spec)[1], prompt_plan(spec))

    first = manifest(columns=["answer"])
    assert first.input["columns"] == {"id_column": "qid", "partition_keys": ["lang"]}
    prefix = OutputPrefix(str(tmp_path / "out"))
    prefix.write_manifest(first)
    pq.write_table(pa.table({"id": ["1"]}), tmp_path / "out" / "part-a.parquet")
    with pytest.raises(PrefixRefused, match=r"changed: columns"):  # reading one more column
        prefix.state(manifest(columns=["answer", "n"]))
    assert prefix.state(manifest(columns=["answer", "n"]), allow_changed_spec=True) == "resume"
    with pytest.raises(PrefixRefused, match="another input"):  # other records' ids: never
        prefix.state(manifest(columns=["answer"], partitioning="none"))
