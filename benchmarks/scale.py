"""Benchmarks of scale on the STAND-IN ENGINE (benchmarks/standin.py): real batchgen jobs on a local Ray,
with every replica's vLLM swapped for a stand-in, so what is measured is batchgen itself.

    python -m benchmarks.scale memory --records 10000     # driver/worker peak memory, first shard vs input read
    python -m benchmarks.scale replicas --replicas 4      # records/s and the tail with 4 replicas

Each call runs one job and prints one JSON line (the harness, benchmarks/run.py, runs one per process so
memory peaks and Ray instances do not mix).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil

from benchmarks.events import read_events, start_ray as start_local_ray
from benchmarks.standin import SECONDS_PER_TOKEN, StandInReplica


def write_inputs(folder: Path, records: int, max_tokens, per_file: int) -> None:
    folder.mkdir(parents=True)
    for start in range(0, records, per_file):
        with open(folder / f"in-{start // per_file:05d}.jsonl", "w") as out:
            out.writelines(json.dumps({"id": f"r{i}", "prompt": f"say {i}", "max_tokens": max_tokens(i)}) + "\n"
                           for i in range(start, min(records, start + per_file)))


def job_spec(inputs: Path, output: Path, replicas: int, batch_size: int):
    from batchgen.spec import JobSpec

    return JobSpec.model_validate({
        "name": "bench-stand-in",
        "model": {"path": "stand-in/no-model", "profile": "none"},
        "input": {"uri": str(inputs)},
        "output": {"uri": str(output)},
        "scaling": {"replicas": replicas, "gpus_per_replica": 0, "batch_size": batch_size, "batches_in_flight": 4},
    })


class PeakMemory:
    """Samples the RSS of this process (the driver) and of Ray's worker processes (`ray::` titles)."""

    def __init__(self, every: float = 0.2):
        self.driver = self.worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)

    def _sample(self, every: float) -> None:
        me = psutil.Process()
        while not self._stop.wait(every):
            self.driver = max(self.driver, me.memory_info().rss)
            for proc in psutil.process_iter(["cmdline", "memory_info"]):
                cmdline = proc.info["cmdline"] or []
                if cmdline and cmdline[0].startswith("ray::") and proc.info["memory_info"]:
                    self.worker = max(self.worker, proc.info["memory_info"].rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def start_ray(events_dir: Path, seconds_per_token: float, cpus: int) -> None:
    os.environ[SECONDS_PER_TOKEN] = str(seconds_per_token)  # the stand-ins read it in the workers
    start_local_ray(events_dir, "benchmarks.standin.install", num_cpus=cpus)


def first_data_file(folder: Path, started: float, found: dict, stop: threading.Event) -> None:
    while not stop.wait(0.05):
        if folder.exists() and any(p.name.startswith("part-") for p in folder.iterdir()):
            found["first_shard_s"] = time.time() - started
            return


def memory(records: int) -> dict:
    from batchgen.pipeline import run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per_file = max(1, records // 20)
        write_inputs(tmp / "in", records, lambda i: 4, per_file)
        start_ray(tmp / "events", 0.0, cpus=4)
        spec = job_spec(tmp / "in", tmp / "out", replicas=1, batch_size=512)
        found, stop = {}, threading.Event()
        started = time.time()
        threading.Thread(target=first_data_file, args=(tmp / "out", started, found, stop), daemon=True).start()
        with PeakMemory() as peak:
            stats = run(spec, replica_factory=StandInReplica)
        stop.set()
        # Every input file is read twice: once by the duplicate-id pass before the job, once by the job.
        reads = defaultdict(list)
        for _, at, (path,) in read_events(tmp / "events", "read"):
            reads[path].append(at - started)
        job_reads = [max(times) for times in reads.values()]
        return {
            "records": stats.records, "input_files": len(reads), "wall_time_s": stats.wall_time_s,
            "driver_peak_mib": round(peak.driver / 2**20), "worker_peak_mib": round(peak.worker / 2**20),
            "first_shard_s": round(found.get("first_shard_s", float("nan")), 2),
            "job_started_reading_s": round(min(max(t) for t in reads.values()) if reads else 0, 2),
            "input_read_to_end_s": round(max(job_reads, default=0), 2),
            "id_pass_done_s": round(max(min(t) for t in reads.values()), 2) if reads else 0,
        }


def replicas(count: int, records: int, seconds_per_token: float, seed: int = 0) -> dict:
    from batchgen.pipeline import run

    rng = random.Random(seed)
    # Output lengths spread like reasoning traces: most short, a long tail (16 to 1,024 tokens).
    lengths = [min(1024, max(16, int(rng.lognormvariate(4.5, 0.9)))) for _ in range(records)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_inputs(tmp / "in", records, lengths.__getitem__, per_file=max(1, records // 8))
        start_ray(tmp / "events", seconds_per_token, cpus=4 + count)
        stats = run(job_spec(tmp / "in", tmp / "out", replicas=count, batch_size=32), replica_factory=StandInReplica)
        finished = defaultdict(float)
        for pid, at, _ in read_events(tmp / "events", "done"):
            finished[pid] = max(finished[pid], at)
        ends = sorted(finished.values())
        return {
            "replicas": count, "records": stats.records, "replicas_seen": len(ends),
            "generation_time_s": stats.generation_time_s,
            "records_per_s": round(stats.records / stats.generation_time_s, 1),
            # The tail: how long the last replica worked on after the first one had run out of records.
            "tail_s": round(ends[-1] - ends[0], 2) if ends else 0.0,
            "ideal_records_per_s": round(count * ideal_rate(lengths, seconds_per_token, batch_size=32, in_flight=4), 1),
        }


def ideal_rate(lengths: list[int], seconds_per_token: float, batch_size: int, in_flight: int) -> float:
    """Records/s of one stand-in replica kept full: its batches last as long as their longest record."""
    busy = sum(max(lengths[i:i + batch_size]) for i in range(0, len(lengths), batch_size)) * seconds_per_token
    return len(lengths) / (busy / in_flight)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["memory", "replicas"])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--seconds-per-token", type=float, default=0.001)
    args = parser.parse_args()
    result = memory(args.records) if args.what == "memory" else replicas(args.replicas, args.records, args.seconds_per_token)
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
