"""The JSON Schemas of batchgen's three contracts, generated from the pydantic models that enforce them
(`schemas/*.schema.json` are these, written by `make schemas`; a test fails when they are stale)."""

from __future__ import annotations

import json

from batchgen.record.contract import InputRecord
from batchgen.record.rows import OutputRow
from batchgen.spec.job import JobSpec

SCHEMAS = {"job": JobSpec, "input": InputRecord, "output": OutputRow}
FILES = {"job": "job.schema.json", "input": "input-record.schema.json", "output": "output-record.schema.json"}


def schema_text(kind: str) -> str:
    # Output rows are what batchgen writes (every field present): their schema is the serialization one.
    mode = "serialization" if kind == "output" else "validation"
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **SCHEMAS[kind].model_json_schema(mode=mode)}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
