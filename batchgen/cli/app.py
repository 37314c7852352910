"""The `batchgen` command line (typer): parse, load the spec, call the library, exit with a code.

    batchgen run JOB.yaml [--set key.path=value ...]     run on a local Ray or the cluster in RAY_ADDRESS
    batchgen validate JOB.yaml [--show N]                check spec and input without an engine
    batchgen inspect OUTPUT [--json]                     what an output holds: progress, errors, tokens
    batchgen report OUTPUT -o report.html                an HTML page of charts of an output
    batchgen schema [job|input|output]                   print a JSON Schema
    batchgen k8s JOB.yaml [--image I] [--replicas N]     render a KubeRay RayJob
    batchgen submit|status|logs|stop|list                the Ray Jobs API (cli/cluster.py)
"""

from __future__ import annotations

import itertools
import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from batchgen.cli import cluster as cli_cluster
from batchgen.cli.common import JobFile, Overrides, fail, spec_or_exit
from batchgen.cli.reaper import adopt_orphans, end_descendants
from batchgen.core.failures import root_cause
from batchgen.spec.job import JobSpec, SpecError, apply_override, parse_spec

app = typer.Typer(help="Batch inference for reasoning LLMs on Ray Data and vLLM.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
for command in (cli_cluster.submit, cli_cluster.status, cli_cluster.logs, cli_cluster.stop, cli_cluster.list_jobs):
    app.command(name=command.__name__.replace("_jobs", ""))(command)


def _show_results(spec: JobSpec, count: int) -> None:
    from batchgen.core.prefix import OutputPrefix

    prefix = OutputPrefix(spec.output.uri, spec.storage)
    files = prefix.data_files()
    if not files or count <= 0:
        return
    shown = ["id", "sample_index", "reasoning", "reasoning_content", "content", "tool_calls", "finish_reason", "thinking_budget_hit",
             "reasoning_end", "error"]
    rows = (row for batch in prefix.batches(shown, files[:1], rows_per_batch=count) for row in batch.to_pylist())
    for row in itertools.islice(rows, count):
        typer.echo(json.dumps(row, ensure_ascii=False, default=str)[:600])


@app.command()
def run(
    job: Annotated[Optional[Path], typer.Argument(help="job spec (YAML)", show_default=False)] = None,
    overrides: Overrides = [],
    show: Annotated[int, typer.Option(help="print N results")] = 0,
    spec_json: Annotated[Optional[str], typer.Option(help="the spec inline, as JSON (how `submit` sends it)")] = None,
    allow_changed_spec: Annotated[bool, typer.Option(help="resume onto output written with a different spec")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show Ray's and vLLM's logs here instead of in a log file")] = False,
) -> None:
    """Run a job: read the input, generate on vLLM replicas, write results to output.uri. Run again onto
    the same output, it resumes: finished records are skipped."""
    from batchgen.views.logs import captured
    from batchgen.cluster.pipeline import JobFailed, run as run_job
    from batchgen.views.progress import display

    if (job is None) == (spec_json is None):
        raise fail("run: give a job spec file or --spec-json, not both", 2)
    if job is not None:
        spec = spec_or_exit(job, overrides)
    else:
        try:
            spec = parse_spec(json.loads(spec_json), overrides)
        except (SpecError, json.JSONDecodeError) as error:
            raise fail(f"--spec-json: {error}", 2) from None
    typer.echo(f"batchgen: running {spec.name}: {spec.input.uri} -> {spec.output.uri}", err=True)
    adopt_orphans()
    failure, code = "", 1
    with captured(spec.name, verbose) as logs:
        shown = display(logs.terminal)
        try:
            stats = run_job(spec, report=shown, allow_changed_spec=allow_changed_spec, actor_logs=True)
        except SpecError as error:  # found with the input in hand (a grade reference it lacks): still the spec's
            failure, code = str(error), 2
        except (JobFailed, FileNotFoundError, ValueError) as error:
            failure = str(error)
        except Exception as error:  # the CLI's boundary: one clear line, the traceback in the log
            traceback.print_exc()
            failure = root_cause(error)
        finally:
            shown.close()
            _shutdown_ray()  # inside the capture: a local Ray's last words go to the log too
            end_descendants()  # what Ray left behind: its orphaned workers and engines (`cli.reaper`)
    if failure:
        raise fail(failure + ("" if code == 2 else logs.hint()), code)
    if stats.already_complete:
        typer.echo(f"batchgen: {spec.name} is already complete in {spec.output.uri}: nothing to do")
        return
    skipped = f", {stats.skipped_already_done} already done before this run" if stats.skipped_already_done else ""
    typer.echo(
        f"batchgen: {stats.records} records{_rows(stats)} ({stats.ok} ok, {stats.errors} errors {stats.errors_by_code}) "
        f"in {stats.wall_time_s:.1f} s (engine start-up {stats.engine_startup_s:.1f} s), "
        f"{stats.generation_tokens_per_s:,.1f} tokens/s generating{skipped}; results in {spec.output.uri}"
    )
    typer.echo(f"  look at them: batchgen inspect {spec.output.uri} | batchgen report {spec.output.uri} -o report.html")
    if logs.path:
        typer.echo(f"  Ray's and vLLM's log: {logs.path}")
    _show_results(spec, show)


def _rows(stats) -> str:
    return f" in {stats.rows} rows" if stats.rows != stats.records else ""


def _shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        ray.shutdown()


@app.command()
def validate(job: JobFile, overrides: Overrides = [],
             show: Annotated[int, typer.Option(help="render the first N prompts as the engine sees them")] = 2) -> None:
    """Check a job without an engine: the spec, the input, every record, and the first prompts."""
    from batchgen.cluster.validation import validate_job

    spec = spec_or_exit(job, overrides)
    try:
        report = validate_job(spec, show)
    except SpecError as error:
        raise fail(str(error), 2) from None
    except (FileNotFoundError, ValueError, OSError) as error:
        raise fail(str(error)) from None
    for prepared in report.prompts:
        typer.echo(f"--- {prepared.record_id} ({prepared.summary()})")
        typer.echo(prepared.prompt)
    for rid, error in report.bad:
        typer.echo(f"bad record {rid}: {error}")
    failed = sum(report.errors.values())
    typer.echo(f"{spec.name}: spec ok; {len(report.files)} input files, {report.records} records, "
               f"{failed} would fail {dict(report.errors)}")
    if report.records and failed / report.records > spec.errors.max_fraction:
        raise fail(f"{failed} of {report.records} records would fail, more than errors.max_fraction {spec.errors.max_fraction}")


JudgedBy = Annotated[Optional[str], typer.Option(
    "--judged-by", help="the output of a judge job chained onto this one (grade.compare: verdict): its verdicts "
    "grade the rows, and the figures are theirs")]
StorageOptions = Annotated[list[str], typer.Option(
    "--storage", help="an fsspec option for the output's filesystem: key=value (repeatable), e.g. endpoint_url=http://...")]


CatalogOptions = Annotated[list[str], typer.Option(
    "--catalog", help="with iceberg://namespace.table: a PyIceberg catalog property, key=value (repeatable), e.g. "
    "type=sql, uri=sqlite:///catalog.db, warehouse=...; PyIceberg's own configuration (.pyiceberg.yaml, "
    "PYICEBERG_CATALOG__DEFAULT__*) gives the rest")]
JobName = Annotated[Optional[str], typer.Option("--job", help="with iceberg://...: the job whose rows to take, "
                                                "where the table holds several jobs' rows")]
TABLE_SCHEME = "iceberg://"


def _output_of(output: str, catalog: list[str], job: str | None, storage: dict) -> str:
    """The output prefix `output` names: itself, or for iceberg://namespace.table the output of the job that
    committed into the table (the only one, or the one named `job`)."""
    if not output.startswith(TABLE_SCHEME):
        return output
    from batchgen.lake.iceberg import IcebergTable, committed_by_jobs
    from batchgen.spec.job import TableSpec

    identifier = output.removeprefix(TABLE_SCHEME)
    try:
        spec = TableSpec(identifier=identifier, catalog=_catalog(catalog))
        jobs = committed_by_jobs(IcebergTable(spec, storage).load())
    except SpecError as error:
        raise fail(str(error), 2) from None
    except Exception as error:  # the catalog's own errors (no such table, cannot connect): one line
        raise fail(f"{output}: {root_cause(error)}") from None
    chosen = [j for j in jobs if job is None or j["job"] == job]
    names = ", ".join(f"{j['job']} ({j['output']})" for j in jobs) or "none"
    if len(chosen) != 1:
        several = (f"the table holds rows of the jobs {names}; choose one with --job" if job is None else
                   f"jobs named {job} committed into it from {len(chosen)} outputs ({names}): inspect one of those")
        raise fail(f"{output}: {several}" if chosen else
                   f"{output}: no batchgen job{' named ' + job if job else ''} committed into it (jobs: {names})", 2)
    return chosen[0]["output"]


def _storage(options: list[str]) -> dict:
    storage: dict = {}
    for option in options:
        try:
            apply_override(storage, option)
        except SpecError as error:
            raise fail(f"--storage: {error}", 2) from None
    return storage


def _catalog(options: list[str]) -> dict[str, str]:
    """`--catalog key=value` options as properties: the keys hold dots (s3.endpoint), not paths of sections."""
    properties = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise fail(f"--catalog: expects key=value, got {option!r}", 2)
        properties[key] = value
    return properties


@app.command()
def inspect(
    output: Annotated[str, typer.Argument(help="an output.uri (a local path or an fsspec URL), or a table a job "
                                           "committed into: iceberg://namespace.table", show_default=False)],
    storage: StorageOptions = [],
    as_json: Annotated[bool, typer.Option("--json", help="print the survey as JSON")] = False,
    judged_by: JudgedBy = None,
    catalog: CatalogOptions = [],
    job: JobName = None,
) -> None:
    """What an output holds: its job, done and total records, complete or resumable, errors by code with
    example ids, tokens, reasoning-token percentiles, budget hits, finish reasons; a graded job's accuracy,
    pass@k and majority@k per reasoning mode and budget."""
    from batchgen.views.survey import describe, survey

    options = _storage(storage)
    try:
        found = survey(_output_of(output, catalog, job, options), options, judged_by)
    except (FileNotFoundError, OSError) as error:
        raise fail(f"inspect: {error}") from None
    typer.echo(json.dumps(found.to_json(), indent=2) if as_json else describe(found))


@app.command()
def report(
    output: Annotated[str, typer.Argument(help="an output.uri (a local path or an fsspec URL), or a table a job "
                                           "committed into: iceberg://namespace.table", show_default=False)],
    to: Annotated[Path, typer.Option("-o", "--output", help="the HTML file to write")] = Path("report.html"),
    storage: StorageOptions = [],
    judged_by: JudgedBy = None,
    catalog: CatalogOptions = [],
    job: JobName = None,
) -> None:
    """Write one self-contained HTML page of charts of an output: reasoning and answer lengths, finish
    reasons, how the reasoning ended, errors, throughput; the longest records and example error rows; for a
    graded job, accuracy by thinking budget, pass@k and majority@k, accuracy by reasoning length."""
    from batchgen.views.report import write

    options = _storage(storage)
    try:
        path = write(_output_of(output, catalog, job, options), to, options, judged_by)
    except (FileNotFoundError, OSError) as error:
        raise fail(f"report: {error}") from None
    typer.echo(f"batchgen: report of {output} in {path}")


@app.command()
def k8s(
    job: JobFile,
    overrides: Overrides = [],
    image: Annotated[str, typer.Option(help="container image with batchgen and vLLM")] = "",
    replicas: Annotated[Optional[int], typer.Option(min=1, help="GPU worker pods (default: scaling.replicas)")] = None,
) -> None:
    """Render a KubeRay RayJob (and the ConfigMap holding the spec) for a job spec."""
    from batchgen.cluster.k8s import DEFAULT_IMAGE, render_yaml
    from batchgen.cluster.submit import check_portable

    spec = spec_or_exit(job, overrides)
    try:
        check_portable(spec)
    except SpecError as error:
        raise fail(str(error), 2) from None
    sys.stdout.write(render_yaml(spec, image or DEFAULT_IMAGE, replicas))


@app.command()
def schema(kind: Annotated[str, typer.Argument(help="job, input or output")] = "job") -> None:
    """Print the JSON Schema of the job spec, the input record or the output record."""
    from batchgen.spec.schemas import SCHEMAS, schema_text

    if kind not in SCHEMAS:
        raise fail(f"schema: choose one of {', '.join(SCHEMAS)}, got {kind!r}", 2)
    sys.stdout.write(schema_text(kind))


if __name__ == "__main__":
    app()
