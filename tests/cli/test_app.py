"""The CLI through typer's runner (fast paths) and as a subprocess (the demo job, end to end)."""

import json
import os
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from batchgen.cli.app import app
from tests import ROOT
from tests.browser import render_in_chromium

DEMO = ROOT / "jobs" / "demo.yaml"
runner = CliRunner()


def _commands() -> dict:
    """Every command registered on the typer app, by name, as click sees it (a new command cannot be missed)."""
    import typer.main

    return dict(typer.main.get_command(app).commands)


COMMANDS = _commands()


def test_the_top_level_help_lists_every_command():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Usage" in result.output
    assert {"run", "validate", "inspect", "report", "schema", "k8s", "submit", "status", "logs", "stop", "list"} <= set(COMMANDS)
    for name in COMMANDS:
        assert re.search(rf"\b{re.escape(name)}\b", result.output), f"{name} missing from the top-level help"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name):
    import click

    command = COMMANDS[name]
    assert (command.help or "").strip(), f"{name} has no help text"
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})  # wide: rich would cut long flags
    assert result.exit_code == 0 and "Usage" in result.output, result.output
    assert " ".join(command.help.split()[:4]) in result.output  # its own help text, not only the usage line
    for param in command.params:
        if isinstance(param, click.Argument):
            assert param.name.lower() in result.output.lower(), f"{name} --help does not name its argument {param.name}"
            assert (getattr(param, "help", None) or "").strip(), f"{name}'s argument {param.name} has no help"
            assert param.help in result.output
        else:
            flag = max(param.opts, key=len)
            assert flag in result.output, f"{name} --help does not name its option {flag}"


def test_schema_prints_json_schema():
    result = runner.invoke(app, ["schema", "output"])
    assert result.exit_code == 0 and "reasoning_content" in json.loads(result.output)["properties"]
    assert runner.invoke(app, ["schema", "nope"]).exit_code == 2


def test_validate_reports_bad_records_and_renders_prompts(tmp_path):
    result = runner.invoke(app, ["validate", str(DEMO), "--show", "1"])
    assert result.exit_code == 0, result.output
    assert "<SPECIAL_11>User\nRepeat the word apple.\n<SPECIAL_11>Assistant\n<think>\n" in result.output
    assert "bad record bad-1: invalid_type: max_tokens" in result.output
    assert "bad record echo-0@demo-prompts.jsonl:37: duplicate_id: its id was already used at demo-prompts.jsonl:1" in result.output
    assert "37 records, 3 would fail" in result.output


def test_validate_fails_when_too_many_records_would_fail():
    result = runner.invoke(app, ["validate", str(DEMO), "--set", "errors.max_fraction=0.01", "--show", "0"])
    assert result.exit_code == 1 and "more than errors.max_fraction 0.01" in result.output


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("scaling.replicas=0", "scaling.replicas: Input should be greater than or equal to 1"),
        ("budget.mode=sometimes", "budget.mode: Input should be 'newline' or 'strict'"),
        ("storage.secret_access_key=abc", "credentials do not belong in the spec"),
        ("nmae=x", "nmae: Extra inputs are not permitted"),
        ("name=Bad_Name", "name: String should match pattern"),
        ("oops", "--set expects key.path=value"),
    ],
)
def test_bad_specs_are_refused_with_the_key_named(override, message):
    result = runner.invoke(app, ["run", str(DEMO), "--set", override])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_a_grade_reference_the_input_lacks_refuses_validate_with_exit_2():
    result = runner.invoke(app, ["validate", str(DEMO), "--set", "grade.reference=gold", "--show", "0"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("batchgen: grade.reference: the input has no column 'gold' (its columns: ")
    assert runner.invoke(app, ["run", str(DEMO), "--set", "grade.extract=regex", "--set", "grade.reference=x"]).exit_code == 2


def test_judged_by_needs_a_judge_jobs_output(tmp_path):
    from tests.prefixes import ROWS, write_prefix

    out = write_prefix(tmp_path / "first", ROWS, records=len(ROWS), finished=True)
    other = write_prefix(tmp_path / "other", ROWS, records=len(ROWS), finished=True)
    result = runner.invoke(app, ["inspect", out, "--judged-by", other])
    assert result.exit_code == 1
    assert "not the output of a judge job (its spec has no grade section with compare: verdict)" in result.output


def test_missing_input_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["validate", str(DEMO), "--set", f"input.uri={tmp_path}/none.jsonl"])
    assert result.exit_code == 1 and result.output.strip() == f"batchgen: input.uri: nothing at {tmp_path}/none.jsonl"


@pytest.mark.engine
def test_run_as_a_subprocess_then_inspect_and_report_its_output(tmp_path):
    out = tmp_path / "demo-out"
    env = {**os.environ, "RAY_ADDRESS": "", "BATCHGEN_LOG_DIR": str(tmp_path / "logs")}
    env.pop("RAY_ADDRESS")
    proc = subprocess.run(
        [sys.executable, "-m", "batchgen.cli.app", "run", str(DEMO), "--set", f"output.uri={out}", "--show", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "37 records (34 ok, 3 errors" in proc.stdout
    shown = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    # Rows are written as records finish, so any two may come first (a duplicate's renamed id among them).
    written = {rid for path in out.glob("*.parquet") for rid in pq.read_table(path, columns=["id"]).column("id").to_pylist()}
    assert len(shown) == 2 and {row["id"] for row in shown} <= written and len(written) == 37
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["records"] == 37 and (out / "_SUCCESS").exists()
    # Quiet: the progress display and batchgen's lines on the terminal, Ray's and vLLM's logs in the file
    assert "37/37 records (100%) |" in proc.stderr  # the display's last line (not a terminal: plain lines)
    assert "core_worker" not in proc.stderr and "streaming_executor" not in proc.stderr and "WARNING" not in proc.stderr
    [log] = (tmp_path / "logs").glob("demo-*.log")
    assert f"Ray's and vLLM's log: {log}" in proc.stdout
    text = log.read_text()
    assert "Started a local Ray instance" in text and "MapWorker(MapBatches(GenerateStage))" in text

    inspected = subprocess.run([sys.executable, "-m", "batchgen.cli.app", "inspect", str(out), "--json"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=120)
    assert inspected.returncode == 0, inspected.stderr
    found = json.loads(inspected.stdout)
    assert found["state"] == "complete" and not found["resumable"] and found["done"] == found["total"] == 37
    assert found["errors_by_code"] == {"duplicate_id": 1, "invalid_type": 1, "missing_prompt": 1}
    assert found["error_examples"]["missing_prompt"] == ["bad-2"]
    assert found["completion_tokens"] == stats["completion_tokens"] and found["budget_hits"] > 0
    assert sum(found["finish_reasons"].values()) == 37 and found["reasoning_tokens_percentiles"]["max"] > 0
    # what `make gpu-check` asks of the demo's output on a GPU, asked of the CPU's
    from batchgen.cli.gpu_check import check_demo_output
    from batchgen.spec.job import load_spec

    assert check_demo_output(str(out), load_spec(DEMO)) == []

    page = tmp_path / "report.html"
    reported = subprocess.run([sys.executable, "-m", "batchgen.cli.app", "report", str(out), "-o", str(page)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)
    assert reported.returncode == 0 and page.exists(), reported.stderr
    rendered = render_in_chromium(page)
    assert rendered["errors"] == [] and rendered["charts"] == 6  # every chart drew, the page raised nothing


@pytest.mark.parametrize("job, says", [
    ("budget-sweep.yaml", ["--- steps-river (reasoning on, 24 tokens, budget sweep [0, 8, 24, none]: one reasoning at no "
                           "budget, a row per budget)", "--- own-sweep (reasoning on, 24 tokens, budget sweep [4, none]"]),
    ("samples-structured.yaml", ["--- choice-apple (reasoning on, 22 tokens, 2 samples, answer constrained by "
                                 "structured_outputs (choice), logprobs (top 3))"]),
    ("openai-batch.yaml", ["bad record req-6: invalid_value: body: batchgen cannot honour presence_penalty",
                           "--- req-3 (reasoning on, 24 tokens, 3 samples)"]),
    ("lake-table.yaml", ["--- 6 (reasoning on, 70 tokens, thinking budget 16)", "Antworte kurz.\n",
                         "Repeat the word tiger.\n", "bad record 4: missing_field: the user template needs 'word'; "
                         "this record has item, lang, level", "6 records, 1 would fail {'missing_field': 1}"]),
])
def test_validate_says_what_each_example_record_runs(job, says):
    result = runner.invoke(app, ["validate", str(ROOT / "jobs" / job), "--show", "9"])
    assert result.exit_code == 0, result.output
    for line in says:
        assert line in result.output


@pytest.mark.parametrize("runs", [8, pytest.param(20, marks=pytest.mark.slow)])
@pytest.mark.parametrize("command", [["run", "{spec}", "--show", "3"], ["validate", "{spec}", "--show", "2"],
                                     ["inspect", "{out}"], ["inspect", "{out}", "--json"],
                                     ["report", "{out}", "-o", "{tmp}/report.html"]])
def test_commands_that_read_an_output_exit_cleanly_every_time(tmp_path, command, runs):
    # pyarrow's dataset readers (the scanner, pq.read_table of the checkpoint's files) read on their own
    # threads through Python file objects; one left behind was destroyed on such a thread while Python shut
    # down: "terminate called without an active exception", exit 134, in 11 of 30 `batchgen inspect` runs
    # (this test failed on that code). Eight runs catch that rate with p > 0.97; `make bench` runs 20.
    from tests.prefixes import ROWS, write_prefix

    out = write_prefix(tmp_path / "p", ROWS, records=len(ROWS), finished=True)
    (tmp_path / "p" / "out" / "_checkpoint").mkdir()  # as Ray Data's checkpoint leaves it: the committed ids
    pq.write_table(pa.table({"id": [r["id"] for r in ROWS]}), tmp_path / "p" / "out" / "_checkpoint" / "c-0.parquet")
    places = {"{tmp}": str(tmp_path), "{out}": out, "{spec}": str(tmp_path / "p" / "spec.json")}
    args = [places.get(a, a.replace("{tmp}", str(tmp_path))) for a in command]
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-m", "batchgen.cli.app", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0 and "terminate called" not in proc.stderr, proc.stderr[-2000:]
        assert "Aborted" not in proc.stderr and "Stack trace" not in proc.stderr
