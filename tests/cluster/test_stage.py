"""The distributed job's guarantees on a stand-in engine (`tests/standin.py`): real Ray Data, real actor
pool, progress actor, checkpoint and writers; no model. Exactly-once output, error rows, engine deaths
(retried batches, records handed out before a death, a record that kills every engine), the early stop
and a resume, in seconds instead of the engine tests' minutes (`make test-fast` runs them)."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from batchgen.cluster.pipeline import JobFailed, run
from batchgen.core.prefix import PENDING_SUFFIX
from batchgen.record.rows import OutputRow
from batchgen.spec.job import JobSpec
from tests import free_port
from batchgen.core.suspects import KILLS_ALONE
from tests.standin import DEATHS, MARKERS, MODEL, REFUSE, StandIn


def job(tmp_path, records: list[dict | str], **sections) -> JobSpec:
    """A spec over `records` (dicts, or raw JSONL lines) written to tmp_path/in.jsonl, out to tmp_path/out."""
    (tmp_path / "markers").mkdir(exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (tmp_path / "in.jsonl").write_text("".join(line + "\n" for line in lines))
    spec = {
        "name": "logic", "model": {"path": "standin"}, "engine": {MARKERS: str(tmp_path / "markers")},
        "input": {"uri": str(tmp_path / "in.jsonl")}, "output": {"uri": str(tmp_path / "out"), "min_rows_per_file": 4},
        "scaling": {"replicas": 1, "gpus_per_replica": 0, "batch_size": 4, "records_in_flight": 8},
        "errors": {"max_fraction": 0.5, "min_records": 100},
    }
    for name, section in sections.items():
        spec[name] = {**spec[name], **section} if isinstance(spec.get(name), dict) else section
    return JobSpec.model_validate(spec)


def rows_of(out) -> list[dict]:
    files = sorted(p for p in out.iterdir() if p.suffix == ".parquet")
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def assert_exactly_once(out, ids: list[str]) -> dict[str, dict]:
    """Every id has exactly one row in the committed data files, and no other row is there."""
    rows = rows_of(out)
    counts = Counter(r["id"] for r in rows)
    assert [rid for rid, n in counts.items() if n > 1] == [], "rows written twice"
    assert sorted(counts) == sorted(ids) and len(rows) == len(ids)
    return {r["id"]: r for r in rows}


def ray_node_ip() -> str:
    import ray

    return ray.util.get_node_ip_address()


def ok(i: int, **fields) -> dict:
    return {"id": f"r{i}", "prompt": f"say {i}", **fields}


def test_every_record_comes_out_exactly_once_with_error_rows_for_bad_ones(tmp_path, ray_cluster):
    good = [ok(i) for i in range(14)]
    good[1]["meta"], good[1]["tags"] = {"split": "a", "n": 1}, ["x"]  # passthrough fields, absent from the rest
    good[6]["meta"] = {"split": "b", "n": 2}
    bad = [
        "{not json",  # line 15: no id, file:line
        json.dumps({"id": "hot", "prompt": "x", "temperature": -1}),
        json.dumps({"id": "empty", "messages": []}),
        json.dumps({"id": "none"}),
        json.dumps({"id": "r3", "prompt": "again"}),  # line 19: r3 again, a duplicate
    ]
    spec = job(tmp_path, [*good, *bad])
    stats = run(spec, replica_factory=StandIn)
    out = tmp_path / "out"
    rows = assert_exactly_once(out, [f"r{i}" for i in range(14)] + ["in.jsonl:15", "hot", "empty", "none", "r3@in.jsonl:19"])
    for i in range(14):
        assert rows[f"r{i}"]["error"] is None and rows[f"r{i}"]["content"] == f"echo: say {i}"
        assert rows[f"r{i}"]["model"] == MODEL
    codes = {rid: (r["error"] or "").split(":")[0] for rid, r in rows.items() if r["error"]}
    assert codes == {"in.jsonl:15": "invalid_json", "hot": "out_of_range", "empty": "empty_messages",
                     "none": "missing_prompt", "r3@in.jsonl:19": "duplicate_id"}
    assert all(rows[rid]["finish_reason"] == "error" for rid in codes)
    assert rows["r1"]["meta"] == {"split": "a", "n": 1} and rows["r1"]["tags"] == ["x"]
    assert rows["r6"]["meta"] == {"split": "b", "n": 2} and rows["r6"]["tags"] is None and rows["r0"]["meta"] is None
    for row in rows.values():
        OutputRow.model_validate({k: row[k] for k in OutputRow.model_fields})
    written = json.loads((out / "_stats.json").read_text())
    assert written == stats.to_json()
    assert (written["records"], written["ok"], written["errors"], written["skipped_already_done"]) == (19, 14, 5, 0)
    assert (out / "_SUCCESS").exists() and len([p for p in out.iterdir() if p.suffix == ".parquet"]) > 1
    # Run again: already complete, nothing rewritten.
    mtimes = {p: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix == ".parquet"}
    assert run(spec, replica_factory=StandIn).already_complete
    assert {p: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix == ".parquet"} == mtimes
    # Another spec or another input onto this output: refused, nothing added.
    with pytest.raises(JobFailed, match=r"holds results of a different spec \(changed: defaults\)"):
        run(job(tmp_path, [*good, *bad], defaults={"max_tokens": 5}), replica_factory=StandIn)
    with pytest.raises(JobFailed, match=r"holds results for another input"):
        run(job(tmp_path, good), replica_factory=StandIn)
    assert {p: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix == ".parquet"} == mtimes


def test_an_engine_death_mid_job_loses_no_record_and_writes_none_twice(tmp_path, ray_cluster):
    # Slow and fast records mixed, so that when r5's engine dies (1 s in) other batches are in flight and
    # rows of the dying replica's records were already handed out by other calls: Ray Data retries the
    # dead replica's batches, whose handed-out records must not run again, and a later pass runs the
    # records no retried batch holds.
    records = [ok(i, delay=0.6 if i % 3 == 0 else 0.05) for i in range(24)]
    records[5] = ok(5, delay=1.0, die="once")
    stats = run(job(tmp_path, records), replica_factory=StandIn)
    assert (tmp_path / "markers" / "r5").exists(), "the engine never died"
    rows = assert_exactly_once(tmp_path / "out", [f"r{i}" for i in range(24)])
    assert [rid for rid, r in rows.items() if r["error"]] == [], "no record pays for one engine death"
    assert rows["r5"]["content"] == "echo: say 5"
    assert (stats.records, stats.rows, stats.errors) == (24, 24, 0) and (tmp_path / "out" / "_SUCCESS").exists()


def test_a_record_that_kills_every_engine_becomes_an_engine_crash_row(tmp_path, ray_cluster):
    # Once it killed its engine twice running alone on it, the killer is written as an error row instead of
    # killing replicas forever; the records beside it are answered.
    records = [ok(i) for i in range(6)]
    records[2] = ok(2, delay=0.3, die="always")
    # One failed record of six is more than errors.max_fraction 0.1: the job fails at the end (too few
    # records for the early stop), with every row and the stats written, and no _SUCCESS.
    with pytest.raises(JobFailed, match=r"more than errors.max_fraction 0.1"):
        run(job(tmp_path, records, scaling={"batch_size": 1, "records_in_flight": 2}, errors={"max_fraction": 0.1}),
            replica_factory=StandIn)
    rows = assert_exactly_once(tmp_path / "out", [f"r{i}" for i in range(6)])
    assert rows["r2"]["error"] == f"engine_crash: the engine died {KILLS_ALONE} times while this record ran alone on it"
    assert rows["r2"]["finish_reason"] == "error"
    assert [rows[f"r{i}"]["content"] for i in (0, 1, 3, 4, 5)] == [f"echo: say {i}" for i in (0, 1, 3, 4, 5)]
    stats = json.loads((tmp_path / "out" / "_stats.json").read_text())
    assert stats["records"] == 6 and stats["errors_by_code"] == {"engine_crash": 1}
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_a_record_sharing_a_batch_with_an_engine_killer_is_answered(tmp_path, ray_cluster):
    # r3 shares r2's batch and is slower, so it is on the engine at each of r2's deaths until they are
    # told apart: only r2 ends as engine_crash; r3 never killed anything.
    records = [ok(0), ok(1), ok(2, delay=0.1, die="always"), ok(3, delay=1.0)]
    run(job(tmp_path, records, scaling={"batch_size": 2, "records_in_flight": 2}, errors={"max_fraction": 0.9}),
        replica_factory=StandIn)
    rows = assert_exactly_once(tmp_path / "out", [f"r{i}" for i in range(4)])
    assert rows["r2"]["error"].startswith("engine_crash: ")
    assert rows["r3"]["error"] is None, rows["r3"]["error"]


def test_the_killer_among_256_in_flight_is_found_in_logarithmic_restarts(tmp_path, ray_cluster):
    # Every record that was on the engine at a death is a suspect; they run again in groups that halve with
    # each death (`core.suspects`): about log2(256) + 3 deaths, not 256 records run one at a time.
    records = [ok(i, delay=0.2) for i in range(256)]
    records[77] = ok(77, delay=0.1, die="always")
    run(job(tmp_path, records, scaling={"batch_size": 32, "records_in_flight": 256}, errors={"max_fraction": 0.9}),
        replica_factory=StandIn)
    rows = assert_exactly_once(tmp_path / "out", [f"r{i}" for i in range(256)])
    assert [rid for rid, row in rows.items() if row["error"]] == ["r77"]
    deaths = (tmp_path / "markers" / DEATHS).read_text().split()
    assert set(deaths) == {"r77"} and len(deaths) <= 8 + 1 + KILLS_ALONE, len(deaths)
    print(f"engine deaths to find the killer among 256: {len(deaths)}")


def test_a_broken_input_stops_the_job_early(tmp_path, ray_cluster):
    records = [{"id": f"bad-{i}", "prompt": "x", "temperature": -1} for i in range(40)] + [ok(i) for i in range(8)]
    spec = job(tmp_path, records, errors={"max_fraction": 0.5, "min_records": 4})
    with pytest.raises(JobFailed, match=r"stopped early: \d+ of the first \d+ rows failed, more than "
                       r"errors.max_fraction 0.5\. See the error rows by code with `batchgen inspect "):
        run(spec, replica_factory=StandIn)
    out = tmp_path / "out"
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["records"] < 48 and not (out / "_SUCCESS").exists()
    # what was written before the stop is whole: each id at most once, every row an error or an answer
    counts = Counter(r["id"] for r in rows_of(out))
    assert max(counts.values(), default=1) == 1 and sum(counts.values()) == stats["rows"]


def test_a_resumed_job_redoes_only_the_records_it_did_not_commit_exactly_once(tmp_path, ray_cluster):
    # Ray Data's two-phase commit writes a pending checkpoint, then the data file, then renames the pending
    # checkpoint: a process killed in between leaves a commit as one of the last three here (a data file
    # whole, half-written, not begun); one killed before leaves nothing of it.
    records = [ok(i) for i in range(12)]
    spec = job(tmp_path, records, scaling={"batch_size": 2, "records_in_flight": 2}, output={"min_rows_per_file": 2})
    run(spec, replica_factory=StandIn)
    out = tmp_path / "out"
    data = sorted(out.glob("part-*.parquet"))
    assert len(data) >= 5
    lost = 0
    for cut, state in zip(data[1:], ("never begun", "whole", "half-written", "not begun")):
        lost += pq.read_metadata(cut).num_rows
        checkpoint = out / "_checkpoint" / (cut.name.rsplit("-", 1)[0] + ".parquet")
        if state == "never begun":
            checkpoint.unlink()
            cut.unlink()
            continue
        checkpoint.rename(checkpoint.with_name(checkpoint.stem + PENDING_SUFFIX))
        if state == "half-written":
            cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
        elif state == "not begun":
            cut.unlink()
    (out / "_SUCCESS").unlink()
    (out / "_stats.json").unlink()
    stats = run(spec, replica_factory=StandIn)
    assert (stats.skipped_already_done, stats.records, stats.rows, stats.errors) == (12 - lost, 12, 12, 0)
    assert_exactly_once(out, [f"r{i}" for i in range(12)])
    assert list((out / "_checkpoint").glob(f"*{PENDING_SUFFIX}")) == [] and (out / "_SUCCESS").exists()


def test_a_resume_finds_committed_records_by_position_a_reused_id_included(tmp_path, ray_cluster):
    # r3 comes back on line 8: its row id is r3@in.jsonl:8, and its first use's commit must not count for it
    records = [ok(i) for i in range(7)] + [ok(3), {"prompt": "no id"}] + [ok(i) for i in range(7, 12)]
    spec = job(tmp_path, records, scaling={"batch_size": 2, "records_in_flight": 2}, output={"min_rows_per_file": 2})
    run(spec, replica_factory=StandIn)
    out = tmp_path / "out"
    ids = [f"r{i}" for i in range(12)] + ["r3@in.jsonl:8", "in.jsonl:9"]
    first = assert_exactly_once(out, ids)
    assert first["r3@in.jsonl:8"]["error"].startswith("duplicate_id:")
    for cut in sorted(out.glob("part-*.parquet"))[::2]:  # every other commit undone, checkpoint and data
        (out / "_checkpoint" / (cut.name.rsplit("-", 1)[0] + ".parquet")).unlink()
        cut.unlink()
    (out / "_SUCCESS").unlink()
    (out / "_stats.json").unlink()
    kept = len(rows_of(out))
    stats = run(spec, replica_factory=StandIn)
    assert (stats.skipped_already_done, stats.records, stats.rows) == (kept, 14, 14)
    assert_exactly_once(out, ids)


def test_an_engine_that_does_not_start_ends_the_job_saying_where_and_why(tmp_path, ray_cluster):
    spec = job(tmp_path, [ok(i) for i in range(4)], engine={REFUSE: "CUDA out of memory: tried to allocate 20 GiB"})
    with pytest.raises(JobFailed) as failed:
        run(spec, replica_factory=StandIn)
    assert str(failed.value) == (
        f"a replica's engine did not start on node {ray_node_ip()}: RuntimeError: CUDA out of memory: tried to "
        "allocate 20 GiB. Fix the engine's settings (engine:, scaling:) or the node; what the job committed is kept, "
        "and the same command run again resumes")


def test_an_output_store_lost_mid_job_ends_it_within_seconds_saying_so(tmp_path, ray_cluster):
    import threading
    import time

    import s3fs
    from moto.server import ThreadedMotoServer

    endpoint = f"http://127.0.0.1:{free_port()}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(endpoint.rsplit(":", 1)[1]))
    server.start()
    store = s3fs.S3FileSystem(endpoint_url=endpoint, use_listings_cache=False)
    store.mkdir("lost-store")
    records = [ok(i, delay=0.2) for i in range(400)]
    spec = job(tmp_path, records, output={"uri": "s3://lost-store/out"}, storage={"endpoint_url": endpoint},
               scaling={"records_in_flight": 16})
    stopped: list[float] = []

    def lose_the_store():  # once rows have landed
        while not store.glob("lost-store/out/_checkpoint/*.parquet"):
            time.sleep(0.2)
        server.stop()
        stopped.append(time.monotonic())

    threading.Thread(target=lose_the_store, daemon=True).start()
    with pytest.raises(JobFailed) as failed:
        run(spec, replica_factory=StandIn)
    assert stopped and time.monotonic() - stopped[0] < 60
    said = str(failed.value)
    assert said.startswith(f"the output store stopped answering (s3://lost-store/out: EndpointConnectionError: Could "
                           f"not connect to the endpoint URL: \"{endpoint}/"), said
    assert said.endswith("what the job committed is kept, and the same command run again resumes once it answers")


def test_values_python_reads_but_arrow_or_a_tokenizer_refuse_are_error_rows_and_the_job_goes_on(tmp_path, ray_cluster):
    deep = "[" * 100_000 + "]" * 100_000
    lines = [
        '{"id": "surrogate-in-passthrough", "prompt": "x", "note": "tail \\udc80"}',
        '{"id": "surrogate-in-prompt", "prompt": "cut \\ud83d"}',
        '{"id": "surrogate-in-a-key", "prompt": "x", "meta": {"k\\udc80": 1}}',
        '{"id": "id-cut\\udc80", "prompt": "x"}',
        '{"id": "too-deep", "prompt": "x", "tree": ' + deep + '}',
        '{"id": "big", "prompt": "x", "count": 123456789012345678901234567890}',
        '{"id": "huge-float", "prompt": "x", "weight": 1e400}',
        *[json.dumps(ok(i)) for i in range(4)],
    ]
    stats = run(job(tmp_path, lines, errors={"max_fraction": 0.9}), replica_factory=StandIn)
    rows = {r["id"]: r for r in rows_of(tmp_path / "out")}
    assert stats.records == len(lines) == len(rows)
    assert rows["surrogate-in-passthrough"]["error"] == (
        "invalid_utf8: note: '\\udc80' at character 5 is half of a UTF-16 pair, which is not text (got 'tail \\udc80')")
    assert rows["surrogate-in-prompt"]["error"].startswith("invalid_utf8: prompt: '\\ud83d' at character 4 ")
    assert rows["surrogate-in-a-key"]["error"].startswith("invalid_utf8: meta.k\\udc80 (the key): ")
    assert rows["in.jsonl:4"]["error"].startswith("invalid_utf8: id: '\\udc80' at character 6 ")  # no id of its own
    assert rows["in.jsonl:5"]["error"] == "invalid_json: nested deeper than a JSON reader can follow"
    assert [rows[f"r{i}"]["error"] for i in range(4)] == [None] * 4
    # what Arrow can hold is kept: an integer past int64 as its digits (`passthrough`), 1e400 as Python reads it
    assert (rows["big"]["error"], rows["big"]["count"]) == (None, "123456789012345678901234567890")
    assert (rows["huge-float"]["error"], rows["huge-float"]["weight"]) == (None, float("inf"))


def test_json_lines_output_gives_back_every_passthrough_value_as_written(tmp_path, ray_cluster):
    values = [{}, [], {"a": 1}, {"b": [1, 2]}, "text", 7, None, [{"deep": {"x": None}}]]
    records = [ok(i, meta=value, count=i if i % 2 else None) for i, value in enumerate(values)]
    stats = run(job(tmp_path, records, output={"format": "jsonl"}), replica_factory=StandIn)
    out = tmp_path / "out"
    rows = {r["id"]: r for f in sorted(out.glob("part-*.jsonl")) for r in map(json.loads, f.read_text().splitlines())}
    assert [rows[f"r{i}"]["meta"] for i in range(len(values))] == values
    assert [rows[f"r{i}"]["count"] for i in range(len(values))] == [i if i % 2 else None for i in range(len(values))]
    assert all(type(rows[f"r{i}"]["count"]) is int for i in range(1, len(values), 2))  # 1, not 1.0
    assert (stats.records, stats.rows, stats.errors) == (8, 8, 0)  # the stats read the files back
    from batchgen.views.survey import survey

    assert survey(str(out)).rows == 8  # and so does `batchgen inspect`


def test_rows_are_graded_where_they_are_written_and_a_missing_reference_column_refuses_the_job(tmp_path, ray_cluster):
    from batchgen.core.scores import scores
    from batchgen.spec.job import SpecError
    from batchgen.views.survey import describe, survey

    # The stand-in answers "echo: say <prompt>": the last number is the prompt's.
    records = [
        {"id": "half", "prompt": "1/2", "answer": r"\frac{1}{2}"},  # echo: 1/2 -> last number 2: wrong
        {"id": "two", "prompt": "2", "answer": "2.0"},
        {"id": "root", "prompt": "8", "answer": r"\sqrt{64}"},
        {"id": "none", "prompt": "5"},  # no reference: left out
        {"id": "words", "prompt": "no digits", "answer": "3"},  # nothing to extract: incorrect
        {"id": "bad", "prompt": "x", "temperature": -1, "answer": "1"},  # error row: incorrect
    ]
    spec = job(tmp_path, records, grade={"reference": "answer", "extract": "last_number", "compare": "math"})
    run(spec, replica_factory=StandIn)
    rows = assert_exactly_once(tmp_path / "out", [r["id"] for r in records])
    got = {rid: (r["extracted_answer"], r["correct"], (r["ungraded_reason"] or "").split(":")[0]) for rid, r in rows.items()}
    assert got == {"half": ("2", False, ""), "two": ("2", True, ""), "root": ("8", True, ""), "none": ("5", None, "no_reference"),
                   "words": (None, None, "no_answer"), "bad": (None, None, "error_row")}
    overall = scores(rows.values())[0]
    assert (overall.rows, overall.correct, overall.left_out) == (5, 2, 1)
    found = survey(str(tmp_path / "out"))  # what `batchgen inspect` prints: the same figures, from the files
    assert found.scores == [g.as_dict() for g in scores(rows.values())]
    assert "graded     all: accuracy 0.400 (2 of 5 rows, 1 left out), pass@1 0.400" in describe(found)

    (tmp_path / "again").mkdir()
    spec = job(tmp_path / "again", records, grade={"reference": "gold"})
    with pytest.raises(SpecError, match="grade.reference: the input has no column 'gold'"):
        run(spec, replica_factory=StandIn)
