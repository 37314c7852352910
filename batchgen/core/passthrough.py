"""Passthrough fields: a record's fields outside the input contract, carried to its output row, with one
schema for the whole output prefix (pure logic over Arrow).

Rows are written by many tasks, file by file, so the columns and types of every file must be known before
the first one is written: the input scan (`batchgen.core.scan`) sees every record once and `PassthroughTypes`
merges what each block holds into one schema. The rules, so that every data-lake reader opens the prefix
with a plain glob:

- Every passthrough field of any record is a column of every file; a record without it has null there.
- JSON values keep their natural Arrow type (string, int64, double, bool, list, struct); ints and floats
  together are double; objects are structs when every object in that place has the same keys (so each
  value comes back exactly, no key added as null).
- A field whose values do not share one type (an int here, a string there; objects with different keys),
  or whose type Parquet cannot hold or readers do not agree on (an empty object `{}` alone, an empty list
  with no typed items anywhere, an integer beyond 64 bits), is written as JSON text: a string column,
  `json.dumps` of each value (null stays null). Parquet input columns keep their Parquet type; files that disagree on one are merged the same way.
- A field named like an output column (`content`, `model`, ...) is written as `input_<name>` (with more
  `input_` in front while that name is taken too).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pyarrow as pa

JSON_TEXT = b"json"  # field metadata marking a column written as JSON text
# ... and one null in every record read (no type seen): written as strings, left out of a lake table
# that has no such column (`batchgen.lake.types.lake_schema`)
UNTYPED = b"untyped"
_KIND = b"batchgen"


def column_name(field: str, taken: Iterable[str]) -> str:
    """The output column a passthrough field goes to: its own name unless an output column has it."""
    taken = set(taken)
    name = field
    while name in taken:
        name = f"input_{name}"
    return name


def _json_text(name: str) -> pa.Field:
    return pa.field(name, pa.string(), metadata={_KIND: JSON_TEXT})


def is_json_text(field: pa.Field) -> bool:
    return (field.metadata or {}).get(_KIND) == JSON_TEXT


def is_untyped(field: pa.Field) -> bool:
    """Whether the column was null in every record read (`UNTYPED`)."""
    return (field.metadata or {}).get(_KIND) == UNTYPED


def _writable(data_type: pa.DataType) -> bool:
    """False for types Parquet cannot write (empty structs) or that only say "no value seen" (null)."""
    if pa.types.is_null(data_type):
        return False
    if pa.types.is_struct(data_type):
        return data_type.num_fields > 0 and all(_writable(f.type) for f in data_type)
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type):
        return _writable(data_type.value_type)
    if pa.types.is_map(data_type):
        return _writable(data_type.key_type) and _writable(data_type.item_type)
    return True


def _same_keys(a: pa.DataType, b: pa.DataType) -> bool:
    """Whether two types have structs with the same field names at the same places (null fits any)."""
    if pa.types.is_null(a) or pa.types.is_null(b):
        return True
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        names = [f.name for f in a]
        return names == [f.name for f in b] and all(_same_keys(a.field(n).type, b.field(n).type) for n in names)
    if pa.types.is_list(a) and pa.types.is_list(b):
        return _same_keys(a.value_type, b.value_type)
    return pa.types.is_struct(a) == pa.types.is_struct(b)


def _consistent(value, path: str, keys: dict[str, tuple]) -> bool:
    """Whether every object at the same place in a field's values has the same keys (so a struct holds
    each value exactly, with no key added as null)."""
    if isinstance(value, dict):
        if keys.setdefault(path, tuple(value)) != tuple(value):
            return False
        return all(_consistent(v, f"{path}.{k}", keys) for k, v in value.items())
    if isinstance(value, list):
        return all(_consistent(v, f"{path}[]", keys) for v in value)
    return True


def _merge(a: pa.Field, b: pa.Field) -> pa.Field:
    if is_json_text(a) or is_json_text(b) or not _same_keys(a.type, b.type):
        return _json_text(a.name)
    try:
        merged = pa.unify_schemas([pa.schema([a.remove_metadata()]), pa.schema([b.remove_metadata()])],
                                  promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return _json_text(a.name)
    return merged.field(0)


def infer_fields(records: list[dict], names: Iterable[str]) -> list[pa.Field]:
    """The Arrow type of each named field over a list of JSON records (a block); JSON text where the
    values do not share one."""
    fields = []
    for name in names:
        values = [r.get(name) for r in records]
        keys: dict[str, tuple] = {}
        if not all(_consistent(v, "", keys) for v in values):
            fields.append(_json_text(name))
            continue
        try:
            fields.append(pa.field(name, pa.array(values).type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            fields.append(_json_text(name))
    return fields


class PassthroughTypes:
    """Merges the passthrough fields seen block by block into the prefix's one schema (field order: first
    seen in input order of the blocks added)."""

    def __init__(self) -> None:
        self._fields: dict[str, pa.Field] = {}

    def add(self, schema: pa.Schema) -> None:
        for field in schema:
            seen = self._fields.get(field.name)
            self._fields[field.name] = field if seen is None else _merge(seen, field)

    @property
    def fields(self) -> list[pa.Field]:
        return list(self._fields.values())


def _as_json(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


class Passthrough:
    """Carries passthrough values into output columns of the prefix's schema.

    `sources` maps each output column to the input field it comes from (they differ only for renamed
    fields)."""

    def __init__(self, schema: pa.Schema, sources: dict[str, str]):
        self.schema = schema
        self.sources = sources

    @classmethod
    def build(cls, types: PassthroughTypes, output_columns: Iterable[str]) -> Passthrough:
        """The prefix's passthrough columns from the merged types: renamed away from `output_columns`,
        JSON text where a type is mixed or unwritable, a plain string where no value was ever seen."""
        outputs = set(output_columns)
        # A field keeps its own name unless an output column has it; a renamed one also avoids the names
        # of the other fields.
        taken = outputs | {f.name for f in types.fields}
        fields, sources = [], {}
        for field in types.fields:
            out = column_name(field.name, taken) if field.name in outputs else field.name
            taken.add(out)
            sources[out] = field.name
            if pa.types.is_null(field.type):
                fields.append(pa.field(out, pa.string(), metadata={_KIND: UNTYPED}))
            elif is_json_text(field) or not _writable(field.type):
                fields.append(_json_text(out))
            else:
                fields.append(pa.field(out, field.type))
        return cls(pa.schema(fields), sources)

    def from_records(self, records: list) -> list[pa.Array]:
        """The columns for a block of JSON records (a record that is not a dict, a bad line, has nulls)."""
        dicts = [r if isinstance(r, dict) else {} for r in records]
        columns = []
        for field in self.schema:
            values = [d.get(self.sources[field.name]) for d in dicts]
            if is_json_text(field):
                values = [_as_json(v) for v in values]
            columns.append(pa.array(values, field.type))
        return columns

    def from_table(self, table: pa.Table) -> list[pa.Array]:
        """The columns for a block of Parquet rows: cast to the prefix's type, absent ones null (arrays,
        not chunked: rows of several blocks are gathered from them)."""
        columns = []
        for field in self.schema:
            source = self.sources[field.name]
            if source not in table.column_names:
                columns.append(pa.nulls(table.num_rows, field.type))
            elif is_json_text(field):
                columns.append(pa.array([_as_json(v) for v in table.column(source).to_pylist()], pa.string()))
            else:
                columns.append(table.column(source).cast(field.type).combine_chunks())
        return columns

    @property
    def json_text(self) -> frozenset[str]:
        """The output columns that hold their values as JSON text (Parquet needs one type per column; a
        JSON Lines file does not, and gets the values back: `blocks.json_lines`)."""
        return frozenset(field.name for field in self.schema if is_json_text(field))

    def to_json(self) -> dict:
        """A JSON-able form (Ray actors get it as a constructor argument; the manifest records it)."""
        return {"schema": self.schema.serialize().to_pybytes().hex(), "sources": self.sources}

    @classmethod
    def from_json(cls, data: dict) -> Passthrough:
        return cls(pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(data["schema"]))), data["sources"])
