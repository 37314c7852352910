"""Nothing lost: a driver killed mid-job and rerun, a replica's engine killed mid-job, a changed spec onto
the same output, a rerun of a finished job. Real processes, real engine; every output checked for
completeness and uniqueness by id."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from batchgen.core.prefix import data_files
from batchgen.toy import corpus
from tests import ROOT
from tests.conftest import TEST_ENGINE

pytestmark = [pytest.mark.engine, pytest.mark.recovery]


GRADE = {"reference": "answer", "extract": "content"}  # the toy names a word, not always the one asked for


def write_job(tmp_path: Path, records: int, output: str, storage: dict | None = None, **extra) -> Path:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(
        json.dumps({"id": f"r{i}", "prompt": corpus.steps_prompt(corpus.WORDS[i % len(corpus.WORDS)]),
                    "max_thinking_tokens": 12 + i % 5, "answer": corpus.WORDS[i % len(corpus.WORDS)]}) + "\n"
        for i in range(records)
    ))
    spec = {
        "name": "recovery", "model": {"path": "toy:nemotron-h"}, "engine": TEST_ENGINE,
        "input": {"uri": str(source)}, "output": {"uri": output, "min_rows_per_file": 8},
        "defaults": {"max_tokens": 60, "temperature": 0.0}, "budget": {"grace_tokens": 20},
        "scaling": {"replicas": 1, "gpus_per_replica": 0, "batch_size": 8, "records_in_flight": 16},
        "storage": storage or {}, **extra,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def start(job: Path, *args) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen([sys.executable, "-m", "batchgen.cli.app", "run", str(job), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def output_ids(out, fs=None) -> list[str]:
    """The ids in the committed data files under `out` (a local path, or a bucket path on `fs`)."""
    fs = fs or fsspec.filesystem("file")
    fs.invalidate_cache()  # s3fs caches listings; this is polled while another process writes
    files = data_files(fs, str(out))  # what a reader should take: not the `_`-prefixed files
    ids = []
    for f in files:
        with fs.open(f, "rb") as handle:
            ids += pq.read_table(handle, columns=["id"]).column("id").to_pylist()
    return ids


def output_rows(out, fs, columns: list[str]) -> list[dict]:
    fs.invalidate_cache()
    rows = []
    for f in data_files(fs, str(out)):
        with fs.open(f, "rb") as handle:
            rows += pq.read_table(handle, columns=columns).to_pylist()
    return rows


def committed(out, fs=None) -> int:
    return len(output_ids(out, fs))


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the driver alone, then clear what it had started (its local Ray) once it is gone."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(3)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# On local disk in `make bench` (`slow`): the object store's run proves the same and more in `make test`.
@pytest.mark.parametrize("where", [pytest.param("local", marks=pytest.mark.slow), "s3"])
def test_driver_killed_mid_job_then_rerun_gives_exactly_once_output(tmp_path, where, request):
    if where == "s3":
        import s3fs

        endpoint = request.getfixturevalue("s3_endpoint")
        fs, out = s3fs.S3FileSystem(endpoint_url=endpoint), f"batchgen-test/recovery-{tmp_path.name}"
        job = write_job(tmp_path, 400, f"s3://{out}/", storage={"endpoint_url": endpoint}, grade=GRADE)
    else:
        fs, out = fsspec.filesystem("file"), str(tmp_path / "out")
        job = write_job(tmp_path, 400, out, grade=GRADE)
    uri, storage = (f"s3://{out}/", ["--storage", f"endpoint_url={endpoint}"]) if where == "s3" else (out, [])
    first = start(job)
    wait_until(lambda: committed(out, fs) >= 16, 600, "some committed output")
    kill_group(first)
    before = committed(out, fs)
    assert 16 <= before < 400 and not fs.exists(f"{out}/_SUCCESS")
    # What a killed job left, as `inspect` and `report` see it. The kill may land between a data file and
    # its checkpoint commit: that file's rows are not committed, and the resume deletes and redoes them.
    found = inspect(uri, storage)
    assert found["state"] == "partial" and found["resumable"] and found["done"] == before and found["total"] == 400
    assert found["committed"] <= before
    page = tmp_path / "killed.html"
    reported = cli("report", uri, "-o", str(page), *storage)
    assert reported.returncode == 0, reported.stderr
    assert f"{before:,} done of 400" in page.read_text() and "partial" in page.read_text()
    second = subprocess.run([sys.executable, "-m", "batchgen.cli.app", "run", str(job)], cwd=ROOT, capture_output=True,
                            text=True, timeout=900, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert second.returncode == 0, second.stderr[-3000:]
    ids = output_ids(out, fs)
    assert sorted(ids) == sorted(f"r{i}" for i in range(400))  # complete, and each id exactly once
    fs.invalidate_cache()
    stats = json.loads(fs.cat_file(f"{out}/_stats.json"))
    assert stats["records"] == 400 and stats["skipped_already_done"] == found["committed"]  # kept, not redone
    assert fs.exists(f"{out}/_SUCCESS")
    found = inspect(uri, storage)
    assert found["state"] == "complete" and found["done"] == found["total"] == 400 and found["errors"] == 0
    # The graded figures are those of the committed rows, whatever the kill did.
    rows = output_rows(out, fs, ["correct", "max_thinking_tokens"])
    assert all(r["correct"] is not None for r in rows)
    by_budget = {g["max_thinking_tokens"]: g for g in found["scores"] if g["reasoning"] == "on"}
    assert sorted(by_budget) == [12, 13, 14, 15, 16]
    for budget, group in by_budget.items():
        graded = [r["correct"] for r in rows if r["max_thinking_tokens"] == budget]
        assert (group["rows"], group["correct"]) == (len(graded), sum(graded))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "batchgen.cli.app", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def inspect(uri: str, storage: list[str]) -> dict:
    inspected = cli("inspect", uri, "--json", *storage)
    assert inspected.returncode == 0, inspected.stderr
    return json.loads(inspected.stdout)


def test_a_killed_engine_is_restarted_and_its_records_retried(tmp_path):
    out = tmp_path / "out"
    job = write_job(tmp_path, 300, str(out))
    proc = start(job)

    def engines():  # this job's engine processes only: descendants of its driver
        return [p for p in psutil.Process(proc.pid).children(recursive=True)
                if "EngineCore" in p.name() + " ".join(p.cmdline())]

    wait_until(lambda: committed(out) >= 8 and engines(), 600, "a running engine with some output")
    for engine in engines():
        engine.kill()
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    ids = output_ids(out)
    assert sorted(ids) == sorted(f"r{i}" for i in range(300))
    rows = [r for f in sorted(out.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert not [r for r in rows if r["error"]], "no record may pay for the engine's death"


def test_a_changed_spec_is_refused_and_a_finished_job_is_not_redone(tmp_path):
    out = tmp_path / "out"
    job = write_job(tmp_path, 8, str(out))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "batchgen.cli.app", "run", str(job), *a], cwd=ROOT,
                                    capture_output=True, text=True, timeout=900, env=env)
    assert run().returncode == 0
    mtimes = {f: f.stat().st_mtime for f in out.glob("*.parquet")}
    assert mtimes
    again = run()
    assert again.returncode == 0 and "already complete" in again.stdout
    assert {f: f.stat().st_mtime for f in out.glob("*.parquet")} == mtimes
    changed = run("--set", "defaults.temperature=0.7")
    assert changed.returncode == 1
    assert re.search(r"holds results of a different spec \(changed: defaults\)", changed.stderr)
