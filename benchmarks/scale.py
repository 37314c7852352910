"""Benchmarks of scale on the STAND-IN ENGINE (benchmarks/standin.py): real batchgen jobs on a local Ray,
with every replica's vLLM swapped for a stand-in, so what is measured is batchgen itself.

    python -m benchmarks.scale memory --records 10000     # driver/worker peak memory, first shard vs input read
    python -m benchmarks.scale memory --resume            # ... and again in a run resuming half of the job
    python -m benchmarks.scale replicas --replicas 4      # records/s and engine occupancy with 4 replicas
    python -m benchmarks.scale pipeline --records 20000   # the pipeline's pace and CPU, the engine out of the way
    python -m benchmarks.scale pipeline --templated       # the same records made by a prompt section
    python -m benchmarks.scale rendering --records 10000  # the prompt section's CPU where rows are decoded
    python -m benchmarks.scale commits --records 500      # an Iceberg table's commit time as its commits pile up
    python -m benchmarks.scale prefix --records 16000     # prefix cache: input order vs scheduled (stand-in's cache)

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
from benchmarks.standin import (BLOCK_TOKENS, CACHE_BLOCKS, CHARS_PER_TOKEN, PREFILL_S_PER_TOKEN, STEP_SECONDS,
                                StandInReplica)


def write_inputs(folder: Path, records: int, max_tokens, per_file: int, templated: bool = False) -> None:
    """JSONL records `r<i>` with a `question` column: given as `prompt` (the question's text), or with
    `templated` left for the `TEMPLATED` prompt section to make into one."""
    folder.mkdir(parents=True)
    for start in range(0, records, per_file):
        with open(folder / f"in-{start // per_file:05d}.jsonl", "w") as out:
            out.writelines(json.dumps({"id": f"r{i}", "question": f"say {i}", "max_tokens": max_tokens(i),
                                       **({} if templated else {"prompt": f"Question: say {i}"})}) + "\n"
                           for i in range(start, min(records, start + per_file)))


# A prompt section as evaluation jobs write them: a system and a user template, a field from a column,
# two few-shot examples drawn per record out of eight.
TEMPLATED = {"system": "Answer in {{ lang | default('en') }}.", "user": "Question: {{ question }}",
             "fields": {"max_tokens": "max_tokens"},
             "examples": {"k": 2, "assistant": "{{ answer }}"}}
EXAMPLES = [{"id": f"x{i}", "question": f"what is {i} plus {i}", "answer": str(2 * i)} for i in range(8)]


def templated_spec(spec, folder: Path):
    """`spec` with the `TEMPLATED` prompt section, its examples written into `folder`."""
    from batchgen.spec.job import PromptSpec

    (folder / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    prompt = {**TEMPLATED, "examples": {**TEMPLATED["examples"], "uri": str(folder / "examples.jsonl")}}
    return spec.model_copy(update={"prompt": PromptSpec.model_validate(prompt)})


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
    """Samples the RSS of this process (the driver) and of its Ray's worker processes (`ray::` titles), the
    peak of each kind of worker by its title's name (`ray::Progress`, `ray::MapWorker`, `ray::ReadRecords`,
    ...; a worker's title changes with what it runs)."""

    def __init__(self, every: float = 0.2):
        self.driver = self.worker = self.driver_private = 0
        self.by_title: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)

    def _sample(self, every: float) -> None:
        me = psutil.Process()
        while not self._stop.wait(every):
            info = me.memory_info()
            # RSS counts the object store's pages the driver has mapped (shared); private is the rest.
            self.driver, self.driver_private = max(self.driver, info.rss), max(self.driver_private, info.rss - info.shared)
            for proc in me.children(recursive=True):  # this job's local Ray, not another on the machine
                try:
                    cmdline, rss = proc.cmdline(), proc.memory_info().rss
                except psutil.Error:  # ended meanwhile
                    continue
                if cmdline and cmdline[0].startswith("ray::"):
                    self.worker = max(self.worker, rss)
                    title = cmdline[0].split("(")[0].split()[0]
                    self.by_title[title] = max(self.by_title.get(title, 0), rss)

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


def _peaks(peak: PeakMemory) -> dict:
    return {"driver_peak_mib": round(peak.driver / 2**20), "driver_private_peak_mib": round(peak.driver_private / 2**20),
            "worker_peak_mib": round(peak.worker / 2**20),
            "peak_mib_by_worker": {title: round(rss / 2**20) for title, rss in sorted(peak.by_title.items())}}


def _undo_half(out: Path) -> None:
    """Every other committed data file undone with its checkpoint file, as a kill would leave a job whose
    commits were spread over its input: the resumed run has half the records left."""
    for data in sorted(out.glob("part-*.parquet"))[::2]:
        (out / "_checkpoint" / (data.name.rsplit("-", 1)[0] + ".parquet")).unlink()
        data.unlink()
    for marker in ("_SUCCESS", "_stats.json"):
        (out / marker).unlink()


def memory(records: int, resume: bool = False) -> dict:
    """One job's peak memory (driver, every kind of Ray worker); with `resume`, the job's output then loses
    every other commit and the same job runs again: the resumed run's peaks (`resumed`), which hold the
    checkpoint's committed records."""
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
        resumed = {}
        if resume:
            _undo_half(tmp / "out")
            with PeakMemory() as again:
                rerun = run(spec, replica_factory=StandInReplica)
            resumed = {"resumed": {"skipped_already_done": rerun.skipped_already_done, "wall_time_s": rerun.wall_time_s,
                                   **_peaks(again)}}
        return {
            "records": stats.records, "input_files": len(reads), "wall_time_s": stats.wall_time_s, **_peaks(peak),
            **resumed,
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


def pipeline(records: int, templated: bool = False) -> dict:
    """One job at the default scaling on a stand-in too fast to matter (one-token records, a 0.2 ms step
    for 1,024 sequences): batchgen, not the engine, sets the pace. Reports records/s and the stand-in's own
    CPU seconds, which the harness subtracts from the job's (`run.pipeline_cost`). `templated`: the same
    records made into prompts by a prompt section with few-shot examples (`TEMPLATED`)."""
    from batchgen.cluster.pipeline import run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_inputs(tmp / "in", records, lambda i: 1, per_file=max(1, records // 8), templated=templated)
        os.environ[STEP_SECONDS] = "0.0002"
        start_local_ray(tmp / "events", "benchmarks.standin.install", num_cpus=4)
        spec = job_spec(tmp / "in", tmp / "out", replicas=1, batch_size=64, max_num_seqs=1024)
        if templated:
            spec = templated_spec(spec, tmp)
        spec.scaling.records_in_flight = 512  # the default
        stats = run(spec, replica_factory=StandInReplica)
        standin_cpu = {pid: float(v[2]) for pid, _, v in sorted(read_events(tmp / "events", "occupancy"))}
        return {"records": stats.records, "generation_time_s": stats.generation_time_s,
                "records_per_s": round(stats.records / stats.generation_time_s, 1),
                "standin_cpu_s": round(sum(standin_cpu.values()), 2)}


def rendering(records: int, repeats: int = 5) -> dict:
    """The CPU a prompt section adds where rows are decoded (`blocks.Decoder`, on the replicas' workers),
    in-process, with nothing else running: the same blocks decoded as `prompt` records and as templated
    rows, the median of `repeats` CPU times each, in ms per record."""
    import statistics

    from batchgen.core.blocks import Decoder
    from batchgen.core.columns import job_inputs
    from batchgen.core.prompts import prompt_plan
    from batchgen.core.reading import read_file
    from batchgen.core.scan import scan

    def cpu_ms(spec) -> float:
        fs, inputs = job_inputs(spec)
        blocks = [b for f in inputs.files for b in read_file(fs, inputs, f)]
        result = scan(inputs, (b for f in inputs.files for b in read_file(fs, inputs, f, scan=True)))
        decoder = Decoder(result.passthrough, {}, False, inputs.columns, prompt_plan(spec))
        times = []
        for _ in range(repeats):
            started = time.process_time()
            for block in blocks:
                decoder(block)
            times.append(time.process_time() - started)
        return 1000 * statistics.median(times) / records

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_inputs(tmp / "plain", records, lambda i: 1, per_file=records)
        write_inputs(tmp / "templated", records, lambda i: 1, per_file=records, templated=True)
        plain = cpu_ms(job_spec(tmp / "plain", tmp / "out", 1, 64))
        templated = cpu_ms(templated_spec(job_spec(tmp / "templated", tmp / "out", 1, 64), tmp))
        return {"records": records, "repeats": repeats, "decode_ms_per_record": round(plain, 4),
                "templated_decode_ms_per_record": round(templated, 4), "templating_ms_per_record": round(templated - plain, 4)}


def grading(rows: int, repeats: int = 3) -> dict:
    """The CPU that grading takes per row, in-process (`core.grades.graded`, as the write tasks run it),
    on `rows` answer rows of a reasoning model's shape (a paragraph, then the answer in \\boxed{}), a
    third of them wrong, for each kind of comparison; the median of `repeats` CPU times, in ms per row."""
    import statistics

    import pyarrow as pa

    from batchgen.core.grades import graded
    from batchgen.record.grading import GradeSpec
    from batchgen.record.rows import OUTPUT_SCHEMA

    rng = random.Random(0)
    answers = [(r"\frac{%d}{%d}" % (i % 7 + 1, i % 5 + 2), "%d" % (i % 97)) for i in range(rows)]
    text = "Let me lay out the steps. " * 20
    cases = {
        "exact": (GradeSpec(reference="answer", extract="boxed"), [n for _, n in answers]),
        "numeric": (GradeSpec(reference="answer", extract="boxed", compare="numeric"), [n for _, n in answers]),
        "math": (GradeSpec(reference="answer", extract="boxed", compare="math"), [f for f, _ in answers]),
    }
    result = {"rows": rows, "repeats": repeats}
    for name, (spec, truth) in cases.items():
        said = [t if rng.random() < 0.67 else "0" for t in truth]
        block = pa.table({
            **{f.name: pa.nulls(rows, f.type) for f in OUTPUT_SCHEMA},
            "content": pa.array([f"{text}So the answer is \\boxed{{{a}}}." for a in said]),
            "answer": pa.array(truth),
        })
        times = []
        for _ in range(repeats):
            started = time.process_time()
            graded(block, spec, "answer")
            times.append(time.process_time() - started)
        result[f"{name}_ms_per_row"] = round(1000 * statistics.median(times) / rows, 4)
    return result


def commits(count: int, rows_per_file: int = 1_000) -> dict:
    """What a commit into an Iceberg table costs as a job's commits pile up (no Ray, no engine): `count`
    data files committed by a job's checkpoint, each made its own commit (`lake.commits.TableCommits`, SQL
    catalog on SQLite, local warehouse). Wall seconds of the first and last tenth of the commits (median),
    and of a rerun's start (reading which of the prefix's files the table holds) and its no-op finish."""
    import statistics
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    from batchgen.core.prefix import OutputPrefix
    from batchgen.lake.commits import TableCommits
    from batchgen.lake.iceberg import IcebergTable, snapshot_properties
    from batchgen.spec.job import OutputTableSpec

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        (out / "_checkpoint").mkdir(parents=True)
        spec = OutputTableSpec(identifier="bench.answers", catalog={
            "type": "sql", "uri": f"sqlite:///{tmp}/catalog.db", "warehouse": f"{tmp}/wh"})
        table = IcebergTable(spec)
        table.prepare(pa.schema([("id", pa.string()), ("content", pa.string())]), [])
        prefix = OutputPrefix(str(out))
        properties = snapshot_properties("bench", "0", prefix.url(prefix.path))
        job = TableCommits(table, prefix, properties, every_rows=1, every_s=1e9)
        write, seconds = uuid.uuid4().hex, []
        for task in range(count):
            stem = f"part-{write}-{task:06d}"
            ids = [f"r{task}-{i}" for i in range(rows_per_file)]
            pq.write_table(pa.table({"id": ids, "content": ["an answer"] * rows_per_file, "job": ["bench"] * rows_per_file}),
                           out / f"{stem}-0.parquet")
            pq.write_table(pa.table({"id": ids}), out / "_checkpoint" / f"{stem}.parquet")
            started = time.perf_counter()
            job.poll()
            seconds.append(time.perf_counter() - started)
        tenth = max(1, count // 10)
        started = time.perf_counter()
        rerun = TableCommits(table, prefix, properties, every_rows=1, every_s=1e9)
        added = rerun.finish()
        rerun_s = time.perf_counter() - started
        snapshots = len(table.load().snapshots())
    return {"commits": count, "rows_per_file": rows_per_file, "snapshots": snapshots, "rerun_added": added,
            "first_tenth_commit_s": round(statistics.median(seconds[:tenth]), 3),
            "last_tenth_commit_s": round(statistics.median(seconds[-tenth:]), 3),
            "rerun_start_and_finish_s": round(rerun_s, 3)}


PREFIX_DOCUMENTS = 64  # distinct prefixes
DOCUMENT_CHARS = 6_000  # ~1,500 tokens each
PREFIX_MAX_TOKENS = 32
PREFIXES_CACHED = 4  # each replica's cache holds about this many documents (besides running records' own blocks)
PREFIX_MAX_NUM_SEQS = 32
PREFIX_STEP_S = 0.005  # a decode step (the stand-in's default for this benchmark)
PREFILL_STEPS = 3.6  # a ~1,500-token prefill costs this many decode steps, as on a GPU (tens of ms vs ~10 ms)


def write_prefix_inputs(folder: Path, records: int, documents: int, max_tokens: int, seed: int = 0) -> None:
    """`records` JSONL records in random order, record `r<i>` a short question of its own (`prompt`) about
    document `i % documents` (`system`: ~`DOCUMENT_CHARS` characters of made-up words, distinct from its
    first line on), in files of one read block each (the window `scaling.order: scheduled` orders in)."""
    from batchgen.core.reading import ROWS_PER_BLOCK

    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(2_000)]

    def document(d: int) -> str:
        text = f"Document {d}: on {rng.choice(words)} and {rng.choice(words)}.\n"
        while len(text) < DOCUMENT_CHARS:
            text += " ".join(rng.choice(words) for _ in range(12)) + ".\n"
        return text[:DOCUMENT_CHARS]

    docs = [document(d) for d in range(documents)]
    ids = list(range(records))
    rng.shuffle(ids)
    folder.mkdir(parents=True)
    for start in range(0, records, ROWS_PER_BLOCK):
        with open(folder / f"in-{start // ROWS_PER_BLOCK:05d}.jsonl", "w") as out:
            out.writelines(json.dumps({"id": f"r{i}", "system": docs[i % documents], "max_tokens": max_tokens,
                                       "prompt": f"Question {i}: what does it say about {words[i % len(words)]}?"})
                           + "\n" for i in ids[start:start + ROWS_PER_BLOCK])


def _cache_timeline(events: list, job: str, started: float, every: float = 1.0) -> dict:
    """A run's stand-in `cache` events (`read_events`, of every job) as curves: per replica (by pid) and over all, records ended, prompt
    tokens computed (not found in the cache) and running sequences, at most one point per `every` seconds."""
    by_pid: dict[int, list] = defaultdict(list)
    for pid, at, values in sorted(events, key=lambda e: e[1]):
        if values[0] != job:
            continue
        ended, prefill, cached, _decode, running, _waiting = (float(v) for v in values[1:])
        by_pid[pid].append((round(at - started, 2), int(ended), int(prefill - cached), running))

    def thinned(points: list) -> list:
        kept, last = [], None
        for point in points:
            if last is None or point[0] - last >= every or point is points[-1]:
                kept.append(list(point))
                last = point[0]
        return kept

    latest, total = {}, []
    for at, pid, point in sorted((p[0], pid, p) for pid, points in by_pid.items() for p in points):
        latest[pid] = point
        total.append((at, sum(p[1] for p in latest.values()), sum(p[2] for p in latest.values()),
                      round(sum(p[3] for p in latest.values()), 1)))
    return {"columns": ["s", "records_done", "prefill_tokens_computed", "running"],
            "total": thinned(total), "replicas": [thinned(points) for _, points in sorted(by_pid.items())]}


def prefix(records: int, replicas_count: int = 8, step_seconds: float = PREFIX_STEP_S,
           documents: int = PREFIX_DOCUMENTS, max_tokens: int = PREFIX_MAX_TOKENS) -> dict:
    """The prefix cache at work: the same job (`records` questions over `documents` documents of ~1,500
    tokens, in random order) on `replicas_count` stand-ins with the prefix cache model, each caching about
    `PREFIXES_CACHED` documents, run with `scaling.order: input` and then `scheduled`. Per run: wall and
    generation time, prefill tokens computed and hit rate (`stats.prefix_cache`), mean running sequences,
    and curves over time per replica (`_cache_timeline`); and scheduled/input ratios."""
    from batchgen.cluster.pipeline import run

    doc_tokens = DOCUMENT_CHARS // CHARS_PER_TOKEN
    own_blocks = -(-(64 // CHARS_PER_TOKEN + max_tokens) // BLOCK_TOKENS) + 1  # question, answer, tail block
    cache_blocks = PREFIXES_CACHED * (doc_tokens // BLOCK_TOKENS) + PREFIX_MAX_NUM_SEQS * own_blocks
    prefill_s_per_token = PREFILL_STEPS * step_seconds / doc_tokens
    result = {"records": records, "replicas": replicas_count, "documents": documents, "document_tokens": doc_tokens,
              "max_tokens": max_tokens, "max_num_seqs": PREFIX_MAX_NUM_SEQS, "cache_blocks": cache_blocks,
              "documents_cached": PREFIXES_CACHED,
              "step_s": step_seconds, "prefill_s_per_token": prefill_s_per_token,
              "document_prefill_s": round(prefill_s_per_token * doc_tokens, 4), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_prefix_inputs(tmp / "in", records, documents, max_tokens)
        os.environ[STEP_SECONDS] = str(step_seconds)
        start_local_ray(tmp / "events", "benchmarks.standin.install", num_cpus=4 + replicas_count)
        for order in ("input", "scheduled"):
            spec = job_spec(tmp / "in", tmp / f"out-{order}", replicas=replicas_count, batch_size=64,
                            max_num_seqs=PREFIX_MAX_NUM_SEQS)
            spec = spec.model_copy(update={"name": f"bench-prefix-{order}", "engine": {
                **spec.engine, CACHE_BLOCKS: cache_blocks, PREFILL_S_PER_TOKEN: prefill_s_per_token}})
            spec.scaling.order = order
            started = time.time()
            stats = run(spec, replica_factory=StandInReplica)
            time.sleep(1.0)  # the stand-ins' last events
            cache = stats.prefix_cache or {}
            timeline = _cache_timeline(read_events(tmp / "events", "cache"), spec.name, started)
            running = [p[3] for points in timeline["replicas"] for p in points if p[3]]
            result["runs"][order] = {
                "records": stats.records, "wall_time_s": stats.wall_time_s, "generation_time_s": stats.generation_time_s,
                "records_per_s": round(stats.records / stats.generation_time_s, 1),
                "prompt_tokens": cache.get("prompt_tokens"), "prefill_tokens_computed": cache.get("prefill_tokens_computed"),
                "hit_rate": cache.get("hit_rate"),
                "mean_running": round(sum(running) / len(running), 1) if running else 0.0,
                "replica_prefill_tokens_computed": [r["prefill_tokens_computed"] for r in cache.get("replicas", [])],
                "timeline": timeline}
    runs = result["runs"]
    result["scheduled/input"] = {
        "wall_time": round(runs["scheduled"]["wall_time_s"] / runs["input"]["wall_time_s"], 3),
        "generation_time": round(runs["scheduled"]["generation_time_s"] / runs["input"]["generation_time_s"], 3),
        "prefill_tokens_computed": round(runs["scheduled"]["prefill_tokens_computed"]
                                         / max(1, runs["input"]["prefill_tokens_computed"]), 3)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["memory", "replicas", "pipeline", "rendering", "grading", "commits", "prefix"])
    parser.add_argument("--templated", action="store_true", help="pipeline: the records made by a prompt section")
    parser.add_argument("--resume", action="store_true", help="memory: then undo every other commit and resume")
    parser.add_argument("--records", type=int, help="default 10,000 (prefix: 16,000)")
    parser.add_argument("--replicas", type=int, help="default 1 (prefix: 8)")
    parser.add_argument("--step-seconds", type=float, default=None,
                        help=f"the stand-in's decode step (default 0.05; prefix: {PREFIX_STEP_S})")
    parser.add_argument("--chart", type=Path, help="prefix: also draw the chart (benchmarks/cache_chart.py) there")
    args = parser.parse_args()
    if args.what == "prefix":
        result = prefix(args.records or 16_000, args.replicas or 8, args.step_seconds or PREFIX_STEP_S)
        if args.chart:
            from benchmarks.cache_chart import chart

            chart(result, args.chart)
        print(json.dumps(result))
        sys.stdout.flush()
        return
    args.records, args.replicas = args.records or 10_000, args.replicas or 1
    if args.what == "replicas":
        result = replicas(args.replicas, args.records, args.step_seconds or 0.05)
    elif args.what == "rendering":
        result = rendering(args.records)
    elif args.what == "commits":
        result = commits(args.records)
    elif args.what == "grading":
        result = grading(args.records)
    else:
        result = memory(args.records, args.resume) if args.what == "memory" else pipeline(args.records, args.templated)
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
