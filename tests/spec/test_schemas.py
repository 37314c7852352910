"""The JSON Schemas in schemas/ are the ones the code generates, and they accept what batchgen accepts."""

import json

import jsonschema
import pytest
import yaml

from batchgen.spec.schemas import FILES, schema_text
from tests import ROOT


@pytest.mark.parametrize("kind", sorted(FILES))
def test_schema_files_are_current(kind):
    path = ROOT / "schemas" / FILES[kind]
    assert path.read_text() == schema_text(kind), f"{path} is stale: run `make schemas`"


@pytest.mark.parametrize("job", sorted((ROOT / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_jobs_match_the_job_schema(job):
    jsonschema.validate(yaml.safe_load(job.read_text()), json.loads(schema_text("job")))


def test_demo_prompts_match_the_input_schema_except_the_deliberately_bad_ones():
    schema = json.loads(schema_text("input"))
    lines = (ROOT / "jobs" / "demo-prompts.jsonl").read_text().splitlines()
    invalid = [json.loads(l)["id"] for l in lines if not jsonschema.Draft202012Validator(schema).is_valid(json.loads(l))]
    assert invalid == ["bad-1"]  # bad-2 lacks a prompt, a cross-field rule; duplicates span records
