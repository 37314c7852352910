"""Output blocks: rows gathered across batches with their passthrough values, in the row schema
(`batchgen.core.blocks`)."""

from __future__ import annotations

import pyarrow as pa

from batchgen.core.blocks import assemble, decode, gather, schema
from batchgen.core.identity import InputNames
from batchgen.core.reading import read_file
from batchgen.core.scan import scan
from batchgen.core.storage import InputSet
from batchgen.record.contract import RecordError
from batchgen.record.rows import OUTPUT_FIELDS, OutputRow, error_row
from tests.inputs import (
    scanned,
    write_lines,
)


def _no_inputs() -> InputSet:
    return InputSet("/", [], [], "parquet", InputNames("/", []))


def test_the_row_model_gives_the_arrow_schema_and_error_rows():
    row = error_row("a", "m", RecordError("invalid_json", "bad"), "on", 3)
    assert tuple(row) == OUTPUT_FIELDS and OutputRow.model_validate(row).error == "invalid_json: bad"
    none = scan(_no_inputs(), []).passthrough
    table = assemble([row], decode(pa.table({"id": ["a"], "prompt": ["x"]}), none).passthrough, none)
    assert table.schema == schema(none) and table.to_pylist() == [row]


def test_rows_of_several_batches_keep_their_own_passthrough_values(tmp_path):
    write_lines(tmp_path / "in.jsonl", [{"id": str(i), "prompt": "x", "k": i} for i in range(4)])
    fs, inputs, result = scanned(tmp_path / "in.jsonl")
    (block,) = read_file(fs, inputs, inputs.files[0])
    first, second = (decode(block.slice(0, 2), result.passthrough), decode(block.slice(2, 2), result.passthrough))
    row = lambda rid, k=None: error_row(rid, "m", RecordError("x", "y"), sample_index=k)  # noqa: E731
    # A record's rows come together (one per sample); each carries the record's passthrough values.
    rows, columns = gather([([row("3")], (second, 1)), ([row("0", 0), row("0", 1)], (first, 0)), ([row("2")], (second, 0))])
    table = assemble(rows, columns, result.passthrough)
    assert [(r["id"], r["sample_index"], r["k"]) for r in table.to_pylist()] == [
        ("3", None, 3), ("2", None, 2), ("0", 0, 0), ("0", 1, 0)]
    # A retried batch whose rows were all handed out already returns no rows: an empty block, same schema.
    empty = assemble(*gather([]), result.passthrough)
    assert empty.num_rows == 0 and empty.schema == schema(result.passthrough)


def test_json_lines_give_back_the_values_a_reader_wrote():
    import base64
    import datetime
    import decimal
    import json

    from batchgen.core.blocks import json_lines

    table = pa.table({
        "id": ["a", "b"],
        "max_thinking_tokens": pa.array([16, None], pa.int64()),  # pandas would write 16.0
        "meta": ['{}', '[1, {"k": "v"}]'],  # JSON text: the passthrough rule's for values of mixed types
        "at": pa.array([datetime.datetime(2026, 12, 7, 4, 30), None], pa.timestamp("us")),
        "price": pa.array([decimal.Decimal("1.10"), None], pa.decimal128(5, 2)),
        "blob": pa.array([b"\x00\xff", None], pa.binary()),
        "note": ["é ✓", None],
    })
    lines = json_lines(table, frozenset({"meta"})).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "a", "max_thinking_tokens": 16, "meta": {}, "at": "2026-12-07T04:30:00", "price": "1.10",
         "blob": base64.b64encode(b"\x00\xff").decode(), "note": "é ✓"},
        {"id": "b", "max_thinking_tokens": None, "meta": [1, {"k": "v"}], "at": None, "price": None, "blob": None,
         "note": None},
    ]
    assert '"note": "é ✓"' in lines[0]  # text as text, not \u escapes
