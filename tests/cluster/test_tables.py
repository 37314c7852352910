"""Jobs into Iceberg tables end to end: real vLLM replicas (CPU build, toy model), real Ray Data, PyIceberg's
SQL catalog on SQLite with the warehouse on local disk or on the S3 API server on loopback; the tables read
back by PyIceberg, by Polars and by pyarrow over the data files the table lists."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from batchgen.cluster.pipeline import run
from batchgen.spec.job import JobSpec
from batchgen.toy import corpus
from tests import ROOT
from tests.cluster.test_recovery import cli, kill_group, start, wait_until, write_job
from tests.conftest import TEST_ENGINE, TEST_GRACE

pytestmark = pytest.mark.engine

KEY = ("id", "sample_index", "max_thinking_tokens")


def catalog(tmp_path: Path, warehouse: str | None = None, endpoint: str | None = None) -> dict:
    return {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": warehouse or str(tmp_path / "wh")} | (
        {"s3.endpoint": endpoint} if endpoint else {})


def load(properties: dict, identifier: str = "evals.answers"):
    from pyiceberg.catalog import load_catalog

    properties = dict(properties)
    if "://" not in properties["warehouse"]:
        properties["warehouse"] = "file://" + properties["warehouse"]
    return load_catalog("default", **properties).load_table(identifier)


def lake_input(path: Path, records: int, **extra_columns) -> Path:
    """Parquet records with the column types a lake table does not take as they are."""
    words = [corpus.WORDS[i % len(corpus.WORDS)] for i in range(records)]
    table = pa.table({
        "id": [f"q{i}" for i in range(records)],
        "prompt": [corpus.steps_prompt(w) for w in words],
        "max_thinking_tokens": [8 + i % 3 for i in range(records)],
        "qid": pa.array(range(records), pa.uint32()),
        "asked_at": pa.array([1_700_000_000_000_000_123 + i for i in range(records)], pa.timestamp("ns")),
        "lang": pa.array(["en", "fr"] * (records // 2)).dictionary_encode(),
        "empty": pa.nulls(records),
        "answer": words,
        **extra_columns,
    })
    pq.write_table(table, path)
    return path


def table_job(name: str, source: Path, out: Path, table: dict, **sections) -> JobSpec:
    return JobSpec.model_validate({
        "name": name, "model": {"path": "toy:nemotron-h"}, "engine": TEST_ENGINE,
        "input": {"uri": str(source)}, "output": {"uri": str(out), "format": "iceberg", "table": table,
                                                  "min_rows_per_file": 4},
        "defaults": {"max_tokens": 40, "temperature": 0.0}, "budget": {"grace_tokens": TEST_GRACE},
        "scaling": {"replicas": 1, "gpus_per_replica": 0, "batch_size": 4, "records_in_flight": 8}, **sections,
    })


def keys_once(rows: list[dict]) -> Counter:
    counts = Counter(tuple(r[k] for k in KEY) for r in rows)
    assert [k for k, n in counts.items() if n > 1] == [], "a key is in the table twice"
    return counts


def test_a_job_fills_a_new_table_every_reader_agrees_and_a_second_job_evolves_it(tmp_path, ray_cluster):
    import polars as pl

    properties = catalog(tmp_path)
    table = {"identifier": "evals.answers", "catalog": properties, "commit_every_rows": 8, "partition_by": ["job"]}
    first = table_job("lake-first", lake_input(tmp_path / "in.parquet", 24), tmp_path / "wh" / "first", table)
    stats = run(first)
    assert stats.records == 24 and sum(c["rows"] for c in stats.table["commits"]) == 24
    lake = load(properties)
    rows = lake.scan().to_arrow().to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(f"q{i}" for i in range(24)) and len(keys_once(rows)) == 24
    assert {r["job"] for r in rows} == {"lake-first"} and all(r["content"] is not None for r in rows)
    by_id = {r["id"]: r for r in rows}
    # values kept through the type rules: uint32 as long, nanoseconds as microseconds (truncated), dictionary as string
    assert by_id["q3"]["qid"] == 3 and by_id["q3"]["lang"] == "fr" and by_id["q3"]["answer"] == corpus.WORDS[3]
    assert by_id["q3"]["asked_at"] == datetime.datetime(2023, 11, 14, 22, 13, 20, 0)  # ...000000123 + 3 ns
    assert "empty" not in lake.schema().column_names  # null in every record: no type to give it
    snapshots = lake.snapshots()
    # One snapshot per commit (how many depends on when write tasks finish; the kill test below shows commits
    # made while the job runs).
    assert len(snapshots) == len(stats.table["commits"]) >= 1
    assert all(s.summary["batchgen.job"] == "lake-first" and s.summary["batchgen.version"] for s in snapshots)

    # An independent reader: pyarrow over the data files the table lists, with the types Spark and Trino take.
    files = [task.file.file_path for task in lake.scan().plan_files()]
    assert all(f.startswith(f"file://{tmp_path}/wh/first/part-") for f in files)
    read = pa.concat_tables([pq.read_table(f.removeprefix("file://")) for f in files])
    assert read.num_rows == 24 and sorted(read.column("id").to_pylist()) == sorted(by_id)

    def kinds(t: pa.DataType):
        yield t
        for i in range(t.num_fields):
            yield from kinds(t.field(i).type)

    every = [k for field in read.schema for k in kinds(field.type)]
    assert not [k for k in every if pa.types.is_unsigned_integer(k) or pa.types.is_null(k)]
    assert {k.unit for k in every if pa.types.is_timestamp(k)} == {"us"}

    frame = pl.scan_iceberg(lake).select("id", "job", "qid").collect()
    assert frame.height == 24 and sorted(frame["id"].to_list()) == sorted(by_id) and frame["qid"].dtype == pl.Int64

    # A rerun of the finished job commits nothing.
    assert run(first).already_complete and len(load(properties).snapshots()) == len(snapshots)

    # A second job (another name, an extra column) into the same table: the schema evolves, the jobs' rows
    # stay apart by their job column, and the first job's rows read the new column as null.
    second = table_job("lake-second", lake_input(tmp_path / "in2.parquet", 8, difficulty=list(range(8))),
                       tmp_path / "wh" / "second", table)
    run(second)
    lake = load(properties)
    assert "difficulty" in lake.schema().column_names
    rows = lake.scan().to_arrow().to_pylist()
    assert Counter(r["job"] for r in rows) == {"lake-first": 24, "lake-second": 8}
    assert {r["difficulty"] for r in rows if r["job"] == "lake-first"} == {None}
    assert sorted(r["difficulty"] for r in rows if r["job"] == "lake-second") == list(range(8))
    assert pl.scan_iceberg(lake).filter(pl.col("job") == "lake-second").collect().height == 8

    # inspect through the table: the jobs that committed into it, one chosen by name; through the prefix, the
    # survey says what the table holds of it.
    through = [f"--catalog={k}={v}" for k, v in properties.items()]
    both = cli("inspect", "iceberg://evals.answers", *through)
    assert both.returncode == 2 and "the table holds rows of the jobs lake-second" in both.stderr
    assert "lake-first" in both.stderr and "choose one with --job" in both.stderr
    found = json.loads(cli("inspect", "iceberg://evals.answers", *through, "--job", "lake-first", "--json").stdout)
    assert found["job"] == "lake-first" and found["done"] == found["total"] == 24 and found["state"] == "complete"
    assert found["table"]["rows"] == 24 and found["table"]["snapshots"] == len(snapshots)
    described = cli("inspect", str(tmp_path / "wh" / "second")).stdout
    assert "table      evals.answers: 8 rows of this output in" in described
    page = tmp_path / "report.html"
    assert cli("report", "iceberg://evals.answers", *through, "--job", "lake-second", "-o", str(page)).returncode == 0
    assert "8 done of 8" in page.read_text() and "lake-second" in page.read_text()

    # A third whose column conflicts with the table's type is refused before any engine starts: exit 2, one line.
    third = table_job("lake-third", lake_input(tmp_path / "in3.parquet", 4, difficulty=["hard"] * 4),
                      tmp_path / "wh" / "third", table)
    spec_file = tmp_path / "third.yaml"
    spec_file.write_text(yaml.safe_dump(third.model_dump(mode="json")))
    refused = subprocess.run([sys.executable, "-m", "batchgen.cli.app", "run", str(spec_file)], cwd=ROOT, text=True,
                             capture_output=True, timeout=300, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert ("column difficulty: the table evals.answers holds int64, this job's rows have string; write to another "
            "table, or cast the input's column") in refused.stderr
    assert "engine" not in refused.stderr.lower() and len(load(properties).snapshots()) == len(lake.snapshots())


# On local disk in `make bench` (`slow`); on the S3 API server in `make test`.
@pytest.mark.recovery
@pytest.mark.parametrize("where", [pytest.param("local", marks=pytest.mark.slow), "s3"])
def test_a_driver_killed_after_a_table_commit_then_rerun_leaves_every_key_once(tmp_path, where, request):
    import polars as pl

    if where == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        warehouse, storage = f"s3://batchgen-test/tables-{tmp_path.name}", {"endpoint_url": endpoint}
    else:
        endpoint, warehouse, storage = None, str(tmp_path / "wh"), None
    properties = catalog(tmp_path, warehouse)
    out = f"{warehouse}/jobs/recovery"
    output = {"format": "iceberg", "min_rows_per_file": 8,
              "table": {"identifier": "evals.answers", "catalog": properties, "commit_every_rows": 16}}
    job = write_job(tmp_path, 300, out, storage=storage)
    spec = yaml.safe_load(job.read_text())
    spec["output"] |= output
    job.write_text(yaml.safe_dump(spec))
    reading = properties | ({"s3.endpoint": endpoint} if endpoint else {})

    def in_table() -> int:
        try:
            snapshot = load(reading).current_snapshot()
        except Exception:  # the table is made once the input is scanned
            return 0
        return int(snapshot.summary["total-records"]) if snapshot else 0

    first = start(job)
    wait_until(lambda: in_table() >= 16, 600, "a commit into the table")
    kill_group(first)
    kept = in_table()
    assert 16 <= kept < 300
    second = subprocess.run([sys.executable, "-m", "batchgen.cli.app", "run", str(job)], cwd=ROOT, capture_output=True,
                            text=True, timeout=900, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert second.returncode == 0, second.stderr[-3000:]
    lake = load(reading)
    rows = lake.scan(selected_fields=(*KEY, "job")).to_arrow().to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(300)) and len(keys_once(rows)) == 300
    snapshots = lake.snapshots()
    assert all(s.summary["batchgen.job"] == "recovery" and s.summary["batchgen.output"] in (out, f"file://{out}")
               for s in snapshots)
    assert sum(int(s.summary["added-records"]) for s in snapshots) == 300  # no commit added a row twice
    options = {"aws_endpoint_url": endpoint, "aws_region": "us-east-1", "aws_allow_http": "true"} if endpoint else None
    assert pl.scan_iceberg(lake, storage_options=options).select("id").collect().height == 300
    again = subprocess.run([sys.executable, "-m", "batchgen.cli.app", "run", str(job)], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert again.returncode == 0 and "already complete" in again.stdout, again.stderr[-2000:]
    assert len(load(reading).snapshots()) == len(snapshots)
