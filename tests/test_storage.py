"""Locations and files: input discovery, row numbering and ids, and data files that appear whole."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.storage import (
    INDEX, LINE, SOURCE, arrow_fs, clear_staging, data_files, find_inputs, jsonl_blocks, open_fs, parquet_blocks,
)


def test_inputs_are_found_sorted_with_their_format(tmp_path):
    for name in ("b.jsonl", "a.jsonl", "_skip.jsonl", "notes.txt"):
        (tmp_path / name).write_text("{}\n")
    fs, path = open_fs(str(tmp_path))
    files, fmt = find_inputs(fs, path, "auto")
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.jsonl", "b.jsonl"] and fmt == "jsonl"
    assert find_inputs(fs, f"{path}/b*", "auto")[0] == [f"{path}/b.jsonl"]
    with pytest.raises(FileNotFoundError, match="nothing at"):
        find_inputs(fs, f"{path}/none.jsonl", "auto")


def test_jsonl_rows_keep_line_numbers_and_get_ids():
    stream = io.BytesIO(b'{"id": 7}\n\n{"prompt": "x"}\nnot json\n{"id": 7}')
    (block,) = list(jsonl_blocks(stream, "dir/in.jsonl", frozenset({("dir/in.jsonl", 5)})))
    assert block.column(INDEX).to_pylist() == [1, 3, 4, 5]
    assert block.column("id").to_pylist() == ["7", "in.jsonl:3", "in.jsonl:4", "7@in.jsonl:5"]
    assert block.column(LINE).to_pylist()[1] == b'{"prompt": "x"}' and block.column(SOURCE)[0].as_py() == "dir/in.jsonl"


def test_parquet_rows_keep_their_types_and_get_text_ids(tmp_path):
    pq.write_table(pa.table({"id": pa.array([3, None], pa.int64()), "w": pa.array([1.5, 2.5], pa.float32())}),
                   tmp_path / "p.parquet")
    with open(tmp_path / "p.parquet", "rb") as handle:
        (block,) = list(parquet_blocks(handle, "p.parquet"))
    assert block.column("id").to_pylist() == ["3", "p.parquet:1"] and block.schema.field("w").type == pa.float32()


def test_a_local_data_file_appears_only_when_complete(tmp_path):
    fs, path = open_fs(str(tmp_path))
    stream = arrow_fs(fs).open_output_stream(f"{path}/part-1.parquet")
    stream.write(b"half")
    assert not (tmp_path / "part-1.parquet").exists() and data_files(fs, path) == []
    stream.close()
    assert (tmp_path / "part-1.parquet").read_bytes() == b"half"
    (tmp_path / "_writing.part-2.parquet").write_bytes(b"a crash left this")
    clear_staging(fs, path)  # what a rerun does first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-1.parquet"]
