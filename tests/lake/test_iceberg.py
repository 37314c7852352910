"""A table made ready for a job's rows and kept in step with its prefix (`batchgen.lake.iceberg`,
`batchgen.lake.commits`), on PyIceberg's SQL catalog over SQLite: real tables, no Ray, no engine. The
prefix's committed data files are written here as Ray Data's checkpointed writer leaves them."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.core.prefix import OutputPrefix
from batchgen.lake.commits import TableCommits
from batchgen.lake.iceberg import IcebergTable, catalog_properties, snapshot_properties
from batchgen.lake.types import LakeRefused
from batchgen.spec.job import OutputTableSpec, SpecError


def table_spec(tmp_path, **extra) -> OutputTableSpec:
    catalog = {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": str(tmp_path / "warehouse")}
    return OutputTableSpec(identifier="evals.answers", catalog=catalog, **extra)


def test_the_warehouse_is_made_absolute_and_the_storage_endpoint_reaches_the_catalog(tmp_path):
    spec = table_spec(tmp_path)
    properties = catalog_properties(spec, {"endpoint_url": "http://127.0.0.1:9000"})
    assert properties["warehouse"] == f"file://{tmp_path}/warehouse" and properties["s3.endpoint"] == "http://127.0.0.1:9000"


def test_credentials_in_the_catalog_section_are_refused():
    with pytest.raises(ValueError, match=r"credentials do not belong in the spec \(credential, s3.secret-access-key\)"):
        OutputTableSpec(identifier="a.b", catalog={"type": "rest", "credential": "x", "s3.secret-access-key": "y"})


def test_only_columns_with_one_value_per_job_partition_a_table():
    assert OutputTableSpec(identifier="a.b", partition_by=["model", "job"]).partition_by == ["model", "job"]
    with pytest.raises(ValueError, match="max_thinking_tokens: a table is partitioned here only by job or model"):
        OutputTableSpec(identifier="a.b", partition_by=["max_thinking_tokens"])


def test_a_new_table_is_created_with_the_rows_schema_a_job_column_and_its_partitions(tmp_path):
    table = IcebergTable(table_spec(tmp_path))
    files = table.prepare(pa.schema([("id", pa.string()), ("n", pa.uint16()), ("empty", pa.null())]), ["job"])
    assert files.schema == pa.schema([("id", pa.string()), ("n", pa.int32()), ("job", pa.string())])
    assert files.untyped == ("empty",)
    made = table.load()
    assert [f.name for f in made.schema().fields] == ["id", "n", "job"]
    assert [made.schema().find_column_name(f.source_id) for f in made.spec().fields] == ["job"]


def test_a_later_job_adds_columns_and_widens_types_and_writes_the_tables_wider_ones(tmp_path):
    table = IcebergTable(table_spec(tmp_path))
    table.prepare(pa.schema([("id", pa.string()), ("n", pa.int32()), ("x", pa.float64()), ("empty", pa.null())]), [])
    files = table.prepare(pa.schema([("id", pa.string()), ("n", pa.int64()), ("x", pa.float32()), ("extra", pa.bool_()),
                                     ("empty", pa.null())]), [])
    schema = table.load().schema()
    assert {f.name: str(f.field_type) for f in schema.fields} == {
        "id": "string", "n": "long", "x": "double", "job": "string", "extra": "boolean"}
    # x is written as the table's double; a column null in every row of both jobs never gets a type
    assert files.schema.field("x").type == pa.float64() and files.untyped == ("empty",)
    typed = table.prepare(pa.schema([("id", pa.string()), ("extra", pa.null())]), [])
    assert typed.schema.field("extra").type == pa.bool_() and typed.untyped == ()  # null, in the table's type


def test_a_column_whose_type_conflicts_with_the_tables_refuses_the_job_in_one_line(tmp_path):
    table = IcebergTable(table_spec(tmp_path))
    table.prepare(pa.schema([("id", pa.string()), ("score", pa.float64())]), [])
    with pytest.raises(LakeRefused) as refused:
        table.prepare(pa.schema([("id", pa.string()), ("score", pa.string())]), [])
    assert str(refused.value) == ("column score: the table evals.answers holds double, this job's rows have string; "
                                  "write to another table, or cast the input's column")
    assert isinstance(refused.value, SpecError) and "\n" not in str(refused.value)
    assert [f.name for f in table.load().schema().fields] == ["id", "score", "job"]  # nothing changed


def test_an_input_column_named_job_is_refused(tmp_path):
    with pytest.raises(LakeRefused, match="input column 'job': a table's job column names the job"):
        IcebergTable(table_spec(tmp_path)).prepare(pa.schema([("id", pa.string()), ("job", pa.string())]), [])


class Prefix:
    """An output prefix as Ray Data's checkpointed writer leaves it: data files named per write task, each
    task's checkpoint committed (`_checkpoint/<stem>.parquet`) or pending, or missing (a kill)."""

    def __init__(self, root):
        self.root, self.write = root, uuid.uuid4().hex
        (root / "_checkpoint").mkdir(parents=True, exist_ok=True)
        self.task = 0

    def task_files(self, ids: list[str], commit: str = "committed", files: int = 1) -> list[str]:
        stem, self.task = f"part-{self.write}-{self.task:06d}", self.task + 1
        per = -(-len(ids) // files)
        for n in range(files):
            part = ids[n * per:(n + 1) * per]
            pq.write_table(pa.table({"id": part, "job": ["j"] * len(part)}), self.root / f"{stem}-{n}.parquet")
        if commit != "none":
            suffix = ".parquet" if commit == "committed" else ".pending.parquet"
            pq.write_table(pa.table({"id": ids}), self.root / "_checkpoint" / f"{stem}{suffix}")
        return [str(self.root / f"{stem}-{n}.parquet") for n in range(files)]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def commits_of(tmp_path, out, **cadence) -> tuple[TableCommits, IcebergTable]:
    table = IcebergTable(table_spec(tmp_path))
    table.prepare(pa.schema([("id", pa.string())]), [])
    prefix = OutputPrefix(str(out))
    properties = snapshot_properties("eval-1", "f00d", prefix.url(prefix.path))
    clock = cadence.pop("clock", Clock())
    return TableCommits(table, prefix, properties, clock=clock, **{"every_rows": 10, "every_s": 60, **cadence}), table


def table_ids(table: IcebergTable) -> list[str]:
    return sorted(table.load().scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())


def test_committed_files_reach_the_table_at_the_cadence_and_uncommitted_ones_never(tmp_path):
    out = tmp_path / "out"
    prefix, clock = Prefix(out), Clock()
    commits, table = commits_of(tmp_path, out, clock=clock)
    prefix.task_files(["a", "b", "c"])
    assert commits.poll() == 0  # 3 rows waiting, for 0 s: not yet
    clock.now = 59.0
    prefix.task_files(["d", "e"], commit="pending")  # written, its commit not made: may be half a file
    prefix.task_files(["f"], commit="none")
    assert commits.poll() == 0
    clock.now = 60.0
    assert commits.poll() == 1 and table_ids(table) == ["a", "b", "c"]  # the oldest waited 60 s
    prefix.task_files([f"r{i}" for i in range(12)], files=3)  # one task, three files, one commit
    assert commits.poll() == 3  # 12 rows waiting: past every_rows at once
    assert len(table_ids(table)) == 15 and commits.poll() == 0
    summaries = [s.summary for s in table.load().snapshots()]
    assert [s["added-records"] for s in summaries] == ["3", "12"]
    assert all(s["batchgen.job"] == "eval-1" and s["batchgen.fingerprint"] == "f00d" and
               s["batchgen.output"] == f"file://{out}" for s in summaries)


def test_after_a_kill_a_new_run_adds_exactly_what_the_table_lacks_and_a_finished_one_nothing(tmp_path):
    out = tmp_path / "out"
    prefix = Prefix(out)
    first, table = commits_of(tmp_path, out)
    prefix.task_files([f"a{i}" for i in range(10)])
    assert first.poll() == 1
    prefix.task_files([f"b{i}" for i in range(4)])  # committed in the prefix; the driver dies before the table
    second, _ = commits_of(tmp_path, out)
    prefix.task_files([f"c{i}" for i in range(4)])
    assert second.finish() == 2
    snapshots = len(table.load().snapshots())
    assert table_ids(table) == sorted([f"a{i}" for i in range(10)] + [f"b{i}" for i in range(4)] + [f"c{i}" for i in range(4)])
    third, _ = commits_of(tmp_path, out)
    assert third.finish() == 0 and len(table.load().snapshots()) == snapshots and third.commits == []


def test_a_commit_whose_outcome_was_unknown_is_not_made_twice(tmp_path, monkeypatch):
    out = tmp_path / "out"
    prefix = Prefix(out)
    commits, table = commits_of(tmp_path, out)
    files = [commits.prefix.url(f) for f in prefix.task_files(["a", "b"])]
    real = type(table.load()).add_files

    def lands_then_fails(self, *args, **kwargs):  # the commit is made, then the answer is lost
        real(self, *args, **kwargs)
        monkeypatch.setattr(type(self), "add_files", real)
        raise ConnectionError("catalog went away")

    monkeypatch.setattr(type(table.load()), "add_files", lands_then_fails)
    assert table.append(files, {}, commits.output) is None  # the table already held them: nothing added again
    assert table_ids(table) == ["a", "b"] and len(table.load().snapshots()) == 1


def test_a_failed_commit_whose_outcome_is_unknown_is_asked_of_the_table_at_the_next_poll(tmp_path, monkeypatch):
    out = tmp_path / "out"
    prefix = Prefix(out)
    commits, table = commits_of(tmp_path, out, every_rows=1)
    prefix.task_files(["a", "b"])
    real = IcebergTable.append

    def lands_then_cannot_ask(self, files, properties, output):  # landed; asking the table fails too
        real(self, files, properties, output)
        raise ConnectionError("catalog went away")

    monkeypatch.setattr(IcebergTable, "append", lands_then_cannot_ask)
    with pytest.raises(ConnectionError):
        commits.poll()
    monkeypatch.setattr(IcebergTable, "append", real)
    assert commits.poll() == 0 and table_ids(table) == ["a", "b"]  # the table holds them: not added again


def test_a_committed_file_whose_task_runs_again_waits_until_the_retry_commits(tmp_path):
    out = tmp_path / "out"
    prefix = Prefix(out)
    commits, table = commits_of(tmp_path, out, every_rows=1)
    prefix.task_files(["a", "b"])
    retried = sorted((out / "_checkpoint").glob("*.parquet"))[0]
    pending = retried.with_name(retried.stem + ".pending.parquet")
    pending.write_bytes(retried.read_bytes())  # Ray retries the task: its file may be rewritten, or deleted
    assert commits.poll() == 0 and table_ids(table) == []
    pending.unlink()  # the retry committed
    assert commits.poll() == 1 and table_ids(table) == ["a", "b"]


def test_a_rerun_after_the_tables_files_were_rewritten_adds_nothing(tmp_path):
    out = tmp_path / "out"
    prefix = Prefix(out)
    commits, table = commits_of(tmp_path, out, every_rows=1)
    prefix.task_files(["a", "b"])
    prefix.task_files(["c"])
    assert commits.finish() == 2
    lake = table.load()
    lake.overwrite(lake.scan().to_arrow())  # compaction, or a copy-on-write delete: the same rows, new files
    assert not any(f.startswith(f"file://{out}/") for f in (t.file.file_path for t in table.load().scan().plan_files()))
    rerun, _ = commits_of(tmp_path, out)
    assert rerun.finish() == 0 and table_ids(table) == ["a", "b", "c"]
