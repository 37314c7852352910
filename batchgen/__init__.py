"""batchgen: batch inference for reasoning LLMs on Ray Data and vLLM.

The public Python front, what the `batchgen` command itself calls; everything else is free to change:

    from batchgen import load_spec, run, validate_job, inspect_output

    spec = load_spec("jobs/demo.yaml", ["scaling.replicas=2"])   # JobSpec; SpecError names the key
    report = validate_job(spec)                                  # no engine, no GPU: what would fail, and why
    stats = run(spec)                                            # JobStats; JobFailed says why it must not count
    print(inspect_output(spec.output.uri).state)                 # complete | stopped | partial

| name | what it is |
|---|---|
| `JobSpec`, `load_spec`, `parse_spec`, `SpecError` | the job spec: YAML file or dict, `--set` overrides |
| `run`, `JobFailed`, `JobStats` | run a job on Ray (local, or the cluster in `RAY_ADDRESS`); resumes onto the same output |
| `validate_job` | the input read and prepared as the replicas would, in-process |
| `inspect_output`, `render_report` | what an output prefix holds (`batchgen inspect`), its HTML report |
| `Replica` | one vLLM engine turning raw records into output rows (`generate`, `submit`) |

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
    "run": "batchgen.cluster.pipeline",
    "JobFailed": "batchgen.cluster.pipeline",
    "JobStats": "batchgen.core.stats",
    "validate_job": "batchgen.cluster.validation",
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
