"""Locations and files: input discovery (`core.storage`), and rows read from them that keep their line or
row numbers and get ids (`core.reading`)."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.core.identity import InputNames
from batchgen.core.reading import INDEX, LINE, SOURCE, read_stream
from batchgen.core.storage import InputSet, open_fs, unreachable
from tests import free_port


def test_inputs_are_found_sorted_with_their_format_and_sizes(tmp_path):
    for name in ("b.jsonl", "a.jsonl", "_skip.jsonl", "notes.txt"):
        (tmp_path / name).write_text("{}\n")
    fs, path = open_fs(str(tmp_path))
    inputs = InputSet.find(fs, path, "auto")
    assert [f.rsplit("/", 1)[1] for f in inputs.files] == ["a.jsonl", "b.jsonl"] and inputs.format == "jsonl"
    assert inputs.identity() == {"format": "jsonl", "files": [["a.jsonl", 3], ["b.jsonl", 3]]}
    assert InputSet.find(fs, f"{path}/b*", "auto").files == [f"{path}/b.jsonl"]
    with pytest.raises(FileNotFoundError, match="nothing at"):
        InputSet.find(fs, f"{path}/none.jsonl", "auto")


def test_jsonl_rows_keep_line_numbers_and_get_ids():
    stream = io.BytesIO(b'{"id": 7}\n\n{"prompt": "x"}\nnot json\n{"id": 7}')
    names = InputNames("dir", ["dir/in.jsonl"])
    (block,) = list(read_stream(stream, "dir/in.jsonl", "jsonl", names, frozenset({("dir/in.jsonl", 5)})))
    assert block.column(INDEX).to_pylist() == [1, 3, 4, 5]
    assert block.column("id").to_pylist() == ["7", "in.jsonl:3", "in.jsonl:4", "7@in.jsonl:5"]
    assert block.column(LINE).to_pylist()[1] == b'{"prompt": "x"}' and block.column(SOURCE)[0].as_py() == "dir/in.jsonl"


def test_parquet_rows_keep_their_types_and_get_text_ids(tmp_path):
    pq.write_table(pa.table({"id": pa.array([3, None], pa.int64()), "w": pa.array([1.5, 2.5], pa.float32())}),
                   tmp_path / "p.parquet")
    with open(tmp_path / "p.parquet", "rb") as handle:
        (block,) = list(read_stream(handle, "p.parquet", "parquet", InputNames("", ["p.parquet"])))
    assert block.column("id").to_pylist() == ["3", "p.parquet:1"] and block.schema.field("w").type == pa.float32()


def test_a_store_that_answers_is_reachable_whether_or_not_the_path_exists(tmp_path, s3_endpoint):
    assert unreachable(str(tmp_path / "not-yet")) == ""
    assert unreachable("s3://batchgen-test/not-yet", {"endpoint_url": s3_endpoint}) == ""


def test_a_store_that_does_not_answer_is_named_with_its_clients_error():
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    said = unreachable("s3://batchgen-test/out", {"endpoint_url": closed})
    assert said.startswith("EndpointConnectionError: Could not connect to the endpoint URL") and closed in said


def test_a_store_that_never_answers_is_given_up_on_at_the_timeout():
    import threading

    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    hold = threading.Event()

    class Silent(MemoryFileSystem):  # a store whose client waits forever, as one behind a dead link does
        protocol = "silent"

        def exists(self, path, **kwargs):
            hold.wait()

    fsspec.register_implementation("silent", Silent, clobber=True)
    try:
        assert unreachable("silent://out", timeout_s=1) == "no answer in 1 s"
    finally:
        hold.set()


def test_parquet_is_read_on_the_calling_thread_only(tmp_path):
    # A reader that reads ahead on pyarrow's IO threads leaves them holding Python file objects, and one
    # destroyed there at exit aborts the process (storage.parquet_file). Every reader of ours over a Python
    # file goes through it: the prefix's rows, a checkpoint's ids, examples and input blocks. Run in a
    # fresh interpreter, so no earlier test has started pyarrow's pool: reading must start no thread.
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [str(i) for i in range(5000)], "content": ["x" * 50] * 5000}),
                   tmp_path / "part-0.parquet", row_group_size=1000)
    program = f"""
import os
from batchgen.core.storage import open_fs, parquet_file
from batchgen.core.prompts import read_examples

def threads():
    return len(os.listdir("/proc/self/task"))

fs, path = open_fs({str(tmp_path / "part-0.parquet")!r})
before = threads()
with fs.open(path, "rb") as handle, parquet_file(handle) as parquet:
    rows = sum(batch.num_rows for batch in parquet.iter_batches(batch_size=700, use_threads=False))
rows += len(read_examples({str(tmp_path / "part-0.parquet")!r}))
print(rows, threads() - before)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["10000", "0"], "a Parquet read started threads: " + done.stdout
