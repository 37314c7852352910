"""Where records come from: fsspec URLs, finding input files, and reading them as blocks of rows that
remember their source, the same way in a Ray task (`ray_dataset`) and in-process (`read_file`).

Every location is an fsspec URL (local path, s3://, gs://, az://, memory://); Ray Data gets the same
filesystem wrapped as a pyarrow filesystem. Rows carry `__batchgen_source` (file) and `__batchgen_index`
(line or row number) so a record without an id gets a unique one (`batchgen.core.identity`) and an error can
say where it came from.

Ray's `read_json` fails the whole read on one bad line and neither of its readers reports line or row
numbers, so the readers here are small `FileBasedDatasource`s (Ray still does the file listing, splitting
and scheduling): JSONL lines travel as raw bytes (the reader parses each only for its id, which Ray
Data's checkpoint filter needs at the read) and a replica parses them again, one error row each. A reader
runs in one of two modes: `records` (what the replicas get) or `scan` (the input scan's ids and
passthrough types, `batchgen.core.scan`). Compressed JSONL (`.jsonl.gz`, `.bz2`, `.zst`, `.lz4`) is
decompressed here by pyarrow's codecs in both places, and a UTF-8 byte-order mark is not part of a record.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from pyarrow.fs import FSSpecHandler, PyFileSystem

from batchgen.core.identity import InputNames, input_root, row_ids
from batchgen.core.passthrough import infer_fields
from batchgen.record.openai_batch import record_of
from batchgen.record.contract import INPUT_FIELDS, RecordError, parse_json_line

SOURCE, INDEX, LINE, TYPES = "__batchgen_source", "__batchgen_index", "__batchgen_line", "__batchgen_types"
BUDGETED = "__batchgen_budgeted"  # scan mode: the record sets max_thinking_tokens
INTERNAL_COLUMNS = (SOURCE, INDEX, LINE, TYPES, BUDGETED)
EXTENSIONS = {"jsonl": (".jsonl", ".json", ".ndjson"), "parquet": (".parquet", ".pq")}
COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}  # pyarrow's codec names
ROWS_PER_BLOCK = 1024


def open_fs(uri: str, options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) of an fsspec URL; `options` are the spec's `storage` section."""
    options = dict(options or {})
    if "://" in uri and not uri.startswith("file://"):
        # Object-store listings must be fresh: Ray's checkpoint recovery deletes files and then lists again
        # through a copy of this filesystem, and a cached listing names files that are gone.
        options.setdefault("use_listings_cache", False)
    return url_to_fs(uri, **options)


STAGING_PREFIX = "_writing."


class _CommitOnClose:
    """A file written under a hidden `_writing.` name and moved to its real name when closed cleanly: not
    when an exception is on its way through the writer (Ray's JSON writer closes in a `with`), and not
    when a Parquet file lacks its footer (pyarrow's dataset writer closes from C++ after a failure too)."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str):
        self._fs, self._path = fs, path
        parent, name = path.rsplit("/", 1)
        self._staging = f"{parent}/{STAGING_PREFIX}{name}"
        self._file = fs.open(self._staging, "wb")

    def __getattr__(self, name):
        return getattr(self._file, name)

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()
        if sys.exc_info()[0] is None and self._complete():
            self._fs.mv(self._staging, self._path)
        else:
            self._fs.rm(self._staging)

    def _complete(self) -> bool:
        if _format_of(self._path) != "parquet":
            return True
        try:
            pq.read_metadata(self._fs.open(self._staging, "rb"))
        except Exception:  # any unreadable footer: the file is not whole
            return False
        return True


class _StagedWritesHandler(FSSpecHandler):
    """On a local filesystem a file is visible while it is written; data files are staged and renamed
    (atomic on POSIX), so a reader never sees half of one. Object stores need no help: an upload becomes
    visible only when complete."""

    def open_output_stream(self, path, metadata):
        if _format_of(path):
            return pa.PythonFile(_CommitOnClose(self.fs, path), mode="w")
        return super().open_output_stream(path, metadata)


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def arrow_fs(fs: fsspec.AbstractFileSystem) -> pa.fs.FileSystem:
    """The fsspec filesystem as a pyarrow one (what Ray Data takes), staging local data files."""
    return PyFileSystem(_StagedWritesHandler(fs) if _is_local(fs) else FSSpecHandler(fs))


def _compression(path: str) -> str | None:
    return COMPRESSION.get(PurePosixPath(path).suffix)


def _format_of(path: str) -> str | None:
    """jsonl, parquet or None, from the extension (under a compression suffix for JSONL)."""
    if _compression(path):
        path = path[: -len(PurePosixPath(path).suffix)]
        return "jsonl" if path.endswith(EXTENSIONS["jsonl"]) else None
    for fmt, extensions in EXTENSIONS.items():
        if path.endswith(extensions):
            return fmt
    return None


@dataclass(frozen=True)
class InputSet:
    """The input files of a job (sorted, so ids and shards are deterministic), their sizes in bytes and
    format, and how their records are named."""

    root: str
    files: list[str]
    sizes: list[int]
    format: str
    names: InputNames

    @classmethod
    def find(cls, fs: fsspec.AbstractFileSystem, path: str, fmt: str) -> InputSet:
        """Raises FileNotFoundError when nothing is there, ValueError when the format cannot be told."""
        if fs.isdir(path):
            listing = fs.find(path, detail=True)
            found = {f: info for f, info in listing.items()
                     if _format_of(f) and not PurePosixPath(f).name.startswith(("_", "."))}
        elif any(c in path for c in "*?["):
            found = fs.glob(path, detail=True)
        elif fs.exists(path):
            found = {path: fs.info(path)}
        else:
            raise FileNotFoundError(f"input.uri: nothing at {path}")
        if not found:
            raise FileNotFoundError(f"input.uri: no .jsonl or .parquet files at {path}")
        files = sorted(found)
        if fmt == "auto":
            formats = {_format_of(f) for f in files}
            if len(formats) != 1 or None in formats:
                raise ValueError(f"input.format: cannot tell the format of {files[:3]}...; set input.format")
            fmt = formats.pop()
        if fmt == "parquet" and any(_compression(f) for f in files):
            raise ValueError(f"input.uri: Parquet files compress inside; {files[0]} is compressed outside")
        root = input_root(path)
        return cls(root, files, [int(found[f].get("size") or 0) for f in files], fmt, InputNames(root, files))

    def identity(self) -> dict:
        """What makes two inputs the same for resuming: the files (named from the root), sizes, format."""
        return {"format": self.format, "files": [[self.names.names[f], s] for f, s in zip(self.files, self.sizes)]}


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
    records = [parse_json_line(line) for line in lines]
    raw_ids = [r.get("custom_id" if openai else "id") if isinstance(r, dict) else None for r in records]
    return [record_of(r) if openai and isinstance(r, dict) else r for r in records], raw_ids


def _jsonl_blocks(stream, path: str, names: InputNames, duplicates: frozenset, scan: bool,
                  openai: bool = False) -> Iterator[pa.Table]:
    lines, numbers = [], []

    def block() -> pa.Table:
        records, raw_ids = parse_lines(lines, openai)
        ids = row_ids(raw_ids, path, numbers, names, duplicates)
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


def _parquet_blocks(stream, path: str, names: InputNames, duplicates: frozenset, scan: bool) -> Iterator[pa.Table]:
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
        ids = row_ids(raw_ids, path, numbers, names, duplicates)
        if scan:
            budgeted = (pc.is_valid(table.column("max_thinking_tokens")).combine_chunks()
                        if "max_thinking_tokens" in table.column_names else pa.array([False] * table.num_rows))
            yield _block(path, numbers, ids, _scan_columns(passthrough if first == 0 else pa.schema([]), budgeted))
        else:
            yield _block(path, numbers, ids, {n: table.column(n) for n in table.column_names if n != "id"})
        first += table.num_rows


def read_stream(stream, path: str, fmt: str, names: InputNames, duplicates: frozenset = frozenset(),
                scan: bool = False) -> Iterator[pa.Table]:
    """Blocks of rows from one open input file (raw bytes; decompressed here): `id`, source, index, and
    the raw line (JSONL) or the file's columns (Parquet), or in `scan` mode the passthrough types."""
    if _compression(path):
        stream = pa.CompressedInputStream(stream, _compression(path))
    if fmt == "parquet":
        yield from _parquet_blocks(stream, path, names, duplicates, scan)
    else:
        yield from _jsonl_blocks(stream, path, names, duplicates, scan, openai=fmt == "openai")


def read_file(fs: fsspec.AbstractFileSystem, inputs: InputSet, path: str, duplicates: frozenset = frozenset(),
              scan: bool = False) -> Iterator[pa.Table]:
    """The same blocks the Ray reader gives, read in-process (for `batchgen validate`)."""
    with fs.open(path, "rb") as stream:
        yield from read_stream(stream, path, inputs.format, inputs.names, duplicates, scan)


def ray_dataset(fs: fsspec.AbstractFileSystem, inputs: InputSet, duplicates: frozenset = frozenset(),
                scan: bool = False):
    """A Ray Dataset over the input files (streamed: nothing is materialized on the driver)."""
    import ray.data
    from ray.data.datasource import FileBasedDatasource

    class RecordsDatasource(FileBasedDatasource):
        def _read_stream(self, f, path):
            yield from read_stream(f, path, inputs.format, inputs.names, duplicates, scan)

        def _open_input_source(self, filesystem, path, **open_args):
            # Raw bytes, always: `read_stream` decompresses, the same way `batchgen validate` reads.
            return filesystem.open_input_file(path)

    return ray.data.read_datasource(RecordsDatasource(inputs.files, filesystem=arrow_fs(fs)))
