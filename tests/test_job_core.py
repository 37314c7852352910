"""The job core without an engine or Ray: ids, the input scan, passthrough columns, output blocks, the
output prefix's identity and commits, stats."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from batchgen.core.blocks import assemble, decode, gather, schema
from batchgen.core.identity import InputNames, id_text, input_root
from batchgen.core.prefix import Manifest, OutputPrefix, PrefixRefused
from batchgen.record.contract import RecordError
from batchgen.record.rows import OUTPUT_FIELDS, OutputRow, error_row
from batchgen.core.scan import scan
from batchgen.spec.job import JobSpec
from batchgen.core.stats import JobStats, RowCounts, Tally
from batchgen.core.reading import read_file
from batchgen.core.storage import InputSet, arrow_fs, open_fs


def write_lines(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def inputs_at(uri, fmt="auto"):
    fs, path = open_fs(str(uri))
    return fs, InputSet.find(fs, path, fmt)


def scanned(uri, fmt="auto"):
    fs, inputs = inputs_at(uri, fmt)
    result = scan(inputs, (b for f in inputs.files for b in read_file(fs, inputs, f, scan=True)))
    return fs, inputs, result


def output_table(uri, fmt="auto") -> pa.Table:
    """What the job writes for these inputs, with every record an error row (no engine needed)."""
    fs, inputs, result = scanned(uri, fmt)
    tables = []
    for f in inputs.files:
        for block in read_file(fs, inputs, f, frozenset(result.duplicate_errors)):
            batch = decode(block, result.passthrough, result.duplicate_errors)
            rows = [error_row(rid, "m", RecordError("x", "y")) for rid in batch.ids]
            tables.append(assemble(rows, batch.passthrough, result.passthrough))
    return tables


def write_prefix(tables, folder):
    folder.mkdir()
    for n, table in enumerate(tables):
        pq.write_table(table, folder / f"part-{n}.parquet")


# --- passthrough fields arrive whole, with one schema per prefix ---

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


# --- ids ---

def test_records_without_ids_are_named_by_their_path_under_the_input_root(tmp_path):
    for day in (1, 2):
        write_lines(tmp_path / "in" / f"day={day}" / "part-0.jsonl", [{"prompt": "x"}])
    fs, inputs, result = scanned(tmp_path / "in")
    ids = [rid for f in inputs.files for b in read_file(fs, inputs, f) for rid in b.column("id").to_pylist()]
    assert ids == ["day=1/part-0.jsonl:1", "day=2/part-0.jsonl:1"] and result.duplicate_errors == {}


def test_input_root_and_names():
    assert input_root("s3://b/in/*.jsonl") == "s3://b/in" and input_root("/d/x.jsonl") == "/d/x.jsonl"
    assert InputNames("/d", ["/d/a/b.jsonl", "/e/c.jsonl"]).names == {"/d/a/b.jsonl": "a/b.jsonl", "/e/c.jsonl": "c.jsonl"}


@pytest.mark.parametrize(("raw", "text"), [(7, "7"), ("a", "a"), (10.0, "10"), (1.5, None), (float("nan"), None),
                                           (True, None), (None, None), ([1], None)])
def test_id_text(raw, text):
    assert id_text(raw) == text


def test_later_uses_of_an_id_are_duplicates_named_by_location(tmp_path):
    write_lines(tmp_path / "in" / "a.jsonl", [{"id": 1, "prompt": "x"}, {"id": "1", "prompt": "y"}])
    write_lines(tmp_path / "in" / "b.jsonl", [{"id": 1.0, "prompt": "z"}])
    fs, inputs, result = scanned(tmp_path / "in")
    assert {(p.rsplit("/", 1)[1], n): str(e) for (p, n), e in result.duplicate_errors.items()} == {
        ("a.jsonl", 2): "duplicate_id: its id was already used at a.jsonl:1",
        ("b.jsonl", 1): "duplicate_id: its id was already used at a.jsonl:1"}
    assert result.records == 3


# --- input files as people have them ---

def test_a_byte_order_mark_is_not_part_of_the_first_record(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b'\xef\xbb\xbf{"id": "a", "prompt": "x"}\n')
    fs, inputs = inputs_at(tmp_path / "in.jsonl")
    (block,) = read_file(fs, inputs, inputs.files[0])
    batch = decode(block, scan(inputs, read_file(fs, inputs, inputs.files[0], scan=True)).passthrough)
    assert batch.ids == ["a"] and batch.records == [{"id": "a", "prompt": "x"}]


def test_compressed_jsonl_is_found_and_read_like_plain_jsonl(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "prompts.jsonl.gz").write_bytes(gzip.compress(b'{"id": "a", "prompt": "x"}\n'))
    fs, inputs = inputs_at(tmp_path / "in")
    assert inputs.format == "jsonl" and len(inputs.files) == 1
    (block,) = read_file(fs, inputs, inputs.files[0])
    assert decode(block, scan(inputs, []).passthrough).records == [{"id": "a", "prompt": "x"}]


def test_parquet_from_pandas_keeps_float_ids_as_integers(tmp_path):
    pq.write_table(pa.table({"id": pa.array([10.0, None]), "prompt": ["a", "b"],
                             "max_thinking_tokens": pa.array([16.0, float("nan")])}), tmp_path / "p.parquet")
    fs, inputs = inputs_at(tmp_path / "p.parquet")
    (block,) = read_file(fs, inputs, inputs.files[0])
    assert block.column("id").to_pylist() == ["10", "p.parquet:1"]


# --- the output prefix ---

def spec_for(input_uri, output_uri, **sections) -> JobSpec:
    return JobSpec.model_validate({"name": "t", "model": {"path": "toy:nemotron-h"}, "input": {"uri": str(input_uri)},
                                   "output": {"uri": str(output_uri)}, **sections})


def test_what_identity_an_output_prefix_has(tmp_path):
    write_lines(tmp_path / "in.jsonl", [{"prompt": "x"}])
    write_lines(tmp_path / "other.jsonl", [{"prompt": "y"}, {"prompt": "z"}])
    out = tmp_path / "out"
    spec = spec_for(tmp_path / "in.jsonl", out)
    manifest = Manifest.of(spec, inputs_at(tmp_path / "in.jsonl")[1])
    prefix = OutputPrefix(str(out))
    assert prefix.state(manifest) == "new"
    prefix.write_manifest(manifest)
    # A run that failed at start (nothing committed) does not hold the prefix against a corrected spec.
    fixed = spec_for(tmp_path / "in.jsonl", out, defaults={"max_tokens": 5})
    assert prefix.state(Manifest.of(fixed, manifest_inputs := inputs_at(tmp_path / "in.jsonl")[1])) == "new"
    pq.write_table(pa.table({"id": ["x"]}), out / "part-a.parquet")
    assert prefix.state(manifest) == "resume"
    with pytest.raises(PrefixRefused, match=r"different spec \(changed: defaults\).*--allow-changed-spec"):
        prefix.state(Manifest.of(fixed, manifest_inputs))
    assert prefix.state(Manifest.of(fixed, manifest_inputs), allow_changed_spec=True) == "resume"
    other = Manifest.of(spec_for(tmp_path / "other.jsonl", out), inputs_at(tmp_path / "other.jsonl")[1])
    with pytest.raises(PrefixRefused, match=r"another input \(in.jsonl, 16 bytes; this run reads other.jsonl, 32 bytes\)"):
        prefix.state(other, allow_changed_spec=True)
    prefix.write_success()
    assert prefix.state(manifest) == "done"
    with pytest.raises(PrefixRefused, match="another input"):  # complete, but for another input: not "done"
        prefix.state(other)


def test_data_files_nobody_wrote_are_never_added_to(tmp_path):
    write_lines(tmp_path / "in.jsonl", [{"prompt": "x"}])
    (tmp_path / "out").mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "out" / "data.parquet")
    manifest = Manifest.of(spec_for(tmp_path / "in.jsonl", tmp_path / "out"), inputs_at(tmp_path / "in.jsonl")[1])
    with pytest.raises(PrefixRefused, match="no batchgen job wrote"):
        OutputPrefix(str(tmp_path / "out")).state(manifest)


def test_committed_records_count_only_committed_checkpoints(tmp_path):
    checkpoint = tmp_path / "_checkpoint"
    checkpoint.mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a", "b"]}), checkpoint / "part-1.parquet")
    pq.write_table(pa.table({"id": ["c"]}), checkpoint / "part-2.pending.parquet")
    # a record with two samples commits its id twice: one record
    pq.write_table(pa.table({"id": ["d", "d"]}), checkpoint / "part-3.parquet")
    assert OutputPrefix(str(tmp_path)).committed_records() == 3


def test_a_local_data_file_appears_only_when_written_whole(tmp_path):
    fs, path = open_fs(str(tmp_path))
    stream = arrow_fs(fs).open_output_stream(f"{path}/part-1.parquet")
    pq.write_table(pa.table({"x": [1]}), stream)
    assert not (tmp_path / "part-1.parquet").exists() and OutputPrefix(str(tmp_path)).data_files() == []
    stream.close()
    assert pq.read_table(tmp_path / "part-1.parquet").num_rows == 1
    # A write that failed: half a file, or an exception on its way through the writer.
    half = arrow_fs(fs).open_output_stream(f"{path}/part-2.parquet")
    half.write(b"PAR1 half")
    half.close()
    with pytest.raises(RuntimeError):
        with arrow_fs(fs).open_output_stream(f"{path}/part-3.jsonl") as failing:
            failing.write(b'{"a": 1}\n')
            raise RuntimeError("the writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-1.parquet"]
    (tmp_path / "_writing.part-4.parquet").write_bytes(b"a crash left this")
    OutputPrefix(str(tmp_path)).clear_staging()  # what a rerun does first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-1.parquet"]


# --- rows and stats ---

def test_the_row_model_gives_the_arrow_schema_and_error_rows():
    row = error_row("a", "m", RecordError("invalid_json", "bad"), "on", 3)
    assert tuple(row) == OUTPUT_FIELDS and OutputRow.model_validate(row).error == "invalid_json: bad"
    none = scan(_no_inputs(), []).passthrough
    table = assemble([row], decode(pa.table({"id": ["a"], "prompt": ["x"]}), none).passthrough, none)
    assert table.schema == schema(none) and table.to_pylist() == [row]


def test_rows_of_several_batches_keep_their_own_passthrough_values(tmp_path):
    write_lines(tmp_path / "in.jsonl", [{"id": str(i), "prompt": "x", "k": i} for i in range(4)])
    fs, inputs, result = scanned(tmp_path / "in.jsonl")
    (block,) = read_file(fs, inputs, inputs.files[0])
    first, second = (decode(block.slice(0, 2), result.passthrough), decode(block.slice(2, 2), result.passthrough))
    row = lambda rid, k=None: error_row(rid, "m", RecordError("x", "y"), sample_index=k)  # noqa: E731
    # A record's rows come together (one per sample); each carries the record's passthrough values.
    rows, columns = gather([([row("3")], (second, 1)), ([row("0", 0), row("0", 1)], (first, 0)), ([row("2")], (second, 0))])
    table = assemble(rows, columns, result.passthrough)
    assert [(r["id"], r["sample_index"], r["k"]) for r in table.to_pylist()] == [
        ("3", None, 3), ("2", None, 2), ("0", 0, 0), ("0", 1, 0)]
    # A retried batch whose rows were all handed out already returns no rows: an empty block, same schema.
    empty = assemble(*gather([]), result.passthrough)
    assert empty.num_rows == 0 and empty.schema == schema(result.passthrough)


def _no_inputs() -> InputSet:
    return InputSet("/", [], [], "parquet", InputNames("/", []))


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


def test_the_pending_checkpoint_name_is_ray_datas():
    from ray.data.checkpoint.checkpoint_writer import PENDING_CHECKPOINT_SUFFIX

    from batchgen.core.prefix import PENDING_SUFFIX

    assert PENDING_SUFFIX == f"{PENDING_CHECKPOINT_SUFFIX}.parquet"


def test_handed_out_ids_are_remembered():
    from batchgen.core.ledger import HandedOut

    handed = HandedOut()
    handed.add(["a", "b"])
    assert "a" in handed and "c" not in handed


def test_the_scan_says_whether_any_record_sets_a_thinking_budget(tmp_path):
    # The replicas register the budget processor only for such inputs (or the spec's defaults).
    (tmp_path / "none.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "max_thinking_tokens": null}\nnot json\n')
    (tmp_path / "one.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "max_thinking_tokens": 0}\n')
    pq.write_table(pa.table({"prompt": ["a", "b"], "max_thinking_tokens": pa.array([None, None], pa.int64())}),
                   tmp_path / "nulls.parquet")
    pq.write_table(pa.table({"prompt": ["a", "b"], "max_thinking_tokens": pa.array([None, 64], pa.int64())}),
                   tmp_path / "set.parquet")
    pq.write_table(pa.table({"prompt": ["a"]}), tmp_path / "plain.parquet")
    budgeted = {name: scanned(str(tmp_path / name))[2].budgeted
                for name in ("none.jsonl", "one.jsonl", "nulls.parquet", "set.parquet", "plain.parquet")}
    assert budgeted == {"none.jsonl": False, "one.jsonl": True, "nulls.parquet": False, "set.parquet": True,
                        "plain.parquet": False}
