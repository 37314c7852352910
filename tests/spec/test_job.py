"""The job spec itself (`batchgen.spec.job`, `batchgen.spec.placement`): defaults, refusals naming the key,
`--set` overrides, credentials, placement rules, the records-in-flight arithmetic, and YAML files that
cannot be read. Pure: no Ray, no engine."""

from __future__ import annotations

import copy

import pytest

from batchgen.record.budget import BudgetSpec
from batchgen.record.contract import RecordFields
from batchgen.spec import placement
from batchgen.spec.job import (
    ErrorsSpec,
    JobSpec,
    OutputSpec,
    ScalingSpec,
    SpecError,
    apply_override,
    load_spec,
    parse_spec,
)

MINIMAL = {"name": "j", "model": {"path": "toy:nemotron-h"}, "input": {"uri": "in.jsonl"}, "output": {"uri": "out/"}}


def minimal(**sections) -> dict:
    return {**copy.deepcopy(MINIMAL), **sections}


def refusal(document, overrides=()) -> str:
    with pytest.raises(SpecError) as refused:
        parse_spec(document, list(overrides))
    return str(refused.value)


# --- defaults ---------------------------------------------------------------------------------------------

def test_a_minimal_spec_gets_every_default():
    spec = parse_spec(minimal())
    assert isinstance(spec, JobSpec)
    assert spec.model.path == "toy:nemotron-h" and spec.model.profile == "auto" and spec.model.revision is None
    assert not spec.model.trust_remote_code
    assert spec.engine == {} and spec.storage == {} and spec.seed == 0
    assert (spec.input.uri, spec.input.format) == ("in.jsonl", "auto")
    assert (spec.output.uri, spec.output.format, spec.output.min_rows_per_file) == ("out/", "parquet", 1000)
    assert spec.defaults == RecordFields() and spec.budget == BudgetSpec()
    assert spec.scaling == ScalingSpec() == ScalingSpec(replicas=1, gpus_per_replica=1, cpus_per_replica=1,
                                                        batch_size=64, records_in_flight=512)
    assert spec.errors == ErrorsSpec(max_fraction=0.1, min_records=100)
    assert spec.budget.mode == "newline" and spec.budget.grace_tokens == 500


def test_a_spec_round_trips_through_json():
    spec = parse_spec(minimal(scaling={"replicas": 3, "gpus_per_replica": 0}, defaults={"max_tokens": 7}))
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec
    assert parse_spec(spec.model_dump(mode="json")) == spec


# --- refusals -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("document, key", [
    (minimal(nmae="x"), "nmae"),
    (minimal(model={"path": "m", "pth": "x"}), "model.pth"),
    (minimal(scaling={"replica": 2}), "scaling.replica"),
    (minimal(output={"uri": "o", "compression": "zstd"}), "output.compression"),
    (minimal(errors={"max_fraction": 0.1, "limit": 3}), "errors.limit"),
    (minimal(budget={"grace": 3}), "budget.grace"),
    (minimal(defaults={"max_token": 3}), "defaults.max_token"),
])
def test_unknown_keys_are_refused_naming_the_key(document, key):
    assert f"{key}: Extra inputs are not permitted" in refusal(document)


@pytest.mark.parametrize("document, message", [
    ({k: v for k, v in MINIMAL.items() if k != "model"}, "model: Field required"),
    ({k: v for k, v in MINIMAL.items() if k != "output"}, "output: Field required"),
    (minimal(name="Bad_Name"), "name: String should match pattern"),
    (minimal(name="x" * 41), "name: String should have at most 40 characters"),
    (minimal(scaling={"replicas": 0}), "scaling.replicas: Input should be greater than or equal to 1"),
    (minimal(errors={"max_fraction": 1.5}), "errors.max_fraction: Input should be less than or equal to 1"),
    (minimal(input={"uri": "x", "format": "csv"}), "input.format: Input should be 'auto', 'jsonl', 'parquet', 'openai', 'batchgen' or 'iceberg'"),
    (minimal(model={"path": "m", "profile": "llama"}), "model.profile: Input should be"),
])
def test_invalid_values_are_refused_naming_the_key(document, message):
    assert message in refusal(document)


def test_every_problem_is_named_in_one_line():
    text = refusal(minimal(nmae="x", scaling={"replicas": 0}))
    assert "nmae: Extra inputs" in text and "scaling.replicas: Input should be" in text and "\n" not in text


@pytest.mark.parametrize("document", [None, [], "name: j", 3])
def test_a_spec_that_is_not_a_mapping_is_refused(document):
    assert refusal(document) == "a job spec is a YAML mapping"


# --- --set overrides ----------------------------------------------------------------------------------------

def test_overrides_are_read_as_yaml_values():
    spec = parse_spec(minimal(), ["scaling.replicas=4", "scaling.gpus_per_replica=0", "errors.max_fraction=0.25",
                                  "defaults.stop=[a, b]", "defaults.max_thinking_tokens=[0, 8, null]",
                                  "engine.enforce_eager=true", "name=other", "output.uri=s3://b/x=1/"])
    assert (spec.scaling.replicas, spec.scaling.gpus_per_replica, spec.errors.max_fraction) == (4, 0, 0.25)
    assert spec.defaults.stop == ["a", "b"] and spec.defaults.max_thinking_tokens == [0, 8, None]
    assert spec.engine == {"enforce_eager": True} and spec.name == "other"
    assert spec.output.uri == "s3://b/x=1/"  # only the first = splits


def test_overrides_make_nested_sections_and_win_over_the_document():
    document = minimal(engine={"max_model_len": 1024, "nested": {"a": 1}})
    spec = parse_spec(document, ["engine.max_model_len=2048", "engine.nested.b=2", "engine.new.deep.key=x"])
    assert spec.engine == {"max_model_len": 2048, "nested": {"a": 1, "b": 2}, "new": {"deep": {"key": "x"}}}


def test_apply_override_changes_the_document_in_place_and_returns_it():
    document = {"a": {"b": 1}}
    assert apply_override(document, "a.c=[1, 2]") is document and document == {"a": {"b": 1, "c": [1, 2]}}
    assert apply_override({}, "x=") == {"x": None}  # an empty value is YAML's null


@pytest.mark.parametrize("assignment, message", [
    ("oops", "--set expects key.path=value, got 'oops'"),
    ("=3", "--set expects key.path=value, got '=3'"),
    ("name.first=x", "--set name.first: name is not a section"),
    ("model.path.x=1", "--set model.path.x: path is not a section"),
])
def test_malformed_overrides_are_refused(assignment, message):
    assert refusal(minimal(), [assignment]) == message


def test_an_override_to_an_unknown_key_is_refused_naming_it():
    assert "scaling.replica: Extra inputs are not permitted" in refusal(minimal(), ["scaling.replica=2"])


def test_parse_spec_does_not_change_the_callers_document():
    document = minimal(engine={"nested": {"a": 1}})
    before = copy.deepcopy(document)
    parse_spec(document, ["scaling.replicas=4", "engine.nested.b=2", "defaults.max_tokens=9"])
    assert document == before


# --- credentials --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["secret_access_key", "key", "password", "token", "session_token", "aws_access_key_id",
                                 "client_secret", "credentials", "private_key"])
def test_credentials_in_storage_are_refused(key):
    text = refusal(minimal(storage={key: "x"}))
    assert f"credentials do not belong in the spec ({key}): set them in the environment" in text
    assert text.startswith("storage: ")


def test_credentials_set_by_override_are_refused_and_other_storage_options_kept():
    assert "credentials do not belong in the spec (secret)" in refusal(minimal(), ["storage.secret=abc"])
    spec = parse_spec(minimal(), ["storage.endpoint_url=http://127.0.0.1:9000", "storage.anon=true"])
    assert spec.storage == {"endpoint_url": "http://127.0.0.1:9000", "anon": True}


def test_every_credential_is_named():
    text = refusal(minimal(storage={"token": "a", "password": "b", "anon": True}))
    assert "(password, token)" in text and "anon" not in text


# --- placement rules ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("gpus, engine", [
    (0, {}), (0, {"tensor_parallel_size": 1}), (1, {}), (1, {"tensor_parallel_size": 1}),
    (2, {}), (2, {"tensor_parallel_size": 2}), (4, {"tensor_parallel_size": 2, "pipeline_parallel_size": 2}),
    (0.5, {"gpu_memory_utilization": 0.45}), (0.25, {"kv_cache_memory_bytes": 1 << 30}),
    (0.5, {"gpu_memory_utilization": 0.4, "tensor_parallel_size": 1}),
])
def test_placements_that_work_pass(gpus, engine):
    placement.check(ScalingSpec(gpus_per_replica=gpus), engine)
    assert parse_spec(minimal(engine=engine, scaling={"gpus_per_replica": gpus})).scaling.gpus_per_replica == gpus


@pytest.mark.parametrize("gpus, engine, message", [
    (0.5, {}, "scaling.gpus_per_replica 0.5 shares a GPU between replicas: set engine.gpu_memory_utilization below 0.5"),
    (0.5, {"gpu_memory_utilization": 0.6}, "engine.gpu_memory_utilization 0.6 must be below scaling.gpus_per_replica 0.5"),
    (2.5, {}, "scaling.gpus_per_replica: more than one GPU must be a whole number, got 2.5"),
    (4, {"tensor_parallel_size": 2}, "engine.tensor_parallel_size 2 (x pipeline_parallel_size 1) disagrees with "
                                     "scaling.gpus_per_replica 4"),
    (4, {"tensor_parallel_size": 4, "pipeline_parallel_size": 2}, "(x pipeline_parallel_size 2) disagrees"),
    (0, {"tensor_parallel_size": 2}, "engine.tensor_parallel_size 2 needs GPUs: scaling.gpus_per_replica is 0"),
])
def test_placements_that_cannot_work_are_refused(gpus, engine, message):
    with pytest.raises(ValueError) as refused:
        placement.check(ScalingSpec(gpus_per_replica=gpus), engine)
    assert message in str(refused.value)
    # the spec's cross-field check: the same line, without pydantic's prefixes
    text = refusal(minimal(engine=engine, scaling={"gpus_per_replica": gpus}))
    assert message in text and not text.startswith(("Value error", "(top level)"))


@pytest.mark.parametrize("gpus, world", [(0, 0), (0.25, 1), (1, 1), (2, 2), (8, 8)])
def test_a_replicas_gpus_are_its_tensor_parallel_world(gpus, world):
    assert placement.gpus_of(ScalingSpec(gpus_per_replica=gpus)) == world


def test_cpus_per_replica_is_a_resource_not_a_placement_rule():
    spec = parse_spec(minimal(scaling={"gpus_per_replica": 0, "cpus_per_replica": 0.5}))
    assert spec.scaling.cpus_per_replica == 0.5
    assert "scaling.cpus_per_replica: Input should be greater than or equal to 0" in \
        refusal(minimal(scaling={"cpus_per_replica": -1}))


# --- records in flight ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("records, batch, calls", [
    (512, 64, 9), (8, 4, 3), (9, 4, 4), (1, 64, 2), (2, 1, 3), (64, 64, 2), (65, 64, 3),
])
def test_batches_in_flight_cover_the_records_in_flight_plus_one_batch(records, batch, calls):
    scaling = ScalingSpec(records_in_flight=records, batch_size=batch)
    assert scaling.batches_in_flight == calls
    # enough calls that `records_in_flight` records are on the engine while one call's rows wait
    assert (calls - 1) * batch >= records > (calls - 2) * batch


# --- files ---------------------------------------------------------------------------------------------------

def test_load_spec_reads_yaml_and_applies_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("name: j\nmodel: {path: toy:nemotron-h}\ninput: {uri: in.jsonl}\noutput: {uri: out/}\n"
                    "scaling:\n  replicas: 2\n  gpus_per_replica: 0\n")
    spec = load_spec(path, ["scaling.batch_size=8"])
    assert (spec.scaling.replicas, spec.scaling.batch_size) == (2, 8)
    assert load_spec(str(path)) == parse_spec(minimal(scaling={"replicas": 2, "gpus_per_replica": 0}))


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(SpecError, match=rf"^cannot read {tmp_path / 'none.yaml'}: No such file or directory$"):
        load_spec(tmp_path / "none.yaml")


def test_bad_yaml_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: j\nmodel: {path: [unclosed\n")
    with pytest.raises(SpecError, match=rf"^{path} is not valid YAML: "):
        load_spec(path)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_yaml_that_is_not_a_mapping_is_refused(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match="^a job spec is a YAML mapping$"):
        load_spec(path)


def test_the_sections_are_the_documented_ones():
    # a new section is a conscious change: the JSON Schema, the docs and the manifest's identity follow it
    assert list(JobSpec.model_fields) == ["name", "model", "engine", "input", "prompt", "output", "grade", "defaults", "seed", "budget",
                                          "scaling", "errors", "storage"]
    assert all(field.description for field in OutputSpec.model_fields.values())


@pytest.mark.parametrize("defaults", [
    {"structured_outputs": {"choice": ["yes", "no"]}},
    {"structured_outputs": {"json": {"type": "object"}}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "object"}}}},
])
def test_a_spec_survives_its_trip_to_the_replicas_as_json(defaults):
    # the replicas get the spec as JSON (`GenerateStage`), the manifest and the library as a dict: an aliased
    # field (structured_outputs.json, json_schema.schema) once came back under its Python name and was refused
    spec = parse_spec({"name": "t", "model": {"path": "m"}, "input": {"uri": "a"}, "output": {"uri": "b"},
                       "defaults": defaults})
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec
    assert parse_spec(spec.model_dump(mode="json")) == spec
