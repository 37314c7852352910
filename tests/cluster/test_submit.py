"""`batchgen submit` and friends against a real Ray head on loopback (`ray start --head`, its dashboard
and job server), with Ray 2.60's token authentication on, as a user's cluster would have it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import ROOT, free_port

VENV_BIN = Path(sys.executable).parent
with_engine = pytest.mark.engine  # the tests that run a job on the head (the toy model's engine)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """The job server's address; the head runs with this virtualenv first on PATH, so the submitted
    entrypoint finds this `batchgen`."""
    gcs, dashboard = free_port(), free_port()
    temp_dir = tmp_path_factory.mktemp("rayhead")
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    subprocess.run(
        [VENV_BIN / "ray", "start", "--head", f"--port={gcs}", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard}", "--num-cpus=4", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        env=env, check=True, capture_output=True, timeout=180,
    )
    try:
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        stop_head(temp_dir)


def stop_head(temp_dir: Path) -> None:
    """Ends this head's processes only (`ray stop` would end every Ray on the machine)."""
    import psutil

    roots = [p for p in psutil.process_iter(["cmdline"]) if str(temp_dir) in " ".join(p.info["cmdline"] or [])]
    family = {q for p in roots for q in [p, *p.children(recursive=True)]}
    for process in family:
        process.terminate()
    _, alive = psutil.wait_procs(family, timeout=30)
    for process in alive:
        process.kill()


def batchgen(*args, timeout=900):
    # The client finds the head's token through RAY_AUTH_MODE=token (~/.ray/auth_token).
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([VENV_BIN / "batchgen", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def demo_overrides(out: Path) -> list[str]:
    return ["--set", f"input.uri={ROOT / 'jobs' / 'demo-prompts.jsonl'}", "--set", f"output.uri={out}"]


def wait_for(address, sid, states, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = batchgen("status", sid, "--address", address).stdout.strip()
        if status in states:
            return status
        time.sleep(2)
    raise AssertionError(f"{sid} never reached {states}")


@with_engine
def test_submit_the_demo_and_wait_for_success(head, tmp_path):
    # The module's first test: it submits the moment `ray start --head` returns, when the head may have no
    # job agent yet (batchgen waits that out).
    out = tmp_path / "out"
    started = time.monotonic()
    proc = batchgen("submit", ROOT / "jobs" / "demo.yaml", *demo_overrides(out), "--address", head, "--wait",
                    "--submission-id", "demo-wait", "--env", "BATCHGEN_NOTE=test")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "demo-wait"
    assert "demo-wait SUCCEEDED" in proc.stderr and "37 records" in proc.stderr  # the job's own log, streamed
    assert json.loads((out / "_stats.json").read_text())["records"] == 37 and (out / "_SUCCESS").exists()
    print(f"submit to SUCCEEDED: {elapsed:.1f} s")
    assert batchgen("status", "demo-wait", "--address", head).stdout.strip() == "SUCCEEDED"
    assert "37 records" in batchgen("logs", "demo-wait", "--address", head).stdout
    listed = batchgen("list", "--address", head).stdout
    assert "demo-wait\tSUCCEEDED\tdemo" in listed


@with_engine
def test_stop_a_running_job(head, tmp_path):
    proc = batchgen("submit", ROOT / "jobs" / "demo.yaml", *demo_overrides(tmp_path / "out"), "--address", head)
    sid = proc.stdout.strip()
    assert proc.returncode == 0 and sid, proc.stderr
    wait_for(head, sid, {"RUNNING"})
    stopped = batchgen("stop", sid, "--address", head)
    assert stopped.returncode == 0 and "stopping" in stopped.stdout
    assert wait_for(head, sid, {"STOPPED", "FAILED", "SUCCEEDED"}) == "STOPPED"
    assert not (tmp_path / "out" / "_SUCCESS").exists()


@with_engine
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "scaling.replicas=0"], "scaling.replicas"),
        (["--set", "input.uri=jobs/demo-prompts.jsonl"], "relative local path the cluster cannot see"),
        (["--env", "AWS_SECRET_ACCESS_KEY=abc"], "secrets do not go into the runtime environment"),
    ],
)
def test_bad_submissions_are_refused_before_anything_is_submitted(head, tmp_path, args, message):
    before = batchgen("list", "--address", head).stdout
    base = demo_overrides(tmp_path / "out") if "input.uri=jobs/demo-prompts.jsonl" not in args else ["--set", f"output.uri={tmp_path}"]
    proc = batchgen("submit", ROOT / "jobs" / "demo.yaml", *base, *args, "--address", head)
    assert proc.returncode == 2 and message in proc.stderr
    assert batchgen("list", "--address", head).stdout == before


def test_an_unreachable_address_is_one_clear_line():
    proc = batchgen("status", "x", "--address", f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("batchgen: cannot reach the Ray job server at http://127.0.0.1:")
    assert len(proc.stderr.strip().splitlines()) == 1


class Refusing:
    """A job server that answers as Ray 2.60's does while a new head has no job agent, `refusals` times."""

    def __init__(self, refusals: int):
        self.refusals, self.calls = refusals, 0

    def submit_job(self, **request):
        self.calls += 1
        if self.calls <= self.refusals:
            raise RuntimeError("Request failed with status code 500: No available agent to submit job, please try "
                               "again later..")
        return "raysubmit_1"


def test_a_head_without_its_job_agent_yet_is_waited_for_saying_so(monkeypatch):
    from batchgen.cluster import submit as jobs
    from batchgen.spec.job import parse_spec

    spec = parse_spec({"name": "w", "model": {"path": "m"}, "input": {"uri": "s3://b/in.jsonl"},
                       "output": {"uri": "s3://b/out"}})
    server, said = Refusing(2), []
    monkeypatch.setattr(jobs, "client", lambda address: server)
    monkeypatch.setattr(jobs.time, "sleep", lambda s: None)
    assert jobs.submit("http://h:8265", spec, [], [], None, said.append) == "raysubmit_1"
    assert server.calls == 3 and said == [
        "batchgen: waiting for the cluster's job agent (Ray says: Request failed with status code 500: No available "
        "agent to submit job, please try again later..)"]
    monkeypatch.setattr(jobs, "client", lambda address: Refusing(10**9))
    with pytest.raises(jobs.ClusterError, match=r"^submit: the cluster's job agent did not come up in 0 s \(Request failed"):
        jobs.submit("http://h:8265", spec, [], [], None, wait_s=0)


def test_a_relative_examples_file_is_refused_before_submitting_and_a_template_file_travels_inside_the_spec(tmp_path):
    from batchgen.cluster.submit import check_portable, entrypoint
    from batchgen.spec.job import JobSpec, SpecError, parse_spec

    (tmp_path / "qa.yaml").write_text("user: 'Q: {{ question }}'\n")
    document = {"name": "t", "model": {"path": "toy:nemotron-h"}, "input": {"uri": "s3://b/in/"},
                "output": {"uri": "s3://b/out/"}, "prompt": {"template_file": str(tmp_path / "qa.yaml")}}
    spec = parse_spec(document)
    check_portable(spec)
    sent = entrypoint(spec).split("--spec-json ", 1)[1].strip("'")
    assert JobSpec.model_validate_json(sent).prompt.user == "Q: {{ question }}"
    with pytest.raises(SpecError, match="^prompt.examples.uri: 'shots.jsonl' is a relative local path"):
        check_portable(parse_spec({**document, "prompt": {"user": "{{ q }}",
                                                          "examples": {"uri": "shots.jsonl", "assistant": "{{ a }}"}}}))


def test_a_catalog_on_the_submitting_machine_is_refused_before_submitting():
    from batchgen.cluster.submit import check_portable
    from batchgen.spec.job import SpecError, parse_spec

    def spec(catalog: dict):
        return parse_spec({"name": "t", "model": {"path": "toy:nemotron-h"}, "input": {"uri": "s3://b/in/"},
                           "output": {"uri": "s3://b/wh/out/", "format": "iceberg",
                                      "table": {"identifier": "evals.answers", "catalog": catalog}}})

    check_portable(spec({"type": "sql", "uri": "sqlite:////shared/catalog.db", "warehouse": "s3://b/wh"}))
    check_portable(spec({"type": "rest", "uri": "https://catalog.example/api", "warehouse": "lake"}))
    with pytest.raises(SpecError, match="^output.table.catalog.uri: 'catalog.db' is a relative local path"):
        check_portable(spec({"type": "sql", "uri": "sqlite:///catalog.db", "warehouse": "s3://b/wh"}))
