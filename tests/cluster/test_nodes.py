"""Losing a node loses nothing: real multi-node Ray clusters on loopback (each node its own `ray start
--block`, token auth on), nodes killed the way a preempted machine goes (SIGKILL of the node's whole
process group: raylet, workers, agents, and for the head its GCS), a job driven as a user drives it (its
own process, `RAY_ADDRESS` naming the head). The replicas are the stand-in (`tests/standin.py`): what is
tested is the job's guarantees across nodes, not generation, and two vLLM engines do not fit beside two
Ray nodes on a 2-core machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from batchgen.core.prefix import PENDING_SUFFIX
from tests import ROOT, free_port

pytestmark = [pytest.mark.nodes]
VENV_BIN = Path(sys.executable).parent
DRIVER = """
import json, sys
from batchgen.cluster.pipeline import run
from batchgen.spec.job import JobSpec
from tests.standin import StandIn
from batchgen.views.progress import LogProgress
spec = JobSpec.model_validate(json.load(open(sys.argv[1])))
shown = LogProgress(sys.stdout, every=0)
stats = run(spec, report=shown, replica_factory=StandIn)
print("DONE", stats.records, stats.rows, stats.errors, flush=True)
"""


def kill_sessions(*leaders: int) -> None:
    """SIGKILL to every process of each session `leaders` lead. A session, not a process group: Ray gives each
    of a node's workers a process group of its own, and a worker spared by the kill would go on writing
    until it notices its raylet is gone, as no process of a preempted machine does."""
    victims = []
    for pid in psutil.pids():
        try:
            if os.getsid(pid) in leaders:
                victims.append(pid)
        except ProcessLookupError:
            pass
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Cluster:
    """Ray nodes on this machine, each a `ray start --block` in a session of its own, so that killing a
    node's process group kills exactly that node."""

    def __init__(self, head_cpus: int, logs: Path):
        # Ray's socket paths must stay under 107 bytes: a short temp dir, not pytest's (the nodes' own
        # output goes to `logs`, kept with the test's files).
        self.temp_dir, self.logs = tempfile.mkdtemp(prefix="bg-ray-"), logs
        self.port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "token",
                    "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: list[subprocess.Popen] = []
        self.alive: dict[int, int] = {}  # pid of a live node's `ray start` -> its CPUs
        self.head = self.add(head_cpus, head=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, cpus: int, head: bool = False, tries: int = 3) -> subprocess.Popen:
        """Starts a node and waits until the cluster counts its CPUs. A worker whose start fails (on a
        loaded machine `ray start` can time out reaching the GCS) is started again, as a cluster's node
        provider would, up to `tries` times."""
        for attempt in range(1, tries + 1):
            node = self._start(cpus, head)
            self._until(lambda: self.cpus() >= sum(self.alive.values()) or node.poll() is not None,
                        f"a node with {cpus} CPUs never joined")
            if node.poll() is None:
                return node
            self.alive.pop(node.pid, None)
            if head:
                break
        raise AssertionError(f"a node with {cpus} CPUs failed to start {attempt} times (its logs: {self.logs})")

    def _start(self, cpus: int, head: bool) -> subprocess.Popen:
        # Every port a node would take by default on its own: another Ray on the machine (a test's local
        # one, a CI run beside it) may hold the defaults, and the node would never come up.
        ports = [f"--{name}={free_port()}" for name in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                         "runtime-env-agent-port", "metrics-export-port")]
        args = [VENV_BIN / "ray", "start", "--block", f"--num-cpus={cpus}", "--disable-usage-stats",
                "--node-ip-address=127.0.0.1", *ports]
        args += (["--head", f"--port={self.port}", f"--ray-client-server-port={free_port()}",
                  "--include-dashboard=false", f"--temp-dir={self.temp_dir}"]
                 if head else [f"--address={self.address}"])
        log = open(self.logs / f"node-{self.port}-{len(self.nodes)}.log", "w")
        node = subprocess.Popen(args, env=self.env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        self.nodes.append(node)
        # What the live nodes hold, not what `ray status` counted before: a node killed moments ago may
        # still be counted until the GCS declares it dead.
        self.alive[node.pid] = cpus
        return node

    def cpus(self) -> float:
        """The CPUs of the cluster's live nodes (`ray status`), 0 while the head does not answer."""
        status = subprocess.run([VENV_BIN / "ray", "status", f"--address={self.address}"], env=self.env,
                                capture_output=True, text=True, timeout=60)
        for line in status.stdout.splitlines():
            if line.strip().endswith(" CPU") and "/" in line:
                return float(line.split("/")[1].split()[0])
        return 0.0

    def kill(self, *nodes: subprocess.Popen) -> None:
        """As preempted machines go: every process of each node at once, no shutdown."""
        for node in nodes:
            self.alive.pop(node.pid, None)
        kill_sessions(*(node.pid for node in nodes))
        for node in nodes:
            node.wait(timeout=30)

    def stop(self) -> None:
        """Kills every node at once."""
        self.kill(*self.nodes)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    @staticmethod
    def _until(ready, failure: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise AssertionError(failure)
            time.sleep(1)


@pytest.fixture
def cluster(tmp_path):
    """Starts clusters (`cluster(head_cpus)`) and stops every one at the end."""
    made: list[Cluster] = []

    def start(head_cpus: int) -> Cluster:
        made.append(Cluster(head_cpus, tmp_path))
        return made[-1]

    yield start
    for each in made:
        each.stop()


def write_job(tmp_path: Path, records: int, delay: float = 1.0) -> Path:
    """`records` records of `delay` to 2 x `delay` seconds each on two stand-in replicas of one CPU; small
    data files, so rows land all through the job."""
    lines = [json.dumps({"id": f"r{i}", "prompt": f"say {i}", "delay": delay * (1 + (i % 5) * 0.25)})
             for i in range(records)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    spec = {"name": "nodes", "model": {"path": "standin:nodes"}, "input": {"uri": str(tmp_path / "in.jsonl")},
            "output": {"uri": str(tmp_path / "out"), "min_rows_per_file": 16},
            "scaling": {"replicas": 2, "gpus_per_replica": 0, "cpus_per_replica": 1, "batch_size": 8,
                        "records_in_flight": 16}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    return tmp_path / "spec.json"


def start_driver(cluster: Cluster, spec: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(spec)], cwd=ROOT, start_new_session=True,
                            env={**cluster.env, "RAY_ADDRESS": cluster.address},
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def committed_rows(out: Path) -> int:
    files = [f for f in (out / "_checkpoint").glob("*.parquet") if ".pending" not in f.name] if out.exists() else []
    return sum(pq.read_metadata(f).num_rows for f in files)


def wait_until(ready, failure: str, driver: subprocess.Popen, timeout: float = 300) -> float:
    """Seconds until `ready()`; fails if the driver ends first."""
    started = time.monotonic()
    while not ready():
        assert driver.poll() is None, f"the driver ended first: {failure}"
        assert time.monotonic() - started < timeout, failure
        time.sleep(0.5)
    return time.monotonic() - started


def assert_exactly_once(out: Path, records: int) -> None:
    ids = [rid for f in out.glob("*.parquet") for rid in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    assert sorted(ids) == sorted(f"r{i}" for i in range(records)), (len(ids), len(set(ids)))
    errors = [e for f in out.glob("*.parquet") for e in pq.read_table(f, columns=["error"]).column("error").to_pylist()]
    assert errors == [None] * records, "no record pays for a node's death with an error row"
    assert (out / "_SUCCESS").exists()


def rerun_on_a_new_cluster(cluster, spec: Path, tmp_path: Path) -> None:
    """The same job run again on a new two-node cluster: it completes, exactly once."""
    nodes = cluster(2)
    nodes.add(2)
    rerun = start_driver(nodes, spec, tmp_path / "rerun.log")
    rerun.wait(timeout=300)
    text = (tmp_path / "rerun.log").read_text()
    assert rerun.returncode == 0, text[-3000:]
    assert "DONE 320 320 0" in text
    assert_exactly_once(tmp_path / "out", 320)


def test_a_lost_worker_node_loses_no_record_and_the_job_waits_for_a_node_then_finishes(tmp_path, cluster):
    nodes = cluster(2)
    worker = nodes.add(2)
    spec, log, out = write_job(tmp_path, 320), tmp_path / "driver.log", tmp_path / "out"
    driver = start_driver(nodes, spec, log)
    try:
        wait_until(lambda: committed_rows(out) >= 48, "no rows landed", driver)
        killed = time.monotonic()
        nodes.kill(worker)
        # Two CPUs left of the four the job needs: once the GCS sees the node dead the job says so (within a
        # minute), and waits.
        waited = wait_until(lambda: "waiting for a node with 2 more CPU" in log.read_text(),
                            "the job never said what it waits for", driver, timeout=60)
        nodes.add(2)
        joined = time.monotonic() - killed
        driver.wait(timeout=300)
        print(f"TIMINGS lost worker: seen dead and said {waited:.0f} s after the kill, a new node joined at "
              f"{joined:.0f} s, the job finished at {time.monotonic() - killed:.0f} s")
    finally:
        if driver.poll() is None:
            kill_sessions(driver.pid)
    text = log.read_text()
    assert driver.returncode == 0, text[-3000:]
    assert "DONE 320 320 0" in text
    assert_exactly_once(out, 320)
    assert waited < 60
    # the display never counts rows that could still be lost: it never goes back
    shown = [int(line.split("/")[0].strip().replace(",", "")) for line in text.splitlines() if " records (" in line]
    assert shown == sorted(shown) and shown[-1] == 320


@pytest.mark.slow
def test_a_lost_head_ends_the_run_saying_so_and_a_rerun_on_a_new_cluster_completes_it(tmp_path, cluster):
    first = cluster(2)
    first.add(2)
    spec, log, out = write_job(tmp_path, 320), tmp_path / "driver.log", tmp_path / "out"
    driver = start_driver(first, spec, log)
    try:
        wait_until(lambda: committed_rows(out) >= 48, "no rows landed", driver)
        killed = time.monotonic()
        first.kill(first.head)
        said = wait_until(lambda: "the Ray cluster stopped answering" in log.read_text(),
                          "the run never said its cluster was lost", driver, timeout=60)
        driver.wait(timeout=180)
        ended = time.monotonic() - killed
    finally:
        if driver.poll() is None:
            kill_sessions(driver.pid)
    assert driver.returncode != 0 and said < 30
    assert "the same command run again on a live cluster resumes" in log.read_text()
    kept = committed_rows(out)
    assert 48 <= kept < 320
    first.stop()

    rerun_started = time.monotonic()
    rerun_on_a_new_cluster(cluster, spec, tmp_path)
    assert json.loads((out / "_stats.json").read_text())["skipped_already_done"] >= kept
    print(f"TIMINGS lost head: said {said:.0f} s after the kill, the driver ended at {ended:.0f} s, {kept} rows kept, "
          f"the rerun on a new cluster took {time.monotonic() - rerun_started:.0f} s")


@pytest.mark.slow
def test_a_cluster_lost_in_the_middle_of_a_commit_is_resumed_exactly_once(tmp_path, cluster):
    # Every node and the driver killed the moment a commit is under way (Ray Data's pending checkpoint
    # written, not yet renamed), as a whole spot fleet reclaimed at once; a new cluster reruns the job.
    spec, out = write_job(tmp_path, 320, delay=0.05), tmp_path / "out"
    cut_short = 0
    for attempt in range(4):
        nodes = cluster(2)
        nodes.add(2)
        driver = start_driver(nodes, spec, tmp_path / f"driver-{attempt}.log")
        try:
            deadline = time.monotonic() + 180
            while not pending(out):  # a commit lasts milliseconds: looked for without a pause
                assert driver.poll() is None and time.monotonic() < deadline, "no commit was seen under way"
            kill_sessions(driver.pid, *(node.pid for node in nodes.nodes))
            nodes.stop()
        finally:
            if driver.poll() is None:
                kill_sessions(driver.pid)
        driver.wait(timeout=30)
        if pending(out):  # the kill landed inside a commit
            cut_short += 1
            break
    assert cut_short, "in 4 tries no kill landed inside a commit"
    print(f"TIMINGS cluster lost inside a commit: caught on try {attempt + 1}, {len(pending(out))} commit(s) cut short, "
          f"{committed_rows(out)} rows committed")
    rerun_on_a_new_cluster(cluster, spec, tmp_path)
    assert not pending(out)


def pending(out: Path) -> list[str]:
    """The checkpoint's commits under way: pending checkpoints not yet renamed."""
    folder = out / "_checkpoint"
    return [e.name for e in os.scandir(folder) if e.name.endswith(PENDING_SUFFIX)] if folder.exists() else []
