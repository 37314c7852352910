"""The column types a lake table takes, as rules over Arrow types: the output's schema (the row contract
and the passthrough columns, whatever the input's files held) made into one that Iceberg, Spark and Trino
accept, and each block cast to it on its way to a data file.

The rules (README "Lake tables"): no unsigned integers (uint8/16 to int32, uint32 to int64, uint64 to
decimal(20, 0), which holds every value); int8/16 to int32, float16 to float32; timestamps in microseconds
(nanoseconds truncated), zoned ones in UTC (Iceberg's timestamptz has no other zone); time in microseconds;
date64 to date32; large and view strings and binaries to their plain forms; dictionaries to their values;
lists, maps and structs by the same rules. A column null in every record of the input (the null type, or
the passthrough's string column marked untyped) has no type to give: it is left out of a table that lacks
it (Iceberg reads it as null there) and written as the table's type where the table has it. Types with no Iceberg counterpart (durations, intervals, unions,
decimals past 38 digits) refuse the job, naming the column.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from batchgen.core.passthrough import is_untyped
from batchgen.spec.job import SpecError

__all__ = ["LakeRefused", "lake_schema", "lake_type", "to_lake"]


class LakeRefused(SpecError):
    """A job whose rows a lake table cannot take as they are; the message names the column and the types (a
    spec error: the job is refused before any engine starts)."""


_PLAIN = {pa.uint8(): pa.int32(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(),
          pa.uint64(): pa.decimal128(20, 0), pa.int8(): pa.int32(), pa.int16(): pa.int32(),
          pa.float16(): pa.float32(), pa.date64(): pa.date32(), pa.large_string(): pa.string(),
          pa.string_view(): pa.string(), pa.large_binary(): pa.binary(), pa.binary_view(): pa.binary()}
_KEPT = (pa.types.is_boolean, pa.types.is_int32, pa.types.is_int64, pa.types.is_float32, pa.types.is_float64,
         pa.types.is_string, pa.types.is_binary, pa.types.is_date32, pa.types.is_fixed_size_binary)


def lake_type(t: pa.DataType, column: str) -> pa.DataType | None:
    """The type a table column gets for values of Arrow type `t` (the module's rules), None for the null type
    (no type to give); raises LakeRefused naming `column` for a type no lake table has."""
    if t in _PLAIN:
        return _PLAIN[t]
    if any(is_kind(t) for is_kind in _KEPT):
        return t
    if pa.types.is_null(t):
        return None
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz else None)
    if pa.types.is_time(t):
        return pa.time64("us")
    if pa.types.is_decimal(t) and t.precision <= 38:
        return pa.decimal128(t.precision, t.scale)
    if pa.types.is_dictionary(t):
        return lake_type(t.value_type, column)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_list_view(t):
        return pa.list_(_nested(t.value_type, f"{column}[]"))
    if pa.types.is_map(t):
        return pa.map_(_nested(t.key_type, f"{column}.key"), _nested(t.item_type, f"{column}.value"))
    if pa.types.is_struct(t):
        fields = [(f.name, lake_type(f.type, f"{column}.{f.name}")) for f in t]
        kept = [pa.field(name, kind) for name, kind in fields if kind is not None]
        return pa.struct(kept) if kept else None
    raise LakeRefused(f"column {column}: Arrow type {t} has no Iceberg type; cast it in the input, or leave the "
                      "column out (input.columns)")


def _nested(t: pa.DataType, column: str) -> pa.DataType:
    # A nested null type (a list of nulls) has no place to be left out of: string is what Arrow's JSON
    # readers give such values once they hold any.
    return lake_type(t, column) or pa.string()


def lake_schema(schema: pa.Schema) -> tuple[pa.Schema, list[str]]:
    """(`schema` by the module's rules, the columns left out for having the null type, or for being null in
    every record the input scan read: `passthrough.is_untyped`). Raises LakeRefused."""
    kept, untyped = [], []
    for field in schema:
        kind = None if is_untyped(field) else lake_type(field.type, field.name)
        if kind is None:
            untyped.append(field.name)
        else:
            kept.append(pa.field(field.name, kind))
    return pa.schema(kept), untyped


def to_lake(block: pa.Table, schema: pa.Schema, constants: dict[str, str]) -> pa.Table:
    """`block` as a data file of the table holds it: the columns of `schema` in its order and types (a column
    the block lacks is null; the block's others are dropped, which only the null-typed ones left out by
    `lake_schema` are), and each of `constants` (column -> value, e.g. the job's name) on every row.
    Casts are unchecked where the rules truncate (nanoseconds to microseconds) and checked elsewhere."""
    columns = []
    for field in schema:
        if field.name in constants:
            columns.append(pa.array([constants[field.name]] * block.num_rows, field.type))
        elif field.name in block.column_names and block.column(field.name).null_count < block.num_rows:
            column = block.column(field.name)
            truncating = pa.types.is_timestamp(column.type) or pa.types.is_time(column.type)
            columns.append(column if column.type == field.type else
                           pc.cast(column, field.type, safe=not truncating))
        else:  # absent, or null throughout (an untyped column the table holds as a struct: no cast needed)
            columns.append(pa.nulls(block.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)
