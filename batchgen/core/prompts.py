"""A job's `prompt` section made ready to render: its few-shot examples read from their file (JSONL or
Parquet, any fsspec URL) into the `PromptPlan` the replicas render with (`batchgen.record.templates`).
Read once, on the driver (and by `batchgen validate`): the replicas get the plan, not the file.
"""

from __future__ import annotations

import json


from batchgen.core.storage import InputSet, compression_of, open_fs, parquet_file
from batchgen.record.templates import PromptPlan, Renderer
from batchgen.spec.job import JobSpec


def read_examples(uri: str, storage: dict | None = None) -> list[dict]:
    """The rows of a JSONL or Parquet file (or folder of them) as dicts, in file order. Raises
    FileNotFoundError when nothing is there and ValueError naming the file and line of a bad JSON line."""
    fs, path = open_fs(uri, storage)
    found = InputSet.find(fs, path, "auto")
    rows = []
    for file in found.files:
        if found.format == "parquet":
            with fs.open(file, "rb") as handle, parquet_file(handle) as parquet:
                rows += parquet.read(use_threads=False).to_pylist()
            continue
        with fs.open(file, "rb", compression="infer" if compression_of(file) else None) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as error:
                    raise ValueError(f"prompt.examples.uri: {file}:{number} is not JSON ({error})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"prompt.examples.uri: {file}:{number} is not a JSON object")
                rows.append(row)
    return rows


def prompt_plan(spec: JobSpec) -> PromptPlan | None:
    """The job's prompt section with its examples loaded (None without a prompt section). Raises what
    `read_examples` raises, and TemplateError (a ValueError) for an example that does not render."""
    prompt = spec.prompt
    if prompt is None:
        return None
    examples = read_examples(prompt.examples.uri, spec.storage) if prompt.examples else []
    plan = PromptPlan(turns=prompt.turns(), fields=dict(prompt.fields), examples=tuple(examples),
                      example_turns=prompt.example_turns(), k=prompt.examples.k if prompt.examples else None,
                      seed=spec.seed, example_id=prompt.examples.id_column if prompt.examples else "id")
    Renderer(plan)  # an example that does not render is found here, before any replica starts
    return plan
