"""Input files as people have them: byte order marks, gzip, Parquet from pandas (`batchgen.core.reading`)."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen.core.blocks import decode
from batchgen.core.reading import read_file
from batchgen.core.scan import scan
from tests.inputs import (
    inputs_at,
)


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
