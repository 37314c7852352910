"""From a block of input rows to raw records, and from output rows back to a block of the prefix's schema
(pure logic over Arrow; the Ray Data stage, `batchgen.cluster.stage`, calls these around the replica).

The output block's schema is always `schema(passthrough)`: the row contract's columns (`rows.OutputRow`),
then the prefix's passthrough columns, whatever the block's records hold. That is what lets every data
file of a prefix share one schema.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
from dataclasses import dataclass, field

import pyarrow as pa

from batchgen.core.columns import InputColumns
from batchgen.core.passthrough import Passthrough
from batchgen.record.contract import INPUT_FIELDS, RecordError
from batchgen.record.rows import OUTPUT_SCHEMA
from batchgen.record.templates import PromptPlan, Renderer
from batchgen.core.positions import Positions
from batchgen.core.reading import INDEX, INTERNAL_COLUMNS, LINE, SOURCE, parse_lines


@dataclass
class InputBatch:
    """A decoded block: per row its raw record (a dict, or why the row is not one), its id and its position
    (`batchgen.core.positions`; None without an input scan), and the block's passthrough columns, already
    in the prefix's schema."""

    records: list[dict | RecordError]
    ids: list[str]
    passthrough: list[pa.Array]
    positions: list[int] | None = None


def decode(block: pa.Table, passthrough: Passthrough,
           duplicate_errors: dict[tuple[str, int], RecordError] | None = None, openai: bool = False,
           columns: InputColumns = InputColumns(), renderer: Renderer | None = None,
           positions: Positions | None = None) -> InputBatch:
    """Input rows (a records-mode block of `reading.read_stream`) as raw records. `duplicate_errors` ((file,
    number) -> error) turns later uses of an id into their error; `openai`: the lines are OpenAI Batch API
    lines (`input.format: openai`); `columns`: the columns that count (`input.columns`, partition values);
    `renderer`: the job's prompt templates (`prompt`), which make each row's columns into its record;
    `positions`: the input scan's, to give each row its position."""
    ids = block.column("id").to_pylist()
    records = _raw_records(block, openai, columns, renderer is not None)
    # JSONL: passthrough values from the records (partitions in); Parquet: cast, not rebuilt, so they keep
    # their Parquet types
    table_columns = passthrough.from_records(records) if LINE in block.column_names else passthrough.from_table(block)
    if duplicate_errors:
        places = zip(block.column(SOURCE).to_pylist(), block.column(INDEX).to_pylist())
        records = [duplicate_errors.get(place, r) for r, place in zip(records, places)]
    records = _rendered(records, ids, renderer)
    at = positions.of(block.column(SOURCE), block.column(INDEX)).tolist() if positions else None
    return InputBatch(records, ids, table_columns, at)


def _raw_records(block: pa.Table, openai: bool, columns: InputColumns, templated: bool) -> list[dict | RecordError]:
    """A block's rows as raw records (`decode`'s, before duplicates and templates): JSONL lines parsed,
    one error per bad line, partition values merged in; Parquet rows as dicts of their record fields (of
    every column when the job's templates (`templated`) read them)."""
    extra = [c for c in block.column_names if c not in INTERNAL_COLUMNS and c != "id"]
    if LINE not in block.column_names:
        return block.select(extra if templated else [c for c in extra if c in INPUT_FIELDS]).to_pylist()
    records, _ = parse_lines(block.column(LINE).to_pylist(), openai, columns.id_column)
    if extra:  # partition values: a record's own field wins over its folder's
        values = block.select(extra).to_pylist()
        records = [{**v, **r} if isinstance(r, dict) else r for r, v in zip(records, values)]
    if columns.read is not None:  # partition values are read whatever `input.columns` says
        records = [{k: v for k, v in r.items() if columns.keeps(k) or k in extra} if isinstance(r, dict) else r
                   for r in records]
    return records


def _rendered(records: list, ids: list[str], renderer: Renderer | None) -> list:
    """Each raw record made by the job's templates (`renderer`; none: as they are), errors left alone."""
    if renderer is None:
        return records
    return [renderer.render(r, rid) if isinstance(r, dict) else r for r, rid in zip(records, ids)]


@dataclass
class Decoder:
    """How a job's input blocks become records (`decode` with the job's settings), as one object a Ray
    actor gets as a constructor argument: `passthrough` (the scan's), `duplicate_errors` ((file, number) ->
    error), `openai` (OpenAI Batch API lines), `columns` (`batchgen.core.columns`), `plan` (the resolved
    prompt section, or None) and `positions` (the scan's, or None). The templates are compiled once per
    process, not sent."""

    passthrough: Passthrough
    duplicate_errors: dict[tuple[str, int], RecordError] = field(default_factory=dict)
    openai: bool = False
    columns: InputColumns = InputColumns()
    plan: PromptPlan | None = None
    positions: Positions | None = None

    def __post_init__(self) -> None:
        self._renderer = Renderer(self.plan) if self.plan else None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_renderer"}  # compiled templates do not pickle

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def __call__(self, block: pa.Table) -> InputBatch:
        return decode(block, self.passthrough, self.duplicate_errors, self.openai, self.columns, self._renderer,
                      self.positions)

    def records(self, block: pa.Table) -> list[dict | RecordError]:
        """The block's raw records as the replica gets them (templates applied), without their passthrough
        columns, duplicates or positions: what the job's order reads (`batchgen.core.schedule`)."""
        records = _raw_records(block, self.openai, self.columns, self._renderer is not None)
        return _rendered(records, block.column("id").to_pylist(), self._renderer)


def schema(passthrough: Passthrough) -> pa.Schema:
    """Every output file's schema: the row contract's columns, then the passthrough columns."""
    return pa.schema([*OUTPUT_SCHEMA, *passthrough.schema])


def assemble(rows: list[dict], columns: list[pa.Array], passthrough: Passthrough) -> pa.Table:
    """The output block: `rows` with their passthrough `columns` (aligned with the rows; no rows: an empty
    block of the same schema, `gather` gives no columns then)."""
    if not rows:
        return schema(passthrough).empty_table()
    table = pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)
    return pa.Table.from_arrays([*table.columns, *columns], schema=schema(passthrough))


def gather(taken: list[tuple[list[dict], tuple[InputBatch, int]]]) -> tuple[list[dict], list[pa.Array]]:
    """Records that finished, each as its rows (one per sample) tagged with its input batch and row there,
    as (rows, passthrough columns): a replica returns rows of whichever records finished, from any of its
    batches; a record's passthrough values repeat on each of its rows."""
    order: dict[int, tuple[InputBatch, list[int], list[dict]]] = {}
    for record_rows, (batch, index) in taken:
        _, indices, rows = order.setdefault(id(batch), (batch, [], []))
        indices.extend([index] * len(record_rows))
        rows.extend(record_rows)
    groups = list(order.values())
    rows = [row for _, _, group in groups for row in group]
    if not groups:
        return [], []
    columns = [pa.concat_arrays([batch.passthrough[c].take(indices) for batch, indices, _ in groups])
               for c in range(len(groups[0][0].passthrough))]
    return rows, columns


def json_lines(table: pa.Table, json_text: frozenset[str] = frozenset()) -> bytes:
    """An output block as JSON Lines, a row per line, each value as a JSON reader gets it back: the
    `json_text` columns (`Passthrough.json_text`) as the JSON values they hold, integers as integers (not
    `16.0`, as pandas writes an integer column with nulls), Parquet values JSON has no type for as text:
    dates and times in ISO 8601, durations in seconds, decimals exactly, bytes in base64."""
    lines = []
    for row in table.to_pylist():
        for name in json_text:
            if row.get(name) is not None:
                row[name] = json.loads(row[name])
        lines.append(json.dumps(row, ensure_ascii=False, default=_json_value))
    return "".join(line + "\n" for line in lines).encode()


def _json_value(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} has no JSON form")
