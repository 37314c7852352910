"""`batchgen submit`, `status`, `logs`, `stop`, `list`: jobs on a Ray cluster through its Jobs API.
Every command takes `--address` (the job server, http://HOST:8265) or reads RAY_ADDRESS."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from batchgen.cluster import submit as jobs
from batchgen.cli.common import JobFile, Overrides, fail, spec_or_exit
from batchgen.spec.job import SpecError

Address = Annotated[Optional[str], typer.Option(help="Ray job server, e.g. http://127.0.0.1:8265 (default: RAY_ADDRESS)")]
SubmissionId = Annotated[str, typer.Argument(help="submission id", show_default=False)]


def _cluster(action, *args):
    try:
        return action(*args)
    except jobs.ClusterError as error:
        raise fail(str(error)) from None


def submit(
    job: JobFile,
    overrides: Overrides = [],
    address: Address = None,
    wait: Annotated[bool, typer.Option(help="stream the logs and exit with the job's final status")] = False,
    pip: Annotated[list[str], typer.Option(help="pip package for the runtime environment (repeatable)")] = [],
    env: Annotated[list[str], typer.Option(help="NAME=value for the runtime environment (no secrets)")] = [],
    submission_id: Annotated[Optional[str], typer.Option(help="your own submission id")] = None,
) -> None:
    """Validate a job spec here, then run it on a Ray cluster as `batchgen run` with the spec inline."""
    spec = spec_or_exit(job, overrides)
    try:
        sid = _cluster(jobs.submit, address, spec, pip, env, submission_id, lambda line: typer.echo(line, err=True))
    except SpecError as error:
        raise fail(str(error), 2) from None
    typer.echo(sid)
    if wait:
        for chunk in _cluster(jobs.follow, address, sid):
            typer.echo(chunk, nl=False, err=True)
        final = _cluster(jobs.status, address, sid)
        typer.echo(f"batchgen: {sid} {final}", err=True)
        raise typer.Exit(0 if final == "SUCCEEDED" else 1)


def status(submission_id: SubmissionId, address: Address = None) -> None:
    """Print a submitted job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED)."""
    typer.echo(_cluster(jobs.status, address, submission_id))


def logs(submission_id: SubmissionId, address: Address = None,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the job ends")] = False) -> None:
    """Print a submitted job's log."""
    if follow:
        for chunk in _cluster(jobs.follow, address, submission_id):
            typer.echo(chunk, nl=False)
    else:
        typer.echo(_cluster(jobs.logs, address, submission_id), nl=False)


def stop(submission_id: SubmissionId, address: Address = None) -> None:
    """Ask the cluster to stop a submitted job."""
    stopped = _cluster(jobs.stop, address, submission_id)
    typer.echo(f"{submission_id}: {'stopping' if stopped else 'already finished'}")


def list_jobs(address: Address = None) -> None:
    """List the cluster's jobs: submission id, status, batchgen job name."""
    for job in _cluster(jobs.list_jobs, address):
        typer.echo(f"{job['submission_id']}\t{job['status']}\t{job['job']}")
