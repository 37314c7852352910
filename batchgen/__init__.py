"""batchgen: batch inference for reasoning LLMs on Ray Data and vLLM.

The public Python front, what the `batchgen` command itself calls; everything else is free to change:

    import batchgen

    report = batchgen.validate("jobs/demo.yaml")                  # no engine, no GPU: what would fail, and why
    result = batchgen.run("jobs/demo.yaml", output={"uri": "out/try-2/"}, scaling={"replicas": 2})
    print(result.stats.records, result.stats.errors_by_code, result.output, result.log)
    print(batchgen.inspect_output(result.output).state)          # complete | stopped | partial

    rows = batchgen.generate(ray.data.read_parquet("s3://lake/items/"), "jobs/lake-table.yaml")  # a Ray Data stage

| name | what it is |
|---|---|
| `run`, `JobResult`, `JobFailed`, `JobStats` | run a job to the end on Ray (local, or the cluster in `RAY_ADDRESS`): its stats, output prefix and log file; resumes onto the same output |
| `validate` | the input read, templated and prepared as the replicas would, in-process: what would fail, the first prompts |
| `generate` | the replica stage for a Ray Data pipeline: a Dataset of records or table rows in, a Dataset of output rows out |
| `JobSpec`, `load_spec`, `parse_spec`, `SpecError` | the job spec: YAML file or dict, `--set` overrides |
| `inspect_output`, `render_report` | what an output prefix holds (`batchgen inspect`), its HTML report |
| `Replica` | one vLLM engine in this process turning raw records into output rows (its `generate` and `submit` methods) |

A spec is a YAML file's path, a dict or a `JobSpec`; keyword arguments of `run`, `validate` and `generate`
override whole sections or merge into them (`output={"uri": ...}`).

The layers, lowest first (each folder's `__init__` says what it owns and may import; `tests/test_layers.py`
keeps it true): `record` (pure record logic), `spec`, `core` (the job core: no Ray, no vLLM), `engine`
(vLLM), `views` (progress, logs, inspect, report), `cluster` (Ray Data, Ray Jobs, KubeRay), `cli`.

Names are loaded on first use (PEP 562), so importing one submodule (as every Ray worker does) does not
import Ray, vLLM or the CLI.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version

__version__ = version("batchgen")

_EXPORTS = {
    "JobSpec": "batchgen.spec.job",
    "SpecError": "batchgen.spec.job",
    "load_spec": "batchgen.spec.job",
    "parse_spec": "batchgen.spec.job",
    "run": "batchgen.cluster.library",
    "validate": "batchgen.cluster.library",
    "generate": "batchgen.cluster.library",
    "JobResult": "batchgen.cluster.library",
    "JobFailed": "batchgen.cluster.pipeline",
    "JobStats": "batchgen.core.stats",
    "inspect_output": ("batchgen.views.survey", "survey"),
    "render_report": ("batchgen.views.report", "render"),
    "Replica": "batchgen.engine.replica",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'batchgen' has no attribute {name!r}")
    module, attribute = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
