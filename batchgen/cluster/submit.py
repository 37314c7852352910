"""Running jobs on a Ray cluster through its Jobs API: submit `batchgen run` with the spec carried inline,
and follow, stop or list what was submitted.

The spec travels in the entrypoint, so nothing on the submitting machine needs to be visible to the
cluster; the spec holds no credentials (spec validation refuses them), and neither may the runtime
environment, which anyone who can list jobs can read. Credentials come from the cluster's environment.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from collections.abc import Callable, Iterator

from batchgen.spec.job import SECRET_KEY, JobSpec, SpecError

class ClusterError(RuntimeError):
    """The cluster could not be reached or refused the request."""


def _is_relative_local(uri: str) -> bool:
    return "://" not in uri and not os.path.isabs(uri)


def check_portable(spec: JobSpec) -> None:
    """Refuses locations that only make sense on the submitting machine (a template file is already in the
    spec: `load_spec` reads it where the spec is loaded)."""
    examples = spec.prompt.examples if spec.prompt else None
    tables = [(f"{side}.table.catalog", table.catalog) for side, table in (("input", spec.input.table),
                                                                          ("output", spec.output.table)) if table]
    # A SQL catalog's database file and warehouse are locations (a REST catalog's warehouse is a name).
    catalogs = [(f"{key}.{name}", value.removeprefix("sqlite:///")) for key, catalog in tables
                if catalog.get("type") == "sql" for name, value in catalog.items()
                if name == "warehouse" or (name == "uri" and value.startswith("sqlite:///"))]
    for key, uri in (("input.uri", spec.input.uri), ("output.uri", spec.output.uri),
                     *((("prompt.examples.uri", examples.uri),) if examples else ()), *catalogs):
        if _is_relative_local(uri):
            raise SpecError(f"{key}: {uri!r} is a relative local path the cluster cannot see; "
                            "use an object store URL or an absolute path on a shared filesystem")


def runtime_env(pip: list[str], env: list[str]) -> dict:
    env_vars = {}
    for assignment in env:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise SpecError(f"--env expects NAME=value, got {assignment!r}")
        if SECRET_KEY.search(name):
            raise SpecError(f"--env {name}: secrets do not go into the runtime environment (anyone who can list "
                            "jobs can read it); give the cluster's nodes the credential instead")
        env_vars[name] = value
    return {k: v for k, v in (("pip", pip), ("env_vars", env_vars)) if v}


def entrypoint(spec: JobSpec) -> str:
    return f"batchgen run --spec-json {shlex.quote(spec.model_dump_json(exclude_defaults=True))}"


def address_or_default(address: str | None) -> str:
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ClusterError("no cluster address: pass --address http://HOST:8265 or set RAY_ADDRESS")
    return address


def client(address: str | None):
    from ray.job_submission import JobSubmissionClient

    address = address_or_default(address)
    try:
        return JobSubmissionClient(address)
    except Exception as error:  # connection refused, DNS, auth: all one line for the user
        raise ClusterError(f"cannot reach the Ray job server at {address}: {_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _call(action: str, fn: Callable, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as error:
        raise ClusterError(f"{action}: {_first_line(error)}") from None


# What Ray's job server answers while a head that started seconds ago has no job agent yet (Ray 2.60:
# "Request failed with status code 500: No available agent to submit job, please try again later.."):
# transient by Ray's own word, so waited out.
AGENT_NOT_READY = "No available agent to submit job"
AGENT_WAIT_S = 120.0


def submit(address: str | None, spec: JobSpec, pip: list[str], env: list[str], submission_id: str | None,
           waiting: Callable[[str], None] = lambda line: None, wait_s: float = AGENT_WAIT_S) -> str:
    """Submits `spec` as `batchgen run`; returns the submission id. While the head has no job agent yet,
    says so once through `waiting` and tries again every 2 s for up to `wait_s` seconds; raises
    ClusterError (one line) when the cluster refuses or the wait passes."""
    check_portable(spec)
    environment = runtime_env(pip, env) or None  # refused before anything reaches the cluster
    jobs = client(address)
    deadline, said = time.monotonic() + wait_s, False
    while True:
        try:
            return jobs.submit_job(entrypoint=entrypoint(spec), runtime_env=environment,
                                   submission_id=submission_id, metadata={"batchgen_job": spec.name})
        except Exception as error:
            if AGENT_NOT_READY not in str(error):
                raise ClusterError(f"submit: {_first_line(error)}") from None
            if time.monotonic() >= deadline:
                raise ClusterError(f"submit: the cluster's job agent did not come up in {wait_s:.0f} s "
                                   f"({_first_line(error)})") from None
            if not said:
                waiting(f"batchgen: waiting for the cluster's job agent (Ray says: {_first_line(error)})")
                said = True
            time.sleep(2)


def status(address: str | None, submission_id: str) -> str:
    return str(_call("status", client(address).get_job_status, submission_id).value)


def logs(address: str | None, submission_id: str) -> str:
    return _call("logs", client(address).get_job_logs, submission_id)


def follow(address: str | None, submission_id: str) -> Iterator[str]:
    """The job's log as it is written, until the job ends."""
    job_client = client(address)
    stream = job_client.tail_job_logs(submission_id)
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()


def stop(address: str | None, submission_id: str) -> bool:
    return bool(_call("stop", client(address).stop_job, submission_id))


def list_jobs(address: str | None) -> list[dict]:
    jobs = _call("list", client(address).list_jobs)
    return [
        {"submission_id": j.submission_id, "status": str(j.status.value), "job": (j.metadata or {}).get("batchgen_job", ""),
         "entrypoint": j.entrypoint}
        for j in sorted(jobs, key=lambda j: j.start_time or 0)
    ]
