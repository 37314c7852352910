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
import hashlib
import json
from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from batchgen.core import chained
from batchgen.core.columns import InputColumns, with_partitions
from batchgen.core.identity import InputNames, id_text, row_ids
from batchgen.core.passthrough import infer_fields
from batchgen.core.storage import InputSet, compression_of, parquet_file
from batchgen.record.contract import RecordError, not_text, parse_json_line
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


def parse_lines(lines: list[bytes], openai: bool, id_column: str = "id") -> tuple[list[dict | RecordError], list]:
    """JSONL lines as raw records (or why a line is not one), and each line's own id (its `id_column`; None
    where it has none); OpenAI Batch API lines as the records they ask for (`openai_batch.record_of`),
    their `custom_id` the id even of a line that cannot run."""
    parsed = [parse_json_line(line) for line in lines]
    # A record holding a string that is not text is an error row, under its own id when that one is text.
    raw_ids = [r.get("custom_id" if openai else id_column) if isinstance(r, dict) else None for r in parsed]
    raw_ids = [None if not_text(rid) else rid for rid in raw_ids]
    records = [(not_text(r) or (record_of(r) if openai else r)) if isinstance(r, dict) else r for r in parsed]
    return records, raw_ids


def _budgeted(values: list) -> pa.Array:
    return pa.array([v is not None and not (isinstance(v, float) and v != v) for v in values], pa.bool_())


def _jsonl_blocks(stream, path: str, names: InputNames, duplicate_places: frozenset, scan: bool,
                  columns: InputColumns, openai: bool = False) -> Iterator[pa.Table]:
    lines, numbers = [], []
    partitions = columns.partitions(names.relative(path))

    def block() -> pa.Table:
        records, raw_ids = parse_lines(lines, openai, columns.id_column)
        ids = row_ids(raw_ids, path, numbers, names, duplicate_places)
        if scan:
            dicts = [{**partitions, **r} for r in records if isinstance(r, dict)]
            fields = columns.data_fields(dict.fromkeys(k for r in dicts for k in r), partitions)
            budget = columns.budget_column
            budgeted = _budgeted([r.get(budget) if isinstance(r, dict) and budget else None for r in records])
            return _block(path, numbers, ids, _scan_columns(pa.schema(infer_fields(dicts, fields)), budgeted))
        table = _block(path, numbers, ids, {LINE: pa.array(lines, pa.binary())})
        return with_partitions(table, partitions)

    for number, line in enumerate(_lines(stream), start=1):
        if line.strip():
            lines.append(line.rstrip(b"\r\n"))
            numbers.append(number)
        if len(lines) == ROWS_PER_BLOCK:
            yield block()
            lines, numbers = [], []
    if lines:
        yield block()


def _parquet_blocks(stream, path: str, names: InputNames, duplicate_places: frozenset, scan: bool,
                    columns: InputColumns) -> Iterator[pa.Table]:
    """Every column but the id keeps its Parquet type; the scan reads only the id, the budget column and
    the file's schema. A chained job's rows (another job's output) become its answers, renamed and keyed
    (`batchgen.core.chained`)."""
    parquet = parquet_file(stream)
    file_names = parquet.schema_arrow.names
    partitions = columns.partitions(names.relative(path))
    if columns.chained:
        read = chained.read_columns(file_names, columns.read, scan, columns.budget_column)
        kept = chained.read_columns(file_names, columns.read, False, columns.budget_column)  # what records hold
        schema = chained.renamed(pa.schema([parquet.schema_arrow.field(n) for n in kept]), file_names)
    else:
        wanted = [columns.id_column, columns.budget_column] if scan else file_names
        read = [c for c in file_names if (c in wanted and columns.keeps(c)) or c in columns.filter_columns.names]
        schema = parquet.schema_arrow
    passthrough = pa.schema([schema.field(n) for n in columns.data_fields(schema.names)]
                            + [pa.field(k, pa.string()) for k in columns.data_fields(partitions, partitions)
                               if k not in schema.names])
    first, typed = 0, False
    batches = parquet.iter_batches(batch_size=ROWS_PER_BLOCK, columns=read)
    if read == []:  # no column to read: the row count says how many rows there are
        batches = (pa.record_batch({"n": pa.nulls(min(ROWS_PER_BLOCK, parquet.metadata.num_rows - start))})
                   for start in range(0, parquet.metadata.num_rows, ROWS_PER_BLOCK))
    for batch in batches:
        table, numbers = pa.Table.from_batches([batch]), None
        if columns.row_filter is not None:
            # A record keeps its row number in the file, so a filtered table's records keep their positions.
            kept = table.append_column(INDEX, pa.array(range(first, first + table.num_rows), pa.int64()))
            first += table.num_rows
            for field in columns.filter_columns:
                if field.name not in kept.column_names:  # a file from before the column existed
                    kept = kept.append_column(field, pa.nulls(kept.num_rows, field.type))
            kept = kept.filter(columns.row_filter)
            # Columns read for the filter alone (left out by input.columns, or not in the file) go again.
            alone = [f.name for f in columns.filter_columns if not (f.name in read and columns.keeps(f.name))]
            table, numbers = kept.drop_columns([INDEX, *alone]), kept.column(INDEX).to_pylist()
        if columns.chained:
            table, raw_ids = chained.answers(table, columns.include_errors, file_names)
        else:
            raw_ids = (table.column(columns.id_column).to_pylist() if columns.id_column in table.column_names
                       else [None] * table.num_rows)
        if not table.num_rows:  # a chained job's block of error rows only, or a filter's empty block
            continue
        if numbers is None:  # positions among the rows kept (a chained job's answers), as they always were
            numbers = list(range(first, first + table.num_rows))
            first += table.num_rows
        ids = row_ids(raw_ids, path, numbers, names, duplicate_places)
        if scan:
            budget = columns.budget_column
            budgeted = (pc.is_valid(table.column(budget)).combine_chunks()
                        if budget in table.column_names else pa.array([False] * table.num_rows))
            yield _block(path, numbers, ids, _scan_columns(pa.schema([]) if typed else passthrough, budgeted))
            typed = True
        else:
            table = with_partitions(table, partitions)
            yield _block(path, numbers, ids, {n: table.column(n) for n in table.column_names if n != "id"})


def read_stream(stream, path: str, fmt: str, names: InputNames, duplicate_places: frozenset = frozenset(),
                scan: bool = False, columns: InputColumns = InputColumns()) -> Iterator[pa.Table]:
    """Blocks of rows from one open input file (raw bytes; decompressed here): `id`, source, index, and
    the raw line (JSONL) or the file's columns (Parquet), with partition values as columns, or in `scan`
    mode the passthrough types. `duplicate_places`: the (file, number) of every later use of an id
    (`identity.row_ids`); `columns`: which columns count, and how (`batchgen.core.columns`)."""
    codec = compression_of(path)
    if codec:
        stream = pa.CompressedInputStream(stream, codec)
    if fmt == "parquet":
        yield from _parquet_blocks(stream, path, names, duplicate_places, scan, columns)
    else:
        yield from _jsonl_blocks(stream, path, names, duplicate_places, scan, columns, openai=fmt == "openai")


def read_file(fs: fsspec.AbstractFileSystem, inputs: InputSet, path: str, duplicate_places: frozenset = frozenset(),
              scan: bool = False) -> Iterator[pa.Table]:
    """The same blocks the Ray reader gives, read in-process (for `batchgen validate`)."""
    with fs.open(path, "rb") as stream:
        yield from read_stream(stream, path, inputs.format, inputs.names, duplicate_places, scan, inputs.columns)


def dataset_block(table: pa.Table, columns: InputColumns) -> pa.Table:
    """A block of someone else's Ray Dataset (records or table rows, as `Dataset.map_batches` gives them in
    Arrow) as a records-mode block: each row's id is its `columns.id_column` as text, or for a row without
    one a digest of its values (the same row gets the same id, so its samples' seeds hold across runs)."""
    raw = table.column(columns.id_column).to_pylist() if columns.id_column in table.column_names else [None] * table.num_rows
    ids = [id_text(rid) for rid in raw]
    if None in ids:
        rows = table.to_pylist()
        ids = [rid or "sha256:" + hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:16]
               for rid, row in zip(ids, rows)]
    numbers = list(range(table.num_rows))
    return _block("dataset", numbers, ids, {n: table.column(n) for n in table.column_names if n != "id"})
