"""The job spec: what a user writes in YAML, validated once where it enters (pydantic, unknown keys refused).

Every field carries a description: it is the documentation, the JSON Schema (`schemas/job.schema.json`) and
the context of an error message in one place. `load_spec` reads YAML, applies `--set key.path=value`
overrides, and raises `SpecError` with one line per problem, each naming the key.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import fsspec
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from batchgen.record.budget import BudgetSpec
from batchgen.spec import placement
from batchgen.record.contract import RecordFields
from batchgen.record.grading import GradeSpec
from batchgen.record.templates import compile_template, template_names, turn_names

# Credentials come from the environment of the machines that run the job, never from the spec: a spec is
# stored with job submissions and visible to anyone who can list them.
SECRET_KEY = re.compile(r"(secret|password|passwd|token|credential|private|^key$|access[-_.]?key|session)", re.I)


class SpecError(ValueError):
    """A job spec that cannot run; the message names every offending key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(Section):
    """The `model` section: which weights every replica loads and which reasoning profile reads them."""

    path: str = Field(description="hub id, local directory, or toy:nemotron-h or toy:qwen3 (the test models batchgen builds itself)")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    profile: Literal["auto", "nemotron-nano-v2", "qwen3", "deepseek-r1", "none"] = Field(
        "auto", description="reasoning profile; auto recognises the family from its chat template"
    )
    trust_remote_code: bool = Field(False, description="run code shipped with the model")




class InputSpec(Section):
    """The `input` section: where the records are, how they are written, and which of their columns count."""

    uri: str = Field(description="file, directory or glob: local path, s3://, gs://, az://, memory://; or another "
                     "job's output.uri (a chained job: its answer rows are the records); or a lake table, "
                     "iceberg://namespace.table (its catalog in input.table)")
    format: Literal["auto", "jsonl", "parquet", "openai", "batchgen", "iceberg"] = Field(
        "auto", description="auto: from the file extensions, or batchgen where uri is a job's output, iceberg where "
        "it is iceberg://; openai: OpenAI Batch API input lines (JSONL); batchgen: a finished job's output prefix")
    table: InputTableSpec | None = Field(None, description="an Iceberg table's catalog, row filter and snapshot "
                                         "(uri iceberg://namespace.table)")
    id_column: str | None = Field(None, description="the column holding each record's id (null: id); kept as a "
                                  "column of the output too")
    columns: list[str] | None = Field(None, description="the columns to read (null: all); the id column, the "
                                      "columns the prompt's templates and fields name, and partition keys are added")
    partitioning: Literal["hive", "none"] = Field(
        "hive", description="hive: key=value folders under uri (lang=en/part-0.parquet) are columns of their "
        "records, as strings, as Arrow's and Ray's readers give them; a column of the file wins over its folder's")
    include_errors: bool = Field(False, description="a chained job (uri: another job's output) also reads that "
                                 "job's error rows; by default only its answers")

    @model_validator(mode="after")
    def _table_uri(self) -> InputSpec:
        is_table = self.uri.startswith(TABLE_SCHEME)
        if is_table and self.format == "auto":
            self.format = "iceberg"
        if (self.format == "iceberg") != is_table or (self.table is not None) != is_table:
            raise ValueError(f"input: a table is read with uri {TABLE_SCHEME}namespace.table and an input.table "
                             "section (its catalog); format iceberg and input.table need that uri")
        if is_table and not re.match(TABLE_IDENTIFIER, self.uri.removeprefix(TABLE_SCHEME)):
            raise ValueError(f"input.uri: {self.uri} does not name a table as {TABLE_SCHEME}namespace.table")
        return self

    @property
    def table_identifier(self) -> str | None:
        """namespace.table of an input table, None for files."""
        return self.uri.removeprefix(TABLE_SCHEME) if self.uri.startswith(TABLE_SCHEME) else None


def _no_secrets(options: dict[str, Any], where: str) -> dict[str, Any]:
    secrets = sorted(k for k in options if SECRET_KEY.search(k))
    if secrets:
        raise ValueError(f"credentials do not belong in the spec ({', '.join(secrets)}): set them in the environment"
                         + (" (PyIceberg reads PYICEBERG_CATALOG__<NAME>__<KEY> and AWS_* variables)" if where == "catalog" else ""))
    return options


TABLE_IDENTIFIER = r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$"
TABLE_SCHEME = "iceberg://"  # input.uri of a table, and what `batchgen inspect` takes: iceberg://namespace.table


class CatalogSpec(Section):
    """A catalog of lake tables, as PyIceberg configures one (`batchgen.lake.iceberg`)."""

    catalog_name: str = Field("default", description="the catalog's name in PyIceberg's own configuration "
                              "(.pyiceberg.yaml, PYICEBERG_CATALOG__<NAME>__* variables), which catalog: extends")
    catalog: dict[str, str] = Field(default_factory=dict, description="PyIceberg catalog properties: type (sql, "
                                    "rest, glue, ...), uri, warehouse, s3.endpoint, ...; credentials only from the "
                                    "environment. The embedded default: {type: sql, uri: sqlite:///catalog.db, "
                                    "warehouse: <local path or fsspec URL>}")

    @field_validator("catalog")
    @classmethod
    def _no_credentials(cls, options: dict[str, str]) -> dict[str, str]:
        return _no_secrets(options, "catalog")


class TableSpec(CatalogSpec):
    """A lake table and the catalog that holds it."""

    identifier: str = Field(description="namespace.table, e.g. evals.answers (a dotted namespace is nested)",
                            pattern=TABLE_IDENTIFIER)


class InputTableSpec(CatalogSpec):
    """`input.table`: how a table named by `input.uri` (iceberg://namespace.table) is read."""

    row_filter: str | None = Field(None, description="the rows read, in PyIceberg's filter syntax, e.g. "
                                   "\"split = 'test' and difficulty >= 3\" (null: every row)")
    snapshot_id: int | None = Field(None, description="the snapshot read (null: the current one when the job "
                                    "starts; a resume reads the one recorded in _job.json, whatever the table did since)")


class OutputTableSpec(TableSpec):
    """`output.table`: the Iceberg table a job's rows are committed into as it runs."""

    commit_every_rows: int = Field(100_000, ge=1, description="commit into the table once this many committed "
                                   "rows are not in it yet")
    commit_every_s: float = Field(300, gt=0, description="or once the oldest row not in the table has waited this "
                                  "long (seconds); the last commit is made when the job ends")
    partition_by: list[str] = Field(default_factory=list, description="identity partitions of a table this job "
                                    "creates: columns with one value per job (job, model); an existing table "
                                    "keeps its own partitioning")

    @field_validator("partition_by")
    @classmethod
    def _constant_columns(cls, columns: list[str]) -> list[str]:
        other = sorted(set(columns) - set(PARTITION_COLUMNS))
        if other:
            raise ValueError(f"{', '.join(other)}: a table is partitioned here only by {' or '.join(PARTITION_COLUMNS)}, "
                             "the columns with one value per job (a data file is added to the table as written, "
                             "so its rows must share their partition)")
        return columns


# The columns constant within every data file a job writes, so identity partitions are known per file.
PARTITION_COLUMNS = ("job", "model")


class OutputSpec(Section):
    """The `output` section: the prefix the rows, the checkpoint and the markers are written under, and the
    lake table they are committed into (format iceberg)."""

    uri: str = Field(description="directory prefix the results are written under (with format iceberg, the "
                     "table's data files: put it under the warehouse)")
    format: Literal["parquet", "jsonl", "openai", "iceberg"] = Field(
        "parquet", description="data file format; openai: Parquet data files, and once every record has a row "
        "_batch_output.jsonl, OpenAI Batch API output lines; iceberg: Parquet data files committed into "
        "output.table as the job runs, each exactly once")
    table: OutputTableSpec | None = Field(None, description="the Iceberg table (format iceberg)")
    min_rows_per_file: int = Field(
        1000, ge=1, description="rows gathered per data file: larger files suit data lakes, smaller ones lose less on a crash"
    )

    @model_validator(mode="after")
    def _table_with_iceberg(self) -> OutputSpec:
        if (self.format == "iceberg") != (self.table is not None):
            raise ValueError("output: format iceberg needs output.table, and output.table needs format iceberg")
        return self


class TurnSpec(Section):
    """One templated turn of `prompt.messages`."""

    role: Literal["system", "user", "assistant"]
    content: str = Field(description="Jinja2 template over the record's columns")


class ExamplesSpec(Section):
    """`prompt.examples`: few-shot examples shown before each record's own turn, as user and assistant turns."""

    uri: str = Field(description="a JSONL or Parquet file (or folder) of examples: local path or fsspec URL")
    k: int | None = Field(None, ge=1, description="examples drawn per record, seeded by the job's seed and the "
                          "record's id; null: every example, in file order")
    user: str | None = Field(None, description="template of an example's user turn over its columns (null: "
                             "the prompt's user template)")
    assistant: str = Field(description="template of an example's assistant turn, e.g. '{{ answer }}'")
    id_column: str = Field("id", description="the examples' column compared with a record's id: an example "
                           "is never shown to itself (nor one whose user turn renders the same)")


class PromptSpec(Section):
    """The `prompt` section: Jinja2 templates that make each input row (any columns) into a prompt. Without
    it, records carry `prompt` or `messages` themselves; with it, every column is the row's data (passed
    through to the output) and contract fields come only from `fields` and `defaults`."""

    template_file: str | None = Field(
        None, description="a YAML file holding this section's keys (system, user, messages, fields, examples): "
        "local path or fsspec URL, read when the spec is loaded; keys written here win over the file's")
    system: str | None = Field(None, description="template of a system turn before the user turn")
    user: str | None = Field(None, description="template of the user turn, e.g. 'Question: {{ question }}'")
    messages: list[TurnSpec] | None = Field(None, description="templated turns, instead of system and user")
    fields: dict[str, str] = Field(default_factory=dict, description="record fields taken from columns, e.g. "
                                   "{max_thinking_tokens: budget}; a null there leaves the field to defaults")
    examples: ExamplesSpec | None = Field(None, description="few-shot examples")

    @model_validator(mode="after")
    def _one_form(self) -> PromptSpec:
        if (self.user is None) == (self.messages is None):
            raise ValueError("prompt: give user (with an optional system) or messages, exactly one")
        if self.system is not None and self.messages is not None:
            raise ValueError("prompt: system goes into messages when messages is given")
        if self.examples and self.examples.user is None and self.user is None:
            raise ValueError("prompt.examples.user: needed with prompt.messages (there is no user template to reuse)")
        unknown = sorted(set(self.fields) - set(RecordFields.model_fields))
        if unknown:
            raise ValueError(f"prompt.fields: {', '.join(unknown)} is not a record field "
                             f"({', '.join(RecordFields.model_fields)})")
        self.turns()  # compiles every template: one that does not is a spec error naming the line
        self.example_turns()
        return self

    def turns(self) -> tuple[tuple[str, str], ...]:
        """(role, template) of the record's own turns."""
        if self.messages is not None:
            turns = tuple((m.role, m.content) for m in self.messages)
        else:
            turns = ((("system", self.system),) if self.system is not None else ()) + (("user", self.user),)
        for name, (_, text) in zip(turn_names(turns), turns):
            compile_template(text, f"prompt.{name}")
        return turns

    def example_turns(self) -> tuple[tuple[str, str], ...]:
        """(role, template) of an example's user and assistant turns; () without examples."""
        if self.examples is None:
            return ()
        user = self.examples.user if self.examples.user is not None else self.user
        compile_template(user, "prompt.examples.user")
        compile_template(self.examples.assistant, "prompt.examples.assistant")
        return (("user", user), ("assistant", self.examples.assistant))

    def columns(self) -> set[str]:
        """The columns the templates and fields name (read even when `input.columns` leaves them out)."""
        texts = [text for _, text in self.turns()]
        names = {name for text in texts for name in template_names(text)}
        return names | set(self.fields.values())


class ScalingSpec(Section):
    """The `scaling` section: how many replicas, the resources of each, and how records flow to them."""

    replicas: int = Field(1, ge=1, description="vLLM replicas (Ray actors), one engine each")
    gpus_per_replica: float = Field(1, ge=0, description="GPUs per replica (tensor_parallel_size of them); 0 on CPU")
    cpus_per_replica: float = Field(1, ge=0, description="CPUs Ray reserves per replica")
    batch_size: int = Field(64, ge=1, description="records per Ray Data batch sent to a replica")
    records_in_flight: int = Field(
        512, ge=1, description="records a replica keeps submitted to its engine, whatever their lengths: at least "
        "the engine's max_num_seqs, the rest wait in its queue so its scheduler never starves")
    order: Literal["scheduled", "input"] = Field(
        "scheduled", description="scheduled: within each block of the read, records sharing a prompt prefix run "
        "together and the longest expected first (batchgen.core.schedule), so the engines' prefix caches hit and "
        "no long record runs alone at the end; input: the input's order")

    @property
    def batches_in_flight(self) -> int:
        """Ray Data calls a replica holds at once: a call waits for as many rows as it put in, so about one
        batch's worth of them is finished rows waiting to be returned, not records on the engine."""
        return -(-self.records_in_flight // self.batch_size) + 1


class ErrorsSpec(Section):
    """The `errors` section: when failed records make the job fail (at the end, or early mid-job)."""

    max_fraction: float = Field(0.1, ge=0, le=1, description="the job fails when a larger share of records fail")
    min_records: int = Field(100, ge=1, description="the share is judged mid-job once this many records are done")


class JobSpec(Section):
    """A whole job: one model over one input into one output prefix (`load_spec` reads it from YAML)."""

    name: str = Field(description="job name: a-z, 0-9 and -, at most 40 characters", pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", max_length=40)
    model: ModelSpec
    engine: dict[str, Any] = Field(default_factory=dict, description="vLLM engine arguments, passed through")
    input: InputSpec
    prompt: PromptSpec | None = Field(None, description="templates that make each input row into a prompt (null: "
                                      "records carry prompt or messages)")
    output: OutputSpec
    grade: GradeSpec | None = Field(None, description="grade each answer against a reference column (null: no "
                                    "grading): the extracted answer, correct or not, and the job's accuracy, "
                                    "pass@k and majority@k per reasoning mode and budget")
    defaults: RecordFields = Field(default_factory=RecordFields, description="record fields applied where a record sets none")
    seed: int = Field(0, description="the job's seed: a record without its own seed samples with one derived from this, "
                      "its id and the sample index, so reruns and resumed jobs draw the same samples")
    budget: BudgetSpec = Field(default_factory=BudgetSpec, description="how a record's thinking budget ends its "
                               "reasoning: the card's newline rule or a strict cut, and the closing texts forced")
    scaling: ScalingSpec = Field(default_factory=ScalingSpec, description="replicas, their GPUs and CPUs, and the "
                                 "records each keeps in flight")
    errors: ErrorsSpec = Field(default_factory=ErrorsSpec, description="the share of failed records that fails "
                               "the job, judged mid-job once min_records are done")
    storage: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options (endpoint_url, anon, ...); credentials only from the environment"
    )

    @model_validator(mode="after")
    def _placement(self) -> JobSpec:
        placement.check(self.scaling, self.engine)  # GPUs, tensor parallelism, shared GPUs (batchgen.spec.placement)
        return self

    @field_validator("storage")
    @classmethod
    def _no_credentials(cls, options: dict[str, Any]) -> dict[str, Any]:
        return _no_secrets(options, "storage")


def _describe(error: ValidationError) -> str:
    lines = []
    for e in error.errors(include_url=False):
        message = e["msg"].removeprefix("Value error, ")
        key = ".".join(str(p) for p in e["loc"])
        named = not key or message.startswith(key)  # a cross-field check names its keys itself
        lines.append(message if named else f"{key}: {message}")
    return "; ".join(lines)


def apply_override(document: dict, assignment: str) -> dict:
    """Sets `scaling.replicas=4` in a spec document, in place, and returns it; the value is read as YAML
    (numbers, booleans, lists). Raises SpecError for a malformed assignment or a key under a non-section."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise SpecError(f"--set expects key.path=value, got {assignment!r}")
    *parents, leaf = key.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(f"--set {key}: {part} is not a section")
    node[leaf] = yaml.safe_load(text)
    return document


def parse_spec(document: Any, overrides: list[str] = ()) -> JobSpec:
    """A validated JobSpec from a spec document (a dict, as YAML reads it) and `--set` overrides; the
    caller's document is not changed. Raises SpecError naming every offending key."""
    if not isinstance(document, dict):
        raise SpecError("a job spec is a YAML mapping")
    document = copy.deepcopy(document)
    for assignment in overrides:
        apply_override(document, assignment)
    _inline_template_file(document)
    try:
        return JobSpec.model_validate(document)
    except ValidationError as error:
        raise SpecError(_describe(error)) from None


def merged(base: dict, over: dict) -> dict:
    """`base` with `over` laid on it, section by section: a mapping in both is merged the same way, any
    other value of `over` replaces `base`'s. Neither is changed."""
    result = dict(base)
    for key, value in over.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
    return result


def _inline_template_file(document: dict) -> None:
    """Replaces `prompt.template_file` with its keys (the section's own keys win, key by key: `--set
    prompt.examples.k=3` changes the file's `k` and keeps its examples' `uri`), in place: the spec then
    holds the templates' text, so the output's fingerprint follows the wording, and a spec sent to a
    cluster does not need the file there. Raises SpecError when the file cannot be read or is not a
    mapping of the section's keys."""
    prompt = document.get("prompt")
    if not isinstance(prompt, dict) or not prompt.get("template_file"):
        return
    uri = prompt.pop("template_file")
    try:
        with fsspec.open(uri, "rt", **dict(document.get("storage") or {})) as handle:
            loaded = yaml.safe_load(handle.read())
    except (OSError, ValueError) as error:
        raise SpecError(f"prompt.template_file: cannot read {uri}: {error}") from None
    if not isinstance(loaded, dict):
        raise SpecError(f"prompt.template_file: {uri} holds no mapping of prompt keys (system, user, messages, ...)")
    if "template_file" in loaded:
        raise SpecError(f"prompt.template_file: {uri} names another template_file; one level only")
    document["prompt"] = merged(loaded, prompt)


def read_document(path: str | Path) -> dict:
    """A spec file's YAML document, unvalidated; raises SpecError when it cannot be read or parsed."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise SpecError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path} is not valid YAML: {error}") from None


def load_spec(path: str | Path, overrides: list[str] = ()) -> JobSpec:
    """`parse_spec` of a YAML file; raises SpecError when it cannot be read or parsed."""
    return parse_spec(read_document(path), overrides)
