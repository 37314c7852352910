"""Reading input files as blocks of rows that remember their source: the same blocks in a Ray task
(`batchgen.cluster.ray_io.ray_dataset` calls `read_stream`) and in-process (`read_file`, for `batchgen
validate` and the tests).

Owns the blocks' internal columns: rows carry `__batchgen_source` (file) and `__batchgen_index` (line or
row number) so a record without an id gets a unique one (`batchgen.core.identity`) and an error can say
where it came from. It also owns decoding JSONL lines (`parse_lines`, plain or OpenAI Batch API lines).

Ray's `read_json` fails the whole read on one bad line and neither of its readers reports line or row
numbers, so batchgen reads files itself (Ray still does the file listing, splitting and scheduling):
JSONL lines travel as raw bytes (the reader parses each only for its id, which Ray Data's checkpoint
filter needs at the read) and a replica parses them again (`blocks.decode`), one error row each. A reader
runs in one of two modes: `records` (what the replicas get) or `scan` (the input scan's ids and
passthrough types, `batchgen.core.scan`). Compressed JSONL (`.jsonl.gz`, `.bz2`, `.zst`, `.lz4`) is
decompressed here by pyarrow's codecs, and a UTF-8 byte-order mark is not part of a record.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchgen.core.identity import InputNames, row_ids
from batchgen.core.passthrough import infer_fields
from batchgen.core.storage import InputSet, compression_of
from batchgen.record.contract import INPUT_FIELDS, RecordError, not_text, parse_json_line
from batchgen.record.openai_batch import record_of

SOURCE, INDEX, LINE, TYPES = "__batchgen_source", "__batchgen_index", "__batchgen_line", "__batchgen_types"
BUDGETED = "__batchgen_budgeted"  # scan mode: the record sets max_thinking_tokens
INTERNAL_COLUMNS = (SOURCE, INDEX, LINE, TYPES, BUDGETED)
ROWS_PER_BLOCK = 1024


def _lines(stream) -> Iterator[bytes]:
    pending = b""
    first = True
    while chunk := stream.read(1 << 20):
        if first:
            chunk = chunk.removeprefix(codecs.BOM_UTF8)  # editors on Windows write one; it is not data
            first = False
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def _block(path: str, numbers: list[int], ids: list[str], columns: dict) -> pa.Table:
    # The string `id` column exists from the read on: Ray Data's checkpointing filters finished rows by it.
    return pa.table({"id": pa.array(ids, pa.string()), SOURCE: pa.array([path] * len(numbers), pa.string()),
                     INDEX: pa.array(numbers, pa.int64()), **columns})


def _scan_columns(schema: pa.Schema, budgeted: pa.Array) -> dict:
    """The scan's columns of a block: its passthrough types, serialized in its first row (a column, not
    metadata: Ray Data may merge blocks, and a column survives that), and which records set a budget."""
    rows = len(budgeted)
    return {TYPES: pa.array([schema.serialize().to_pybytes()] + [None] * (rows - 1), pa.binary()),
            BUDGETED: budgeted}


def parse_lines(lines: list[bytes], openai: bool) -> tuple[list[dict | RecordError], list]:
    """JSONL lines as raw records (or why a line is not one), and each line's own id (None where it has
    none); OpenAI Batch API lines as the records they ask for (`openai_batch.record_of`), their
    `custom_id` the id even of a line that cannot run."""
    parsed = [parse_json_line(line) for line in lines]
    # A record holding a string that is not text is an error row, under its own id when that one is text.
    raw_ids = [r.get("custom_id" if openai else "id") if isinstance(r, dict) else None for r in parsed]
    raw_ids = [None if not_text(rid) else rid for rid in raw_ids]
    records = [(not_text(r) or (record_of(r) if openai else r)) if isinstance(r, dict) else r for r in parsed]
    return records, raw_ids


def _jsonl_blocks(stream, path: str, names: InputNames, duplicate_places: frozenset, scan: bool,
                  openai: bool = False) -> Iterator[pa.Table]:
    lines, numbers = [], []

    def block() -> pa.Table:
        records, raw_ids = parse_lines(lines, openai)
        ids = row_ids(raw_ids, path, numbers, names, duplicate_places)
        if scan:
            dicts = [r for r in records if isinstance(r, dict)]
            fields = dict.fromkeys(k for r in dicts for k in r if k not in INPUT_FIELDS)
            budgeted = pa.array([isinstance(r, dict) and r.get("max_thinking_tokens") is not None for r in records])
            return _block(path, numbers, ids, _scan_columns(pa.schema(infer_fields(dicts, fields)), budgeted))
        return _block(path, numbers, ids, {LINE: pa.array(lines, pa.binary())})

    for number, line in enumerate(_lines(stream), start=1):
        if line.strip():
            lines.append(line.rstrip(b"\r\n"))
            numbers.append(number)
        if len(lines) == ROWS_PER_BLOCK:
            yield block()
            lines, numbers = [], []
    if lines:
        yield block()


def _parquet_blocks(stream, path: str, names: InputNames, duplicate_places: frozenset,
                    scan: bool) -> Iterator[pa.Table]:
    """Every column but `id` keeps its Parquet type; the scan reads only `id` and the file's schema."""
    parquet = pq.ParquetFile(stream)
    passthrough = pa.schema([f for f in parquet.schema_arrow if f.name not in INPUT_FIELDS])
    has_id = "id" in parquet.schema_arrow.names
    columns = [c for c in ("id", "max_thinking_tokens") if c in parquet.schema_arrow.names] if scan else None
    first = 0
    batches = parquet.iter_batches(batch_size=ROWS_PER_BLOCK, columns=columns)
    if columns == []:  # no column to read: the row count says how many rows there are
        batches = (pa.record_batch({"n": pa.nulls(min(ROWS_PER_BLOCK, parquet.metadata.num_rows - start))})
                   for start in range(0, parquet.metadata.num_rows, ROWS_PER_BLOCK))
    for batch in batches:
        table = pa.Table.from_batches([batch])
        numbers = list(range(first, first + table.num_rows))
        raw_ids = table.column("id").to_pylist() if has_id else [None] * table.num_rows
        ids = row_ids(raw_ids, path, numbers, names, duplicate_places)
        if scan:
            budgeted = (pc.is_valid(table.column("max_thinking_tokens")).combine_chunks()
                        if "max_thinking_tokens" in table.column_names else pa.array([False] * table.num_rows))
            yield _block(path, numbers, ids, _scan_columns(passthrough if first == 0 else pa.schema([]), budgeted))
        else:
            yield _block(path, numbers, ids, {n: table.column(n) for n in table.column_names if n != "id"})
        first += table.num_rows


def read_stream(stream, path: str, fmt: str, names: InputNames, duplicate_places: frozenset = frozenset(),
                scan: bool = False) -> Iterator[pa.Table]:
    """Blocks of rows from one open input file (raw bytes; decompressed here): `id`, source, index, and
    the raw line (JSONL) or the file's columns (Parquet), or in `scan` mode the passthrough types.
    `duplicate_places`: the (file, number) of every later use of an id (`identity.row_ids`)."""
    codec = compression_of(path)
    if codec:
        stream = pa.CompressedInputStream(stream, codec)
    if fmt == "parquet":
        yield from _parquet_blocks(stream, path, names, duplicate_places, scan)
    else:
        yield from _jsonl_blocks(stream, path, names, duplicate_places, scan, openai=fmt == "openai")


def read_file(fs: fsspec.AbstractFileSystem, inputs: InputSet, path: str, duplicate_places: frozenset = frozenset(),
              scan: bool = False) -> Iterator[pa.Table]:
    """The same blocks the Ray reader gives, read in-process (for `batchgen validate`)."""
    with fs.open(path, "rb") as stream:
        yield from read_stream(stream, path, inputs.format, inputs.names, duplicate_places, scan)
