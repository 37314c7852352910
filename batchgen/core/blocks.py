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
from dataclasses import dataclass

import pyarrow as pa

from batchgen.core.passthrough import Passthrough
from batchgen.record.contract import INPUT_FIELDS, RecordError
from batchgen.record.rows import OUTPUT_SCHEMA
from batchgen.core.reading import INDEX, INTERNAL_COLUMNS, LINE, SOURCE, parse_lines


@dataclass
class InputBatch:
    """A decoded block: per row its raw record (a dict, or why the row is not one) and its id, and the
    block's passthrough columns, already in the prefix's schema."""

    records: list[dict | RecordError]
    ids: list[str]
    passthrough: list[pa.Array]


def decode(block: pa.Table, passthrough: Passthrough,
           duplicate_errors: dict[tuple[str, int], RecordError] | None = None, openai: bool = False) -> InputBatch:
    """Input rows (a records-mode block of `reading.read_stream`) as raw records. `duplicate_errors` ((file,
    number) -> error) turns later uses of an id into their error; `openai`: the lines are OpenAI Batch API
    lines (`input.format: openai`)."""
    ids = block.column("id").to_pylist()
    if LINE in block.column_names:  # JSONL: parsed here, on the replica's worker, one error row per bad line
        records, _ = parse_lines(block.column(LINE).to_pylist(), openai)
        columns = passthrough.from_records(records)
    else:  # Parquet: passthrough columns are cast, not rebuilt, so they keep their Parquet types
        fields = [c for c in block.column_names if c in INPUT_FIELDS and c != "id" and c not in INTERNAL_COLUMNS]
        records = block.select(fields).to_pylist()
        columns = passthrough.from_table(block)
    if duplicate_errors:
        places = zip(block.column(SOURCE).to_pylist(), block.column(INDEX).to_pylist())
        records = [duplicate_errors.get(place, r) for r, place in zip(records, places)]
    return InputBatch(records, ids, columns)


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
