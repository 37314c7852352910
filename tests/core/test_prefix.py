"""The output prefix: its identity (manifest), what it refuses, committed records, whole files only
(`batchgen.core.prefix`)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.core.prefix import CommittedRecords, Manifest, OutputPrefix, PrefixRefused
from batchgen.core.storage import arrow_fs, open_fs
from tests.inputs import (
    inputs_at,
    spec_for,
    write_lines,
)


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


def test_a_changed_prompt_is_refused_onto_the_same_output_unless_allowed(tmp_path):
    from batchgen.core.columns import job_inputs
    from batchgen.core.prompts import prompt_plan

    write_lines(tmp_path / "in.jsonl", [{"q": "x"}])
    write_lines(tmp_path / "shots.jsonl", [{"q": "a", "a": "b"}])
    examples = {"uri": str(tmp_path / "shots.jsonl"), "assistant": "{{ a }}"}

    def manifest(user):
        spec = spec_for(tmp_path / "in.jsonl", tmp_path / "out", prompt={"user": user, "examples": examples})
        return Manifest.of(spec, job_inputs(spec)[1], prompt_plan(spec))

    prefix = OutputPrefix(str(tmp_path / "out"))
    prefix.write_manifest(manifest("Q: {{ q }}"))
    pq.write_table(pa.table({"id": ["x"]}), tmp_path / "out" / "part-a.parquet")
    assert prefix.state(manifest("Q: {{ q }}")) == "resume"
    with pytest.raises(PrefixRefused, match=r"different spec \(changed: prompt\)"):
        prefix.state(manifest("Question: {{ q }}"))
    assert prefix.state(manifest("Question: {{ q }}"), allow_changed_spec=True) == "resume"
    write_lines(tmp_path / "shots.jsonl", [{"q": "a", "a": "c"}])  # the same spec, other examples
    with pytest.raises(PrefixRefused, match=r"different spec \(changed: prompt\)"):
        prefix.state(manifest("Q: {{ q }}"))


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


def test_committed_records_are_counted_as_files_commit_each_file_read_once(tmp_path):
    checkpoint = tmp_path / "_checkpoint"
    checkpoint.mkdir()
    counter = CommittedRecords(OutputPrefix(str(tmp_path)))
    pq.write_table(pa.table({"id": ["a", "a", "b"]}), checkpoint / "part-1.parquet")
    pq.write_table(pa.table({"id": ["c"]}), checkpoint / "part-2.pending.parquet")
    assert counter.count() == 2
    (checkpoint / "part-1.parquet").write_bytes(b"not read again")  # counted already: never reopened
    (checkpoint / "part-2.pending.parquet").rename(checkpoint / "part-2.parquet")  # Ray Data's commit
    assert counter.count() == 3


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


def test_the_pending_checkpoint_name_is_ray_datas():
    from ray.data.checkpoint.checkpoint_writer import PENDING_CHECKPOINT_SUFFIX

    from batchgen.core.prefix import PENDING_SUFFIX

    assert PENDING_SUFFIX == f"{PENDING_CHECKPOINT_SUFFIX}.parquet"
