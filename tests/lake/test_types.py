"""The column types a lake table takes (`batchgen.lake.types`): the rules, and blocks cast to them."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pyarrow as pa
import pytest

from batchgen.lake.types import LakeRefused, lake_schema, lake_type, to_lake
from batchgen.spec.job import SpecError


@pytest.mark.parametrize(("given", "taken"), [
    (pa.uint8(), pa.int32()), (pa.uint16(), pa.int32()), (pa.uint32(), pa.int64()),
    (pa.uint64(), pa.decimal128(20, 0)), (pa.int8(), pa.int32()), (pa.int16(), pa.int32()), (pa.int64(), pa.int64()),
    (pa.float16(), pa.float32()), (pa.timestamp("ns"), pa.timestamp("us")), (pa.timestamp("s", "Asia/Tokyo"),
    pa.timestamp("us", "UTC")), (pa.time32("ms"), pa.time64("us")), (pa.date64(), pa.date32()),
    (pa.large_string(), pa.string()), (pa.dictionary(pa.int8(), pa.large_string()), pa.string()),
    (pa.large_list(pa.uint8()), pa.list_(pa.int32())), (pa.map_(pa.string(), pa.uint32()), pa.map_(pa.string(), pa.int64())),
    (pa.struct([("a", pa.uint8()), ("gone", pa.null())]), pa.struct([("a", pa.int32())])),
    (pa.list_(pa.null()), pa.list_(pa.string())), (pa.null(), None),
])
def test_each_arrow_type_maps_to_one_a_lake_table_takes(given, taken):
    assert lake_type(given, "c") == taken


@pytest.mark.parametrize("given", [pa.duration("s"), pa.month_day_nano_interval(), pa.decimal256(50, 2)])
def test_a_type_without_an_iceberg_counterpart_refuses_the_job_naming_the_column(given):
    with pytest.raises(LakeRefused, match="^column when: Arrow type " + re.escape(str(given)) + " has no Iceberg type") as refused:
        lake_type(given, "when")
    assert isinstance(refused.value, SpecError)  # refused like a spec: exit 2, before any engine starts


def test_a_null_typed_column_is_left_out_and_named():
    schema, untyped = lake_schema(pa.schema([("id", pa.string()), ("empty", pa.null()), ("n", pa.uint8())]))
    assert schema == pa.schema([("id", pa.string()), ("n", pa.int32())]) and untyped == ["empty"]


def test_a_block_is_cast_to_the_files_schema_without_losing_a_value():
    block = pa.table({
        "big": pa.array([2**64 - 1, None], pa.uint64()),
        "at": pa.array([1_500_000_001, 0], pa.timestamp("ns", "Europe/Paris")),
        "lang": pa.array(["en", "fr"]).dictionary_encode(),
        "empty": pa.nulls(2),
    })
    schema, _ = lake_schema(block.schema)
    schema = schema.append(pa.field("job", pa.string())).append(pa.field("older", pa.float64()))
    rows = to_lake(block, schema, {"job": "eval-1"}).to_pylist()
    assert rows[0] == {"big": Decimal(2**64 - 1), "at": datetime.datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=datetime.UTC),
                       "lang": "en", "job": "eval-1", "older": None}  # nanoseconds truncated to microseconds
    assert rows[1]["big"] is None and rows[1]["job"] == "eval-1"


def test_a_passthrough_column_null_in_every_record_is_left_out_like_the_null_type():
    from batchgen.core.passthrough import Passthrough, PassthroughTypes

    types = PassthroughTypes()
    types.add(pa.schema([("empty", pa.null()), ("n", pa.int64())]))
    passthrough = Passthrough.build(types, ["id"])
    schema, untyped = lake_schema(passthrough.schema)
    assert passthrough.schema.field("empty").type == pa.string()  # the prefix's files keep it, as strings
    assert schema.names == ["n"] and untyped == ["empty"]


def test_a_column_null_throughout_is_written_as_nulls_of_the_tables_nested_type():
    block = pa.table({"meta": pa.array([None, None], pa.string())})  # an untyped passthrough column
    wanted = pa.schema([("meta", pa.struct([("a", pa.int64())]))])
    assert to_lake(block, wanted, {}).column("meta").to_pylist() == [None, None]
