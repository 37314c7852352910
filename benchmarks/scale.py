"""Benchmarks of scale on the STAND-IN ENGINE (benchmarks/standin.py): real batchgen jobs on a local Ray,
with every replica's vLLM swapped for a stand-in, so what is measured is batchgen itself.

    python -m benchmarks.scale memory --records 10000     # driver/worker peak memory, first shard vs input read
    python -m benchmarks.scale replicas --replicas 4      # records/s and engine occupancy with 4 replicas
    python -m benchmarks.scale pipeline --records 20000   # the pipeline's pace and CPU, the engine out of the way

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
from benchmarks.standin import STEP_SECONDS, StandInReplica


def write_inputs(folder: Path, records: int, max_tokens, per_file: int) -> None:
    folder.mkdir(parents=True)
    for start in range(0, records, per_file):
        with open(folder / f"in-{start // per_file:05d}.jsonl", "w") as out:
            out.writelines(json.dumps({"id": f"r{i}", "prompt": f"say {i}", "max_tokens": max_tokens(i)}) + "\n"
                           for i in range(start, min(records, start + per_file)))


def job_spec(inputs: Path, output: Path, replicas: int, batch_size: int, max_num_seqs: int = 256):
    from batchgen.spec.job import JobSpec

    return JobSpec.model_validate({
        "name": "bench-stand-in",
        "model": {"path": "stand-in/no-model", "profile": "none"},
        "input": {"uri": str(inputs)},
        "output": {"uri": str(output)},
        "engine": {"max_num_seqs": max_num_seqs},
        "scaling": {"replicas": replicas, "gpus_per_replica": 0, "batch_size": batch_size,
                    "records_in_flight": 2 * max_num_seqs},
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


def first_data_file(folder: Path, started: float, found: dict, stop: threading.Event) -> None:
    while not stop.wait(0.05):
        if folder.exists() and any(p.name.startswith("part-") for p in folder.iterdir()):
            found["first_shard_s"] = time.time() - started
            return


def memory(records: int) -> dict:
    from batchgen.cluster.pipeline import run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per_file = max(1, records // 20)
        write_inputs(tmp / "in", records, lambda i: 4, per_file)
        os.environ[STEP_SECONDS] = "0.001"  # memory, not speed: the stand-in at its fastest
        start_local_ray(tmp / "events", "benchmarks.standin.install", num_cpus=4)
        spec = job_spec(tmp / "in", tmp / "out", replicas=1, batch_size=512)
        found, stop = {}, threading.Event()
        started = time.time()
        threading.Thread(target=first_data_file, args=(tmp / "out", started, found, stop), daemon=True).start()
        with PeakMemory() as peak:
            stats = run(spec, replica_factory=StandInReplica)
        stop.set()
        # Every input file is read twice: once by the input scan before the job, once by the job.
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


def long_tailed_lengths(records: int, seed: int = 0, median: int = 32, long: int = 800) -> list[int]:
    """Output lengths of reasoning traces: most near the median, 5% at 25x it."""
    rng = random.Random(seed)
    return [long if rng.random() < 0.05 else max(4, int(rng.lognormvariate(0, 0.4) * median)) for _ in range(records)]


def replicas(count: int, records: int, step_seconds: float, max_num_seqs: int = 256) -> dict:
    """One job on `count` GPU-like stand-ins: records/s, and the engines' occupancy (running sequences /
    max_num_seqs) from the first replica ready until the input ran out (the last record submitted), the
    final drain excepted."""
    from batchgen.cluster.pipeline import run

    lengths = long_tailed_lengths(records)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_inputs(tmp / "in", records, lengths.__getitem__, per_file=max(1, records // (8 * count)))
        os.environ[STEP_SECONDS] = str(step_seconds)  # the stand-ins read it in the workers
        start_local_ray(tmp / "events", "benchmarks.standin.install", num_cpus=4 + count)
        spec = job_spec(tmp / "in", tmp / "out", replicas=count, batch_size=64, max_num_seqs=max_num_seqs)
        started = time.time()
        stats = run(spec, replica_factory=StandInReplica)
        last_submit = max(at for _, at, _ in read_events(tmp / "events", "submitted"))
        samples = sorted((at, float(v[0])) for _, at, v in read_events(tmp / "events", "occupancy"))
        ready = started + stats.engine_startup_s
        steady = [o for at, o in samples if ready <= at <= last_submit]
        return {
            "replicas": count, "records": stats.records, "generation_time_s": stats.generation_time_s,
            "records_per_s": round(stats.records / stats.generation_time_s, 1),
            "occupancy": round(sum(steady) / len(steady), 3) if steady else 0.0,
            "occupancy_over_time": [[round(at - started, 2), round(o, 3)] for at, o in samples],
            "ideal_records_per_s": round(count * max_num_seqs / (sum(lengths) / len(lengths) * step_seconds), 1),
        }


def pipeline(records: int) -> dict:
    """One job at the default scaling on a stand-in too fast to matter (one-token records, a 0.2 ms step
    for 1,024 sequences): batchgen, not the engine, sets the pace. Reports records/s and the stand-in's own
    CPU seconds, which the harness subtracts from the job's (`run.pipeline_cost`)."""
    from batchgen.cluster.pipeline import run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_inputs(tmp / "in", records, lambda i: 1, per_file=max(1, records // 8))
        os.environ[STEP_SECONDS] = "0.0002"
        start_local_ray(tmp / "events", "benchmarks.standin.install", num_cpus=4)
        spec = job_spec(tmp / "in", tmp / "out", replicas=1, batch_size=64, max_num_seqs=1024)
        spec.scaling.records_in_flight = 512  # the default
        stats = run(spec, replica_factory=StandInReplica)
        standin_cpu = {pid: float(v[2]) for pid, _, v in sorted(read_events(tmp / "events", "occupancy"))}
        return {"records": stats.records, "generation_time_s": stats.generation_time_s,
                "records_per_s": round(stats.records / stats.generation_time_s, 1),
                "standin_cpu_s": round(sum(standin_cpu.values()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["memory", "replicas", "pipeline"])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--step-seconds", type=float, default=0.05, help="the stand-in's decode step")
    args = parser.parse_args()
    if args.what == "replicas":
        result = replicas(args.replicas, args.records, args.step_seconds)
    else:
        result = memory(args.records) if args.what == "memory" else pipeline(args.records)
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
