"""Passthrough columns: input fields the contract does not use arrive in the output whole, one schema
per prefix whatever types the records and files disagree on (`batchgen.core.passthrough`, `blocks`)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from batchgen.core.blocks import decode, gather
from batchgen.core.reading import read_file
from batchgen.record.rows import OUTPUT_FIELDS
from tests.inputs import (
    output_table,
    scanned,
    write_lines,
    write_prefix,
)


def test_a_field_absent_from_a_batchs_first_record_is_kept(tmp_path):
    write_lines(tmp_path / "in.jsonl", [{"id": "a", "prompt": "Say hi.", "reasoning": "off"},
                                        {"id": "b", "prompt": "Say hi.", "reasoning": "off", "meta": {"k": 1}},
                                        {"id": "c", "prompt": "Say hi.", "meta": {"k": 2, "deep": None}}])
    (table,) = output_table(tmp_path / "in.jsonl")
    assert table.column_names == [*OUTPUT_FIELDS, "meta"]
    assert [json.loads(v) if v else v for v in table.column("meta").to_pylist()] == [None, {"k": 1}, {"k": 2, "deep": None}]


def test_objects_of_one_shape_stay_structs(tmp_path):
    write_lines(tmp_path / "in.jsonl", [{"prompt": "x", "meta": {"split": "a", "n": 1, "tags": ["x"]}},
                                        {"prompt": "y"}, {"prompt": "z", "meta": {"split": "b", "n": 2.5, "tags": []}}])
    (table,) = output_table(tmp_path / "in.jsonl")
    assert table.schema.field("meta").type == pa.struct([("split", pa.string()), ("n", pa.float64()),
                                                         ("tags", pa.list_(pa.string()))])
    assert table.column("meta").to_pylist()[2] == {"split": "b", "n": 2.5, "tags": []}


@pytest.mark.parametrize("value", [{}, [], {"inner": {}}, {"a": []}, [[]], 2**70])
@pytest.mark.parametrize("other", [None, {"k": 1}])
def test_values_parquet_cannot_hold_round_trip_as_json_text(tmp_path, value, other):
    if other is not None and not isinstance(value, dict):
        other = None
    write_lines(tmp_path / "in.jsonl", [{"prompt": "x", "meta": value}, {"prompt": "y", "meta": other}])
    (table,) = output_table(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    write_prefix([table], out)
    read = pq.read_table(out)
    assert read.schema.field("meta").type == pa.string()
    assert [json.loads(v) if v else v for v in read.column("meta").to_pylist()] == [value, other]


def test_types_that_differ_across_records_and_files_give_one_schema(tmp_path):
    # Each file is its own block: null first and a string later; an int here and a string there;
    # ints and floats; structs with different keys.
    write_lines(tmp_path / "in" / "a.jsonl", [{"prompt": "x", "note": None, "k": 1, "x": 1, "s": {"a": 1}}])
    write_lines(tmp_path / "in" / "b.jsonl", [{"prompt": "x", "note": "hi", "k": "one", "x": 2.5, "s": {"b": "z"}}])
    tables = output_table(tmp_path / "in")
    out = tmp_path / "out"
    write_prefix(tables, out)
    assert tables[0].schema == tables[1].schema
    dataset = pads.dataset(str(out))  # a plain glob, no schema merging asked for
    rows = dataset.to_table().to_pylist()
    assert [r["note"] for r in rows] == [None, "hi"]
    assert [r["k"] for r in rows] == ["1", '"one"']  # mixed types: JSON text of each value
    assert [r["x"] for r in rows] == [1.0, 2.5]
    assert [json.loads(r["s"]) for r in rows] == [{"a": 1}, {"b": "z"}]  # other keys: JSON text, exact
    import duckdb

    ((count, notes),) = duckdb.sql(f"SELECT count(*), count(note) FROM read_parquet('{out}/*.parquet')").fetchall()
    assert (count, notes) == (2, 1)


def test_a_field_named_like_an_output_column_is_renamed_not_dropped(tmp_path):
    write_lines(tmp_path / "in.jsonl", [{"prompt": "x", "model": "gpt-4", "content": "c", "input_model": 1}])
    (table,) = output_table(tmp_path / "in.jsonl")
    row = table.to_pylist()[0]
    assert row["model"] == "m" and row["input_model"] == 1 and row["input_input_model"] == "gpt-4"
    assert row["input_content"] == "c"


def test_parquet_files_that_disagree_on_a_column_are_merged(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.table({"prompt": ["a"], "score": pa.array([1], pa.int32()), "tag": ["x"]}), folder / "a.parquet")
    pq.write_table(pa.table({"prompt": ["b"], "score": pa.array([2.5], pa.float64()), "tag": pa.array([7])}),
                   folder / "b.parquet")
    pq.write_table(pa.table({"prompt": ["c"]}), folder / "c.parquet")
    tables = output_table(folder)
    assert len({t.schema for t in tables}) == 1
    rows = pa.concat_tables(tables).to_pylist()
    fs, inputs, result = scanned(folder)
    first, last = [decode(b, result.passthrough) for f in (inputs.files[0], inputs.files[2]) for b in read_file(fs, inputs, f)]
    _, columns = gather([([{}], (last, 0)), ([{}], (first, 0))])  # rows of Parquet blocks gathered across batches
    assert [c.to_pylist() for c in columns] == [[None, 1.0], [None, '"x"']]
    assert [r["score"] for r in rows] == [1.0, 2.5, None] and [r["tag"] for r in rows] == ['"x"', "7", None]
