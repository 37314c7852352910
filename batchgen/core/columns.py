"""Which of an input's columns a job reads, which one names its records, and which are passed through
(pure logic over Arrow).

An input is a table with its own columns. `InputColumns` says, from the spec's `input` and `prompt`
sections: the id column (`input.id_column`); the columns read (`input.columns`, plus the ones the job
cannot do without); the values of Hive-style partition folders (`lang=en/part-0.parquet` gives the column
`lang` = "en", a string, as Arrow's and Ray's readers give it without a schema); and which fields are the
record's contract rather than its data. Without a `prompt` section the contract's fields (`prompt`,
`max_tokens`, ...) steer generation and every other field is passed through; with one, every column is
data (a lake table's `n` or `seed` column is not a sampling setting), passed through and seen by the
templates, and only the id stays out.

A chained job reads another job's output prefix (`batchgen.core.chained`): `chained` marks it here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

from batchgen.record.contract import INPUT_FIELDS
from batchgen.spec.job import JobSpec

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # Arrow's `HivePartitioning` null_fallback, Hive's and Spark's name


@dataclass(frozen=True)
class InputColumns:
    """`id_column`: the column holding a record's id; `read`: the columns read (None: all); `hive`: key=value
    folders are columns; `templated`: the job has a prompt section (every column is data); `chained`: the
    input is another job's output prefix; `include_errors`: a chained job also reads that job's error rows;
    `budget_column`: the column a record's thinking budget comes from (the scan registers the budget
    processor when any record has one); `row_filter`: the rows read, as an Arrow expression over the
    `filter_columns` (a lake table's row filter, `batchgen.lake.reading`, with the table's types: a file
    written before a column existed reads it as null); rows it drops have no record."""

    id_column: str = "id"
    read: frozenset[str] | None = None
    hive: bool = True
    templated: bool = False
    chained: bool = False
    include_errors: bool = False
    budget_column: str | None = "max_thinking_tokens"
    row_filter: pc.Expression | None = field(default=None, compare=False)
    filter_columns: pa.Schema = field(default=pa.schema([]), compare=False)

    @classmethod
    def of(cls, spec: JobSpec, chained: bool = False) -> InputColumns:
        """The columns of `spec`'s input: `input.columns` with the id column, the columns the prompt's
        templates and fields name and, without a prompt section, the contract's fields."""
        read = None
        if spec.input.columns is not None:
            needed = spec.prompt.columns() if spec.prompt else set(INPUT_FIELDS)
            read = frozenset(spec.input.columns) | needed | {spec.input.id_column or "id"}
        budget = spec.prompt.fields.get("max_thinking_tokens") if spec.prompt else "max_thinking_tokens"
        return cls(spec.input.id_column or "id", read, spec.input.partitioning == "hive", spec.prompt is not None,
                   chained, spec.input.include_errors, budget)

    @property
    def contract(self) -> frozenset[str]:
        """Fields that are not passed through to the output: the contract's, or with templates the id alone."""
        return frozenset({"id"}) if self.templated else INPUT_FIELDS

    def keeps(self, name: str) -> bool:
        """Whether the column `name` is read at all."""
        return self.read is None or name in self.read

    def data_fields(self, names, partitions=()) -> list[str]:
        """Of `names` (a record's fields, a file's columns, in order), the ones passed through: those read,
        and partition keys (`partitions`) always."""
        return [n for n in names if n not in self.contract and (self.keeps(n) or n in partitions)]

    def partitions(self, relative: str) -> dict[str, str | None]:
        """The partition values of a file named `relative` to the input root (`lang=en/day=2/p.parquet`:
        lang en, day 2), read as Arrow's Hive partitioning reads them: URL-decoded (`city=New%20York`), and
        `__HIVE_DEFAULT_PARTITION__` (Hive's and Spark's folder for null) is null. None without Hive
        partitioning. Always read, whatever `input.columns` says."""
        if not self.hive:
            return {}
        values = {}
        for folder in relative.split("/")[:-1]:
            key, sep, value = folder.partition("=")
            if sep and key:
                value = unquote(value)
                values[unquote(key)] = None if value == HIVE_NULL else value
        return values

    def identity(self) -> dict:
        """What of this decides which records there are and their ids (part of the input's identity:
        another one is another input); {} for the defaults, so prefixes written before these settings
        existed keep their fingerprint."""
        return self._differing(("id_column", "hive", "chained", "include_errors"))

    def shaping(self) -> dict:
        """What of this shapes a record's prompt and row but not which records there are (part of the
        answer-shaping settings: a change is refused unless `--allow-changed-spec`); {} for the defaults."""
        differs = self._differing(("templated", "budget_column"))
        return differs | ({"read": sorted(self.read)} if self.read is not None else {})

    def _differing(self, names: tuple[str, ...]) -> dict:
        return {name: getattr(self, name) for name in names if getattr(self, name) != getattr(InputColumns, name)}


def with_partitions(table: pa.Table, partitions: dict[str, str | None]) -> pa.Table:
    """`table` with a string column per partition key it lacks (a file's own column wins)."""
    for key, value in partitions.items():
        if key not in table.column_names:
            table = table.append_column(key, pa.array([value] * table.num_rows, pa.string()))
    return table


def job_inputs(spec: JobSpec):
    """(filesystem, `InputSet`) of a job's input: the files at `input.uri`, or, where it is another job's
    output prefix (`input.format` batchgen, or auto and the prefix holds a manifest), that job's data
    files (`batchgen.core.chained`). Raises FileNotFoundError when nothing is there, ValueError when the
    format cannot be told, the first job has not finished, or a chained job has no prompt section."""
    from batchgen.core import chained  # chained reads a prefix, and the prefix module reads input sets
    from batchgen.core.storage import InputSet, open_fs

    fs, path = open_fs(spec.input.uri, spec.storage)
    if spec.input.format == "batchgen" or (spec.input.format == "auto" and chained.is_job_output(fs, path)):
        if spec.prompt is None:
            raise ValueError(f"input.uri: {spec.input.uri} is a batchgen job's output: a job over it needs a prompt "
                             "section (its rows hold content and reasoning_content, not prompts)")
        return fs, InputSet.of_files(fs, path, chained.committed_files(fs, path), "parquet", InputColumns.of(spec, True))
    return fs, InputSet.find(fs, path, spec.input.format, InputColumns.of(spec))
