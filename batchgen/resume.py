"""Resuming a job onto its own output: what makes two runs "the same job", and the checkpoint that lets a
rerun skip finished records.

A run writes `_job.json` (the spec and a fingerprint of what shapes the answers: model, engine, defaults,
budget, output format) before any data. A later run onto the same `output.uri` resumes when the fingerprint
matches, and is refused when it does not, unless asked for (`allow_changed_spec`). Skipping finished work
is Ray Data's checkpointing: it records the `id` of every row it commits (two-phase: a data file counts only
once its ids are committed, and a file left by a crash between the two is deleted on the next run), and
filters those ids out of the input when the job runs again.
"""

from __future__ import annotations

import hashlib
import json

from batchgen.spec import JobSpec
from batchgen.storage import JOB_FILE, SUCCESS_FILE, arrow_fs, data_files

CHECKPOINT_DIR = "_checkpoint"
FINGERPRINTED = ("model", "engine", "defaults", "budget")


class ResumeRefused(RuntimeError):
    """The output prefix holds results this run must not add to."""


def fingerprint(spec: JobSpec) -> str:
    shaping = {key: spec.model_dump(mode="json")[key] for key in FINGERPRINTED}
    shaping["output_format"] = spec.output.format
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def manifest(spec: JobSpec) -> dict:
    return {"fingerprint": fingerprint(spec), "spec": spec.model_dump(mode="json")}


def check_output(spec: JobSpec, fs, prefix: str, allow_changed_spec: bool) -> str:
    """"new", "resume" or "done" for this output prefix; raises ResumeRefused when it is another job's."""
    job_file = f"{prefix.rstrip('/')}/{JOB_FILE}"
    if not fs.exists(job_file):
        if data_files(fs, prefix):
            raise ResumeRefused(f"output.uri {spec.output.uri} holds data files that no batchgen job wrote there")
        return "new"
    previous = json.loads(fs.cat_file(job_file))
    if previous["fingerprint"] != fingerprint(spec) and not allow_changed_spec:
        changed = [k for k in FINGERPRINTED if previous["spec"].get(k) != spec.model_dump(mode="json")[k]]
        raise ResumeRefused(
            f"output.uri {spec.output.uri} holds results of a different spec (changed: {', '.join(changed) or 'output.format'}); "
            "write to a new prefix, or allow it explicitly (--allow-changed-spec)"
        )
    return "done" if fs.exists(f"{prefix.rstrip('/')}/{SUCCESS_FILE}") else "resume"


def checkpoint_config(fs, prefix: str):
    from ray.data.checkpoint import CheckpointConfig

    config = CheckpointConfig(
        id_column="id",
        checkpoint_path=f"{prefix.rstrip('/')}/{CHECKPOINT_DIR}",
        override_filesystem=arrow_fs(fs),
        # Kept after success too: it is what makes a rerun of a finished job a no-op instead of a redo.
        delete_checkpoint_on_success=False,
    )
    # Filtering committed ids is cheap; Ray's default pool of up to 10 filter actors would take CPU slots
    # the readers and replicas need.
    config.checkpoint_actor_pool_max_size = 1
    return config
