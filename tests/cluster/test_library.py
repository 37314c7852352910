"""batchgen from Python on the real engine: `batchgen.run` over a lake table with templates and few-shot
examples, a judge chained onto its output (local and on the S3 server), and `batchgen.generate` as a stage
of someone's Ray Data pipeline."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batchgen
from batchgen.engine.preparer import RecordPreparer
from tests.conftest import TEST_ENGINE, TEST_GRACE, TOY
from tests.inputs import LAKE_EXAMPLES, LAKE_PROMPT, write_lake_table

pytestmark = pytest.mark.engine

BASE = {"name": "lake", "model": {"path": "toy:nemotron-h"}, "engine": TEST_ENGINE,
        "defaults": {"max_tokens": 40, "temperature": 0.0}, "budget": {"grace_tokens": TEST_GRACE},
        "scaling": {"replicas": 1, "gpus_per_replica": 0, "batch_size": 4}}
JUDGE = {"user": "Does the answer '{{ content }}' fit the question '{{ question }}'? Say yes or no."}
MISSING_CONTEXT = "missing_field: the user template needs 'context'; this record has answer, lang, n, qid, question"


def read_rows(directory) -> pa.Table:
    files = sorted(p for p in directory.iterdir() if p.suffix == ".parquet")
    return pa.concat_tables([pq.read_table(f) for f in files]).sort_by("id")


def lake_job(root) -> dict:
    prompt = {**LAKE_PROMPT, "examples": {**LAKE_PROMPT["examples"], "k": None, "uri": str(root / "examples.jsonl")}}
    return {**BASE, "input": {"uri": str(root / "table"), "id_column": "qid"}, "prompt": prompt,
            "output": {"uri": str(root / "out")}, "errors": {"max_fraction": 0.5},
            "grade": {"reference": "answer", "extract": "content"}}


def judge_job(name, input_uri, output_uri, **sections) -> dict:
    return {**BASE, "name": name, "input": {"uri": input_uri}, "output": {"uri": output_uri}, "prompt": JUDGE,
            "defaults": {"reasoning": "off", "max_tokens": 5, "structured_outputs": {"choice": ["yes", "no"]}},
            "grade": {"compare": "verdict", "extract": "content"}, **sections}


@pytest.fixture(scope="module")
def lake_run(tmp_path_factory, ray_cluster):
    root = tmp_path_factory.mktemp("lake")
    write_lake_table(root)
    return root, batchgen.run(lake_job(root))


def test_a_lake_table_runs_with_templates_and_every_record_is_answered_or_names_its_column(lake_run):
    root, result = lake_run
    assert (result.stats.records, result.stats.errors, result.output) == (5, 2, str(root / "out"))
    assert result.log is not None and result.log.exists()
    rows = read_rows(root / "out")
    assert rows.column("id").to_pylist() == ["1", "2", "3", "4", "5"]
    assert rows.column("lang").to_pylist() == ["en", "en", "en", "fr", "fr"]  # the partition folders
    assert rows.column("qid").to_pylist() == [1, 2, 3, 4, 5]
    errors = dict(zip(rows.column("id").to_pylist(), rows.column("error").to_pylist()))
    assert errors == {"1": None, "2": MISSING_CONTEXT, "3": None, "4": None, "5": MISSING_CONTEXT}


def test_the_prompt_a_record_ran_with_is_the_one_built_by_hand(lake_run):
    root, _ = lake_run
    row = LAKE_EXAMPLES
    by_hand = [{"role": "system", "content": "You answer questions in en."}]
    for example in row:
        by_hand += [{"role": "user", "content": f"Context: none\nQuestion: {example['question']}"},
                    {"role": "assistant", "content": example["answer"]}]
    by_hand.append({"role": "user", "content": "Context: Add the numbers.\nQuestion: What is 2 plus 3?"})
    expected = RecordPreparer.for_model(TOY, TEST_ENGINE).build({"messages": by_hand}, "1")
    report = batchgen.validate(lake_job(root), show=1)
    assert report.prompts[0].prompt == expected.prompt
    assert (report.records, dict(report.errors)) == (5, {"missing_field": 2})
    ran = read_rows(root / "out").filter(pa.compute.equal(pa.compute.field("id"), "1"))
    assert ran.column("prompt_tokens").to_pylist() == [len(expected.prompt_ids)]


def check_judged(first: pa.Table, judged: pa.Table) -> None:
    answers = first.filter(pa.compute.is_null(first.column("error")))
    assert judged.column("id").to_pylist() == [f"{i}#0" for i in answers.column("id").to_pylist()]
    assert judged.column("source_id").to_pylist() == answers.column("id").to_pylist()
    assert judged.column("input_content").to_pylist() == answers.column("content").to_pylist()
    assert judged.column("question").to_pylist() == answers.column("question").to_pylist()
    assert set(judged.column("content").to_pylist()) <= {"yes", "no"} and judged.column("error").null_count == judged.num_rows


def test_a_judge_reads_the_first_jobs_output_and_its_verdicts_join_back(lake_run, tmp_path):
    root, _ = lake_run
    from batchgen.views.survey import survey

    result = batchgen.run(judge_job("judge", str(root / "out"), str(tmp_path / "judge")))
    assert (result.stats.records, result.stats.errors) == (3, 0)
    first, verdicts = read_rows(root / "out"), read_rows(tmp_path / "judge")
    check_judged(first, verdicts)
    # The first job graded itself against its answer column; the judge's verdicts grade it too.
    said = verdicts.column("content").to_pylist()
    assert verdicts.column("correct").to_pylist() == [v == "yes" for v in said]
    graded = first.column("correct").to_pylist()
    reasons = [(r or "").split(":")[0] for r in first.column("ungraded_reason").to_pylist()]
    assert reasons.count("error_row") == 2 and all(reasons[i] for i, c in enumerate(graded) if c is None)
    left_out = reasons.count("no_reference")  # a row of the table with no answer
    own = survey(str(root / "out")).scores[0]
    assert (own["rows"], own["correct"], own["rows_left_out"]) == (5 - left_out, graded.count(True), left_out)
    by_judge = survey(str(root / "out"), judged_by=str(tmp_path / "judge")).scores[0]
    assert (by_judge["rows"], by_judge["correct"], by_judge["rows_left_out"]) == (5, said.count("yes"), 0)


def test_a_judge_reads_a_first_job_on_the_s3_server(lake_run, s3_endpoint):
    import s3fs

    root, _ = lake_run
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    fs.put(str(root / "out"), "batchgen-test/lake-first", recursive=True)  # a finished prefix is only files
    storage = {"endpoint_url": s3_endpoint}
    result = batchgen.run(judge_job("judge-s3", "s3://batchgen-test/lake-first", "s3://batchgen-test/lake-judge/",
                                    storage=storage))
    assert result.stats.records == 3
    judged = pa.concat_tables([pq.read_table(f, filesystem=pa.fs.PyFileSystem(pa.fs.FSSpecHandler(fs)))
                               for f in fs.glob("batchgen-test/lake-judge/*.parquet")]).sort_by("id")
    check_judged(read_rows(root / "out"), judged)


def test_generate_is_a_stage_of_a_ray_data_pipeline(ray_cluster):
    import ray

    # qid 12 twice, in two batches of 2: a Dataset may repeat ids, and each of its rows is answered
    records = ray.data.from_items([{"qid": 10, "word": "apple", "note": "a"}, {"qid": 12, "word": "river", "note": "c"},
                                   {"qid": 11, "word": None, "note": "b"}, {"qid": 12, "word": "stone", "note": "d"}])
    spec = {**BASE, "input": {"uri": "unused", "id_column": "qid"}, "prompt": {"user": "Repeat the word {{ word }}."},
            "defaults": {"reasoning": "off", "max_tokens": 12, "temperature": 0.0}}
    rows = sorted(batchgen.generate(records.filter(lambda r: True), spec, scaling={"batch_size": 2}).take_all(),
                  key=lambda r: r["note"])
    assert [r["id"] for r in rows] == ["10", "11", "12", "12"] and [r["note"] for r in rows] == ["a", "b", "c", "d"]
    assert rows[1]["error"] == "missing_field: the user template needs 'word'; this record has note, qid"
    for answered in (rows[0], rows[2], rows[3]):  # the toy's words are its own; that it answered, and how, is the stage's
        assert answered["error"] is None and answered["content"] and answered["finish_reason"] in ("stop", "length")
        assert answered["reasoning"] == "off" and answered["reasoning_content"] is None
