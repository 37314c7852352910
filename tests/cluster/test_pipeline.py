"""The distributed job end to end: real Ray Data, real vLLM replicas (CPU build, toy model), real files
and a real S3 API server on loopback; the Parquet read back by DuckDB."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.cluster.pipeline import JobFailed, run
from batchgen.record.rows import OUTPUT_FIELDS, OutputRow
from batchgen.spec.job import JobSpec
from batchgen.toy import corpus
from tests.conftest import TEST_ENGINE, TEST_GRACE

pytestmark = pytest.mark.engine


def job(input_uri, output_uri, **sections) -> JobSpec:
    return JobSpec.model_validate({
        "name": "test", "model": {"path": "toy:nemotron-h"}, "engine": TEST_ENGINE,
        "input": {"uri": str(input_uri)}, "output": {"uri": str(output_uri)},
        "defaults": {"max_tokens": 300, "temperature": 0.0}, "budget": {"grace_tokens": TEST_GRACE},
        "scaling": {"replicas": 1, "gpus_per_replica": 0, "batch_size": 4}, **sections,
    })


def read_rows(directory, fmt="parquet"):
    files = sorted(p for p in directory.iterdir() if p.suffix == f".{fmt}")
    if fmt == "parquet":
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


JSONL_LINES = [
    json.dumps({"id": 1, "prompt": corpus.echo_prompt("apple"), "reasoning": "off", "meta": {"split": "a", "n": 1}, "tags": ["x"]}),
    json.dumps({"id": "s-1", "prompt": corpus.steps_prompt("river"), "max_thinking_tokens": 6, "meta": {"split": "b", "n": 2}}),
    "",  # empty lines are not records
    "{not json",
    json.dumps({"prompt": corpus.echo_prompt("stone"), "reasoning": "off"}),  # no id: file:line
    json.dumps([1, 2]),
    json.dumps({"id": "t-1", "prompt": corpus.weather_prompt("Oslo"), "tools": corpus.TOOLS}),
    json.dumps({"id": "bad", "prompt": "x", "max_tokens": 0}),
    json.dumps({"id": "1", "prompt": corpus.echo_prompt("river")}),  # id 1 again (as text): a duplicate
]
# One of every other kind of bad record: (id, record, expected code).
BAD_RECORDS = [
    ("both", {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "conflicting_prompt"),
    ("empty", {"messages": []}, "empty_messages"),
    ("role", {"messages": [{"role": "robot", "content": "x"}]}, "unknown_role"),
    ("content", {"messages": [{"role": "user", "content": ["x"]}]}, "invalid_content"),
    ("type", {"prompt": "x", "max_tokens": "abc"}, "invalid_type"),
    ("budget", {"prompt": "x", "max_thinking_tokens": -5}, "out_of_range"),
    ("temp", {"prompt": "x", "temperature": -0.1}, "out_of_range"),
    ("mode", {"prompt": "x", "reasoning": "sometimes"}, "invalid_value"),
    ("tools", {"prompt": "x", "tools": {"name": "f"}}, "invalid_tools"),
    ("long", {"prompt": "word " * 3000}, "prompt_too_long"),
]


@pytest.fixture(scope="module")
def jsonl_run(tmp_path_factory, ray_cluster):
    root = tmp_path_factory.mktemp("jsonl")
    source = root / "prompts.jsonl"
    bad = [json.dumps({"id": rid, **record}) for rid, record, _ in BAD_RECORDS]
    source.write_bytes("\n".join(JSONL_LINES).encode() + b"\n" + b'{"id": "u", "prompt": "caf\xe9"}\n'
                       + "\n".join(bad).encode() + b"\n")
    stats = run(job(source, root / "out", errors={"max_fraction": 0.9}))
    return root / "out", stats


def test_jsonl_in_parquet_out_one_row_per_record(jsonl_run):
    out, stats = jsonl_run
    table = read_rows(out)
    duplicate = [r for r in table.to_pylist() if (r["error"] or "").startswith("duplicate_id")]
    assert [d["id"] for d in duplicate] == ["1@prompts.jsonl:9"] and "already used at prompts.jsonl:1" in duplicate[0]["error"]
    rows = {r["id"]: r for r in table.to_pylist()}
    assert table.num_rows == 19 == len(rows)  # 19 non-empty lines, each exactly once, each id unique
    assert set(rows) == {"1", "1@prompts.jsonl:9", "s-1", "prompts.jsonl:4", "prompts.jsonl:5", "prompts.jsonl:6",
                         "t-1", "bad", "prompts.jsonl:10"} | {rid for rid, _, _ in BAD_RECORDS}
    for rid, _, code in BAD_RECORDS:
        assert rows[rid]["error"].startswith(f"{code}: ") and rows[rid]["finish_reason"] == "error", rows[rid]
    assert rows["1"]["content"] and rows["1"]["reasoning"] == "off"
    assert rows["s-1"]["thinking_budget_hit"] and rows["s-1"]["reasoning_content"].startswith("Step 1:")
    assert rows["t-1"]["finish_reason"] == "tool_calls" and rows["t-1"]["tool_calls"][0]["name"].startswith("get_")
    assert rows["prompts.jsonl:5"]["error"] is None
    codes = {rid: (r["error"] or "").split(":")[0] for rid, r in rows.items()}
    assert codes["prompts.jsonl:4"] == "invalid_json" and codes["prompts.jsonl:6"] == "invalid_json"
    assert codes["prompts.jsonl:10"] == "invalid_utf8" and codes["bad"] == "out_of_range"
    for row in rows.values():
        OutputRow.model_validate(row)


def test_jsonl_passthrough_fields_come_out_unchanged(jsonl_run):
    table = read_rows(jsonl_run[0])
    assert list(table.column_names[: len(OUTPUT_FIELDS)]) == list(OUTPUT_FIELDS)
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["1"]["meta"] == {"split": "a", "n": 1} and rows["1"]["tags"] == ["x"]
    assert rows["s-1"]["meta"] == {"split": "b", "n": 2} and rows["s-1"]["tags"] is None
    assert "prompt" not in table.column_names and "max_tokens" not in table.column_names


def test_stats_and_success_marker(jsonl_run):
    out, stats = jsonl_run
    written = json.loads((out / "_stats.json").read_text())
    assert written == stats.to_json()
    assert (written["records"], written["ok"], written["errors"]) == (19, 4, 15)
    assert written["errors_by_code"] == {
        "conflicting_prompt": 1, "duplicate_id": 1, "empty_messages": 1, "invalid_content": 1, "invalid_json": 2,
        "invalid_tools": 1, "invalid_type": 1, "invalid_utf8": 1, "invalid_value": 1, "out_of_range": 3,
        "prompt_too_long": 1, "unknown_role": 1,
    }
    assert written["completion_tokens"] > written["reasoning_tokens"] > 0 and written["tokens_per_s"] > 0
    # Start-up and generation split the wall time; generating is faster than the whole job's average.
    assert 0 < written["engine_startup_s"] < written["wall_time_s"]
    assert written["engine_startup_s"] + written["generation_time_s"] == pytest.approx(written["wall_time_s"], abs=0.1)
    assert written["generation_tokens_per_s"] > written["tokens_per_s"]
    assert (out / "_SUCCESS").exists()
    assert all(p.name.startswith("_") or (p.name.startswith("part-") and p.suffix == ".parquet") for p in out.iterdir())


def test_a_data_lake_client_reads_the_parquet(jsonl_run):
    import duckdb

    glob = str(jsonl_run[0] / "*.parquet")
    con = duckdb.connect()
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{glob}', union_by_name=true)").fetchall()
    types = {row[0]: row[1] for row in described}
    assert types["id"] == "VARCHAR" and types["thinking_budget_hit"] == "BOOLEAN"
    assert types["completion_tokens"] == "BIGINT"
    assert types["tool_calls"].replace('"', "") == "STRUCT(id VARCHAR, name VARCHAR, arguments VARCHAR)[]"
    assert types["meta"].startswith("STRUCT(")
    ((count, errors, tool_name),) = con.execute(
        f"SELECT count(*), count(error), max(tool_calls[1].name) FROM read_parquet('{glob}', union_by_name=true)"
    ).fetchall()
    assert (count, errors) == (19, 15) and tool_name.startswith("get_")


def test_another_jobs_output_is_never_added_to(jsonl_run, tmp_path):
    out, _ = jsonl_run
    (tmp_path / "x.jsonl").write_text(JSONL_LINES[0] + "\n")
    with pytest.raises(JobFailed, match=r"holds results of a different spec \(changed: defaults\)"):
        run(job(out.parent / "prompts.jsonl", out, defaults={"max_tokens": 5}))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    pq.write_table(pa.table({"x": [1]}), foreign / "data.parquet")
    with pytest.raises(JobFailed, match="holds data files that no batchgen job wrote"):
        run(job(tmp_path / "x.jsonl", foreign))


def test_parquet_in_jsonl_out_and_too_many_errors_fail_the_job(tmp_path, ray_cluster):
    table = pa.table({
        "id": pa.array([10, None, 12, 13], pa.int64()),
        "prompt": [corpus.echo_prompt("apple"), corpus.echo_prompt("river"), "x", corpus.steps_prompt("stone")],
        "reasoning": ["off", "off", "off", None],
        "max_tokens": pa.array([None, None, 0, 40], pa.int32()),
        "score": pa.array([0.5, 1.5, 2.5, 3.5], pa.float32()),
    })
    pq.write_table(table, tmp_path / "in.parquet")
    with pytest.raises(JobFailed, match="more than errors.max_fraction 0.0"):
        run(job(tmp_path / "in.parquet", tmp_path / "out", output={"uri": str(tmp_path / "out"), "format": "jsonl"},
                errors={"max_fraction": 0.0}))
    rows = {r["id"]: r for r in read_rows(tmp_path / "out", "jsonl")}
    assert set(rows) == {"10", "in.parquet:1", "12", "13"}  # integer ids become text; a missing one, file:row
    assert rows["12"]["error"].startswith("out_of_range: max_tokens")
    assert rows["13"]["finish_reason"] == "length" and rows["13"]["completion_tokens"] == 40
    assert [rows[k]["score"] for k in ("10", "in.parquet:1", "12", "13")] == [0.5, 1.5, 2.5, 3.5]
    assert (tmp_path / "out" / "_stats.json").exists() and not (tmp_path / "out" / "_SUCCESS").exists()


def test_parquet_on_s3_in_and_out_keeps_nested_types(s3_endpoint, ray_cluster):
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    nested = pa.struct([("lang", pa.string()), ("weights", pa.list_(pa.float64()))])
    table = pa.table({
        "id": pa.array(["a", "b"]),
        "prompt": [corpus.echo_prompt("apple"), corpus.echo_prompt("river")],
        "info": pa.array([{"lang": "en", "weights": [1.0, 2.0]}, {"lang": "de", "weights": []}], nested),
        "labels": pa.array([[1, 2], None], pa.list_(pa.int16())),
        "day": pa.array([19000, 19001], pa.date32()),
    })
    with fs.open("batchgen-test/in/part-0.parquet", "wb") as handle:
        pq.write_table(table, handle)
    spec = job("s3://batchgen-test/in/", "s3://batchgen-test/results/run-1/", storage={"endpoint_url": s3_endpoint},
               defaults={"reasoning": "off", "max_tokens": 20, "temperature": 0.0})
    stats = run(spec)
    assert (stats.records, stats.errors) == (2, 0)
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls("batchgen-test/results/run-1/"))
    assert "_SUCCESS" in names and "_stats.json" in names
    (data,) = [n for n in names if n.endswith(".parquet")]
    with fs.open(f"batchgen-test/results/run-1/{data}", "rb") as handle:
        out = pq.read_table(handle)
    for name in ("info", "labels", "day"):
        assert out.schema.field(name).type == table.schema.field(name).type
    assert out.sort_by("id").column("info").to_pylist() == table.column("info").to_pylist()


def test_passthrough_fields_arrive_whole_with_one_schema_for_the_prefix(tmp_path, ray_cluster):
    import duckdb
    import pyarrow.dataset as pads

    say_hi = {"prompt": "Say hi.", "reasoning": "off"}
    records = [
        {"id": "a", **say_hi},  # the first record of its batch has none of the fields below
        {"id": "b", **say_hi, "meta": {"k": 1}, "note": None, "k": 1},
        {"id": "c", **say_hi, "meta": {}, "empty": [], "nested": {"inner": {}}},
        {"id": "d", **say_hi, "note": "later", "k": "one", "model": "gpt-4"},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    # One record per batch and per file: every file sees a different subset of the fields.
    spec = job(tmp_path / "in.jsonl", tmp_path / "out", defaults={"max_tokens": 4},
               scaling={"replicas": 1, "gpus_per_replica": 0, "batch_size": 1},
               output={"uri": str(tmp_path / "out"), "min_rows_per_file": 1})
    stats = run(spec)
    assert (stats.records, stats.errors, stats.files) == (4, 0, 4)
    glob = str(tmp_path / "out" / "*.parquet")
    rows = {r["id"]: r for r in duckdb.sql(f"SELECT * FROM read_parquet('{glob}')").fetch_arrow_table().to_pylist()}
    assert pads.dataset(str(tmp_path / "out"), format="parquet",
                        exclude_invalid_files=True).to_table().num_rows == 4  # pyarrow's plain glob too
    assert json.loads(rows["b"]["meta"]) == {"k": 1} and json.loads(rows["c"]["meta"]) == {}
    assert rows["a"]["meta"] is None
    assert json.loads(rows["c"]["empty"]) == [] and json.loads(rows["c"]["nested"]) == {"inner": {}}
    assert rows["d"]["note"] == "later" and rows["b"]["note"] is None
    assert [json.loads(rows[k]["k"]) for k in "bd"] == [1, "one"]
    assert rows["d"]["input_model"] == "gpt-4" and rows["d"]["model"] == "toy:nemotron-h"
    assert all(rows[k]["content"] for k in "abcd")


def test_another_input_onto_a_finished_output_is_refused(jsonl_run, tmp_path):
    out, _ = jsonl_run
    (tmp_path / "x.jsonl").write_text(JSONL_LINES[0] + "\n")
    with pytest.raises(JobFailed, match=r"holds results for another input \(prompts.jsonl, .* bytes; this run reads x.jsonl"):
        run(job(tmp_path / "x.jsonl", out, errors={"max_fraction": 0.9}))


def test_a_tensor_parallel_replica_gets_a_packed_placement_group_of_its_own(ray_cluster):
    # What Ray Data calls before creating each actor of a 2-GPU replica (no GPU here: the group stays pending).
    import ray

    from batchgen.engine import placement

    make = placement.ray_args(job("in.jsonl", "out", scaling={"gpus_per_replica": 2}).scaling)["ray_remote_args_fn"]
    first, second = make()["scheduling_strategy"], make()["scheduling_strategy"]
    try:
        assert first.placement_group.id != second.placement_group.id  # one group per replica
        assert first.placement_group.bundle_specs == [{"GPU": 1.0, "CPU": 1.0}] * 2
        assert first.placement_group_capture_child_tasks  # vLLM's rank workers go into it too
        assert ray.util.placement_group_table(first.placement_group)["strategy"] == "PACK"
    finally:
        for strategy in (first, second):
            ray.util.remove_placement_group(strategy.placement_group)


def batch_line(custom_id, content, **body):
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **body}}


def test_an_openai_batch_file_runs_unchanged_and_is_answered_in_kind(tmp_path, ray_cluster):
    from openai.types import BatchError
    from openai.types.chat import ChatCompletion

    schema = {"type": "object", "properties": {"word": {"type": "string", "maxLength": 8}}, "required": ["word"],
              "additionalProperties": False}
    lines = [
        batch_line("req-1", corpus.steps_prompt("river"), max_completion_tokens=30, n=2, temperature=1.0),
        batch_line("req-2", corpus.weather_prompt("Oslo"), tools=corpus.TOOLS, reasoning_effort="high"),
        batch_line("req-3", corpus.echo_prompt("apple"), logprobs=True, top_logprobs=1,
                   response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}),
        batch_line("req-4", corpus.echo_prompt("apple"), frequency_penalty=1.0),
    ]
    (tmp_path / "batch.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    spec = job(tmp_path / "batch.jsonl", tmp_path / "out", input={"uri": str(tmp_path / "batch.jsonl"), "format": "openai"},
               output={"uri": str(tmp_path / "out"), "format": "openai"}, errors={"max_fraction": 0.5})
    stats = run(spec)
    assert (stats.records, stats.rows, stats.errors) == (4, 5, 1)  # req-1 has two samples
    out = {x["custom_id"]: x for x in map(json.loads, (tmp_path / "out" / "_batch_output.jsonl").read_text().splitlines())}
    assert sorted(out) == ["req-1", "req-2", "req-3", "req-4"]
    bodies = {k: ChatCompletion.model_validate(out[k]["response"]["body"]) for k in ("req-1", "req-2", "req-3")}
    samples = bodies["req-1"].choices
    assert [c.index for c in samples] == [0, 1] and samples[0].message.model_extra["reasoning_content"].startswith("Step 1")
    assert bodies["req-1"].usage.completion_tokens == 60  # two samples of 30 tokens, both cut while reasoning
    call = bodies["req-2"].choices[0].message.tool_calls[0]
    assert bodies["req-2"].choices[0].finish_reason == "tool_calls" and set(json.loads(call.function.arguments)) == {"city"}
    answer = bodies["req-3"].choices[0]
    assert set(json.loads(answer.message.content)) == {"word"} and answer.logprobs.content[0].top_logprobs
    error = BatchError.model_validate(out["req-4"]["error"])
    assert out["req-4"]["response"] is None and error.code == "invalid_value" and "frequency_penalty" in error.message
    # The Parquet rows hold the same, one row per sample, the line's custom_id their id (and a column).
    rows = read_rows(tmp_path / "out").to_pylist()
    assert sorted((r["id"], str(r["sample_index"])) for r in rows) == [
        ("req-1", "0"), ("req-1", "1"), ("req-2", "0"), ("req-3", "0"), ("req-4", "None")]
    assert all(r["custom_id"] == r["id"] for r in rows if r["error"] is None)


def test_a_rerun_of_a_sampled_job_draws_the_same_samples(tmp_path, ray_cluster):
    # n samples at temperature 1, seeds from the job's seed: a resumed run, batched differently, writes the
    # same rows; another job seed draws others.
    records = [{"id": f"r{i}", "prompt": corpus.steps_prompt(word), "n": 2, "temperature": 1.0, "max_tokens": 24}
               for i, word in enumerate(["river", "stone", "apple"])]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    def answers(out):
        rows = read_rows(tmp_path / out).to_pylist()
        return sorted((r["id"], r["sample_index"], r["reasoning_content"]) for r in rows)

    run(job(tmp_path / "in.jsonl", tmp_path / "a", scaling={"replicas": 1, "gpus_per_replica": 0, "batch_size": 1},
            output={"uri": str(tmp_path / "a"), "min_rows_per_file": 1}))
    first = answers("a")
    assert [(rid, k) for rid, k, _ in first] == [(f"r{i}", k) for i in range(3) for k in range(2)]
    # A resumed job: two committed data files and their checkpoint entries gone, as if the job had been
    # killed before them; the resume runs those records again, in one batch this time, and draws the same
    # samples.
    data = sorted((tmp_path / "a").glob("part-*.parquet"))
    assert len(data) == 3
    (tmp_path / "a" / "_SUCCESS").unlink()
    for lost in data[1:]:
        lost.unlink()
        (tmp_path / "a" / "_checkpoint" / (lost.name.rsplit("-", 1)[0] + ".parquet")).unlink()
    stats = run(job(tmp_path / "in.jsonl", tmp_path / "a", scaling={"replicas": 1, "gpus_per_replica": 0, "batch_size": 3}))
    assert (stats.skipped_already_done, stats.records, stats.rows) == (1, 3, 6)
    assert answers("a") == first
    run(job(tmp_path / "in.jsonl", tmp_path / "c", seed=1))
    assert answers("c") != first


def test_a_graded_sampled_budget_sweep_gives_the_figures_its_rows_give_before_and_after_a_resume(tmp_path, ray_cluster):
    # The toy echoes a word, not always the one asked for: the reference is the word asked for. Two samples
    # at temperature 0.6, each swept over budgets 4 and 24 with reasoning on, and a reasoning-off record.
    from math import comb

    from batchgen.views.survey import survey

    words = ["river", "stone", "apple", "candle", "garden", "silver"]
    records = [{"id": f"w{i}", "prompt": corpus.echo_prompt(word), "answer": word, "n": 2, "temperature": 0.6,
                "max_thinking_tokens": [4, 24], "max_tokens": 60} for i, word in enumerate(words)]
    records.append({"id": "off", "prompt": corpus.echo_prompt("apple"), "answer": "apple", "reasoning": "off"})
    records.append({"id": "nothing", "prompt": corpus.echo_prompt("stone")})  # no reference: left out
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    spec = job(tmp_path / "in.jsonl", tmp_path / "out", grade={"reference": "answer", "extract": "content"},
               output={"uri": str(tmp_path / "out"), "min_rows_per_file": 4})
    run(spec)

    def figures_from_rows() -> dict:
        rows = read_rows(tmp_path / "out").to_pylist()
        for row in rows:
            if row["error"] is None and row["answer"] is not None:
                assert row["extracted_answer"] == row["content"].strip()
                assert row["correct"] == (row["content"].strip().rstrip(".").lower() == row["answer"])
        groups = {}
        for row in rows:
            if row["ungraded_reason"] and row["ungraded_reason"].startswith("no_reference"):
                continue
            groups.setdefault((row["reasoning"], row["max_thinking_tokens"]), {}).setdefault(row["id"], []).append(row["correct"] is True)
        out = {}
        for key, by_record in groups.items():
            flat = [c for samples in by_record.values() for c in samples]
            n = min(len(s) for s in by_record.values())
            out[key] = (sum(flat) / len(flat), {str(k): sum(1 - comb(len(s) - sum(s), k) / comb(len(s), k)
                                                             for s in by_record.values()) / len(by_record)
                                                for k in range(1, n + 1)})
        return out

    def figures_inspected() -> dict:
        found = survey(str(tmp_path / "out"))
        groups = {(g["reasoning"], g["max_thinking_tokens"]): g for g in found.scores if g["reasoning"] != "all"}
        left_out = groups.pop(("on", None))  # the record without a reference
        assert (left_out["rows"], left_out["rows_left_out"], left_out["accuracy"]) == (0, 1, None)
        return {key: (g["accuracy"], g["pass_at_k"]) for key, g in groups.items()}

    expected = figures_from_rows()
    assert set(expected) == {("on", 4), ("on", 24), ("off", None)}
    got = figures_inspected()
    assert set(got) == set(expected)
    for key, (accuracy, pass_at) in expected.items():
        assert got[key][0] == pytest.approx(accuracy) and got[key][1] == pytest.approx(pass_at), key
    # A resume: committed files and their checkpoint entries gone, as a kill would leave them; the figures
    # are those of the rows the finished job holds, and every key is there once.
    data = sorted((tmp_path / "out").glob("part-*.parquet"))
    (tmp_path / "out" / "_SUCCESS").unlink()
    for lost in data[::2]:
        lost.unlink()
        (tmp_path / "out" / "_checkpoint" / (lost.name.rsplit("-", 1)[0] + ".parquet")).unlink()
    run(spec)
    rows = read_rows(tmp_path / "out").to_pylist()
    keys = [(r["id"], r["sample_index"], r["max_thinking_tokens"]) for r in rows]
    assert len(keys) == len(set(keys)) == 6 * 2 * 2 + 2
    resumed = figures_from_rows()
    got = figures_inspected()
    for key, (accuracy, pass_at) in resumed.items():
        assert got[key][0] == pytest.approx(accuracy) and got[key][1] == pytest.approx(pass_at), key
