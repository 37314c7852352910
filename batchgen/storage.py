"""Where records live: fsspec URLs, finding input files, reading them as rows that remember their source,
and the files batchgen writes beside its results.

Every location is an fsspec URL (local path, s3://, gs://, az://, memory://); Ray Data gets the same
filesystem wrapped as a pyarrow filesystem. Input rows carry `__source` (file) and `__index` (line or row
number) so a record without an id gets a deterministic one and an error can say where it came from.

Ray's `read_json` fails the whole read on one bad line and neither of its readers reports line or row
numbers, so the two readers here are small `FileBasedDatasource`s (Ray still does the file listing,
splitting and scheduling): JSONL lines stay raw bytes until a replica parses them, one error row each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import PurePosixPath

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from pyarrow.fs import FSSpecHandler, PyFileSystem

from batchgen.records import parse_json_line, row_ids

SOURCE, INDEX, LINE = "__source", "__index", "__line"
INTERNAL_COLUMNS = (SOURCE, INDEX, LINE)
EXTENSIONS = {"jsonl": (".jsonl", ".json", ".ndjson"), "parquet": (".parquet", ".pq")}
STATS_FILE, SUCCESS_FILE, JOB_FILE = "_stats.json", "_SUCCESS", "_job.json"
ROWS_PER_BLOCK = 1024


def open_fs(uri: str, options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    options = dict(options or {})
    if "://" in uri and not uri.startswith("file://"):
        # Object-store listings must be fresh: Ray's checkpoint recovery deletes files and then lists again
        # through a copy of this filesystem, and a cached listing names files that are gone.
        options.setdefault("use_listings_cache", False)
    return url_to_fs(uri, **options)


STAGING_PREFIX = "_writing."


class _CommitOnClose:
    """A file written under a hidden `_writing.` name and moved to its real name when closed."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str):
        self._fs, self._path = fs, path
        parent, name = path.rsplit("/", 1)
        self._staging = f"{parent}/{STAGING_PREFIX}{name}"
        self._file = fs.open(self._staging, "wb")

    def __getattr__(self, name):
        return getattr(self._file, name)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            self._fs.mv(self._staging, self._path)


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
    return PyFileSystem(_StagedWritesHandler(fs) if _is_local(fs) else FSSpecHandler(fs))


def clear_staging(fs: fsspec.AbstractFileSystem, prefix: str) -> None:
    """Removes the staged files a crash left half-written (never visible as data files)."""
    if fs.exists(prefix):
        for path in fs.find(prefix):
            if PurePosixPath(path).name.startswith(STAGING_PREFIX):
                fs.rm(path)


def _format_of(path: str) -> str | None:
    for fmt, extensions in EXTENSIONS.items():
        if path.endswith(extensions):
            return fmt
    return None


def find_inputs(fs: fsspec.AbstractFileSystem, path: str, fmt: str) -> tuple[list[str], str]:
    """The input files (sorted, so ids and shards are deterministic) and their format."""
    if fs.isdir(path):
        files = [f for f in fs.find(path) if _format_of(f) and not PurePosixPath(f).name.startswith(("_", "."))]
    elif any(c in path for c in "*?["):
        files = fs.glob(path)
    elif fs.exists(path):
        files = [path]
    else:
        raise FileNotFoundError(f"input.uri: nothing at {path}")
    if not files:
        raise FileNotFoundError(f"input.uri: no .jsonl or .parquet files at {path}")
    files = sorted(files)
    if fmt == "auto":
        formats = {_format_of(f) for f in files}
        if len(formats) != 1 or None in formats:
            raise ValueError(f"input.format: cannot tell the format of {files[:3]}...; set input.format")
        fmt = formats.pop()
    return files, fmt


def jsonl_blocks(stream, path: str, duplicates: frozenset = frozenset()) -> Iterator[pa.Table]:
    """Non-empty lines as raw bytes with their 1-based line numbers and row ids."""
    lines, numbers = [], []
    for number, line in enumerate(_lines(stream), start=1):
        if line.strip():
            lines.append(line.rstrip(b"\r\n"))
            numbers.append(number)
        if len(lines) == ROWS_PER_BLOCK:
            yield _jsonl_block(path, numbers, lines, duplicates)
            lines, numbers = [], []
    if lines:
        yield _jsonl_block(path, numbers, lines, duplicates)


def _jsonl_block(path: str, numbers: list[int], lines: list[bytes], duplicates: frozenset) -> pa.Table:
    raw_ids = [r.get("id") if isinstance(r := parse_json_line(line), dict) else None for line in lines]
    return _block(path, numbers, row_ids(raw_ids, path, numbers, duplicates), {LINE: pa.array(lines, pa.binary())})


def _lines(stream) -> Iterator[bytes]:
    pending = b""
    while chunk := stream.read(1 << 20):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def parquet_blocks(stream, path: str, duplicates: frozenset = frozenset()) -> Iterator[pa.Table]:
    """Rows with their 0-based row numbers and row ids; every other column keeps its Parquet type."""
    first = 0
    for batch in pq.ParquetFile(stream).iter_batches(batch_size=ROWS_PER_BLOCK):
        table = pa.Table.from_batches([batch])
        numbers = list(range(first, first + table.num_rows))
        first += table.num_rows
        raw_ids = table.column("id").to_pylist() if "id" in table.column_names else [None] * table.num_rows
        columns = {name: table.column(name) for name in table.column_names if name != "id"}
        yield _block(path, numbers, row_ids(raw_ids, path, numbers, duplicates), columns)


def _block(path: str, numbers: list[int], ids: list[str], columns: dict) -> pa.Table:
    # The string `id` column exists from the read on: Ray Data's checkpointing filters finished rows by it.
    return pa.table({"id": pa.array(ids, pa.string()), SOURCE: pa.array([path] * len(numbers)),
                     INDEX: pa.array(numbers, pa.int64()), **columns})


def read_blocks(fs: fsspec.AbstractFileSystem, path: str, fmt: str, duplicates: frozenset = frozenset()) -> Iterator[pa.Table]:
    """The same rows the Ray readers give, read here in-process (for `batchgen validate`)."""
    with fs.open(path, "rb") as stream:
        yield from (jsonl_blocks if fmt == "jsonl" else parquet_blocks)(stream, path, duplicates)


def ray_dataset(fs: fsspec.AbstractFileSystem, files: list[str], fmt: str, duplicates: frozenset = frozenset()):
    """A Ray Dataset over the input files (streamed: nothing is materialized on the driver)."""
    import ray.data
    from ray.data.datasource import FileBasedDatasource

    read = jsonl_blocks if fmt == "jsonl" else parquet_blocks

    class RecordsDatasource(FileBasedDatasource):
        def _read_stream(self, f, path):
            yield from read(f, path, duplicates)

        def _open_input_source(self, filesystem, path, **open_args):
            # Parquet needs a seekable file (its footer comes first); JSONL is read as a stream.
            return filesystem.open_input_file(path) if fmt == "parquet" else super()._open_input_source(filesystem, path, **open_args)

    return ray.data.read_datasource(RecordsDatasource(files, filesystem=arrow_fs(fs)))


def filename_provider(extension: str):
    """Data files named `part-<write id>-<task>.<ext>`: `.jsonl` for JSON Lines (Ray would say `.json`)."""
    from ray.data.datasource import FilenameProvider

    class PartNames(FilenameProvider):
        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"part-{write_uuid}-{task_index:06d}.{extension}"

    return PartNames()


def data_files(fs: fsspec.AbstractFileSystem, prefix: str) -> list[str]:
    """The data files under an output prefix (not the `_`-prefixed ones batchgen keeps beside them)."""
    if not fs.exists(prefix):
        return []
    prefix = prefix.rstrip("/")
    return sorted(
        f for f in fs.find(prefix)
        if _format_of(f) and not any(part.startswith("_") for part in PurePosixPath(f[len(prefix):]).parts)
    )


def write_marker(fs: fsspec.AbstractFileSystem, prefix: str, name: str, payload: dict | None = None) -> None:
    fs.makedirs(prefix, exist_ok=True)
    with fs.open(f"{prefix.rstrip('/')}/{name}", "w") as handle:
        handle.write(json.dumps(payload, indent=2) + "\n" if payload is not None else "")
