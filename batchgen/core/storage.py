"""Locations: fsspec URLs (`open_fs`) and the same filesystem as a pyarrow one (`arrow_fs`, what Ray Data
takes), finding a job's input files (`InputSet`), the format and compression a path's extension names
(`format_of`, `compression_of`), and staged local writes (a data file becomes visible whole or not at all).

Every location is an fsspec URL (local path, s3://, gs://, az://, memory://). Reading input files as blocks
is `batchgen.core.reading`; Ray's datasource over them is `batchgen.cluster.ray_io`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import PurePosixPath

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from pyarrow.fs import FSSpecHandler, PyFileSystem

from batchgen.core.deadline import in_thread
from batchgen.core.failures import root_cause
from batchgen.core.columns import InputColumns
from batchgen.core.identity import InputNames, input_root

EXTENSIONS = {"jsonl": (".jsonl", ".json", ".ndjson"), "parquet": (".parquet", ".pq")}
COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}  # pyarrow's codec names


def open_fs(uri: str, options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) of an fsspec URL; `options` are the spec's `storage` section."""
    options = dict(options or {})
    if "://" in uri and not uri.startswith("file://"):
        # Object-store listings must be fresh: Ray's checkpoint recovery deletes files and then lists again
        # through a copy of this filesystem, and a cached listing names files that are gone.
        options.setdefault("use_listings_cache", False)
    return url_to_fs(uri, **options)


def unreachable(uri: str, options: dict | None = None, timeout_s: float = 30.0) -> str:
    """"" when the store holding `uri` answers (whether or not `uri` exists), else why not, in one line:
    its client's error, or that it gave no answer within `timeout_s` seconds."""
    def ask() -> None:
        fs, path = open_fs(uri, options)
        fs.exists(path)

    try:
        in_thread(ask, "batchgen-store-question").result(timeout=timeout_s)
    except TimeoutError:
        return f"no answer in {timeout_s:.0f} s"
    except Exception as error:  # whatever the store's client raises is the answer
        return root_cause(error)
    return ""


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
        if format_of(self._path) != "parquet":
            return True
        try:
            with self._fs.open(self._staging, "rb") as handle:
                parquet_file(handle).close()  # reads the footer: a file cut short has none
        except Exception:  # any unreadable footer: the file is not whole
            return False
        return True


def parquet_file(handle) -> pq.ParquetFile:
    """A Parquet reader over an open file that reads on the calling thread only. pyarrow's default
    (`pre_buffer=True`) reads ahead through its IO thread pool, and those threads then hold the Python
    file object: one destroyed there while Python shuts down takes the GIL on a finalizing interpreter and
    the process aborts (`terminate called without an active exception`; seen in 1 of 20 `batchgen
    inspect` runs on a loaded machine until every reader here was made this way)."""
    return pq.ParquetFile(handle, pre_buffer=False)


class _StagedWritesHandler(FSSpecHandler):
    """On a local filesystem a file is visible while it is written; data files are staged and renamed
    (atomic on POSIX), so a reader never sees half of one. Object stores need no help: an upload becomes
    visible only when complete."""

    def open_output_stream(self, path, metadata):
        if format_of(path):
            return pa.PythonFile(_CommitOnClose(self.fs, path), mode="w")
        return super().open_output_stream(path, metadata)


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def arrow_fs(fs: fsspec.AbstractFileSystem) -> pa.fs.FileSystem:
    """The fsspec filesystem as a pyarrow one (what Ray Data takes), staging local data files."""
    return PyFileSystem(_StagedWritesHandler(fs) if _is_local(fs) else FSSpecHandler(fs))


def compression_of(path: str) -> str | None:
    """pyarrow's codec name for a compressed file's suffix (`.gz`: gzip), or None."""
    return COMPRESSION.get(PurePosixPath(path).suffix)


def format_of(path: str) -> str | None:
    """jsonl, parquet or None, from the extension (under a compression suffix for JSONL)."""
    if compression_of(path):
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
    columns: InputColumns = InputColumns()
    table: dict | None = None  # a lake table's data files: identifier, snapshot id, row filter (`lake.reading`)

    @classmethod
    def find(cls, fs: fsspec.AbstractFileSystem, path: str, fmt: str, columns: InputColumns = InputColumns()) -> InputSet:
        """The input files at `path` (a file, a folder, a glob) read with `columns`. Raises FileNotFoundError
        when nothing is there, ValueError when the format cannot be told."""
        if fs.isdir(path):
            listing = fs.find(path, detail=True)
            found = {f: info for f, info in listing.items()
                     if format_of(f) and not PurePosixPath(f).name.startswith(("_", "."))}
        elif any(c in path for c in "*?["):
            found = fs.glob(path, detail=True)
        elif fs.exists(path):
            found = {path: fs.info(path)}
        else:
            raise FileNotFoundError(f"input.uri: nothing at {path}")
        if not found:
            raise FileNotFoundError(f"input.uri: no .jsonl or .parquet files at {path}")
        return cls.of_files(fs, path, found, fmt, columns)

    @classmethod
    def of_files(cls, fs: fsspec.AbstractFileSystem, path: str, found: dict | list, fmt: str,
                 columns: InputColumns = InputColumns()) -> InputSet:
        """The input set of the files `found` (paths, or path -> fsspec info) under `path`."""
        if not isinstance(found, dict):
            found = {f: fs.info(f) for f in found}
        files = sorted(found)
        if fmt == "auto":
            formats = {format_of(f) for f in files}
            if len(formats) != 1 or None in formats:
                raise ValueError(f"input.format: cannot tell the format of {files[:3]}...; set input.format")
            fmt = formats.pop()
        if fmt == "parquet" and any(compression_of(f) for f in files):
            raise ValueError(f"input.uri: Parquet files compress inside; {files[0]} is compressed outside")
        root = input_root(path)
        return cls(root, files, [int(found[f].get("size") or 0) for f in files], fmt, InputNames(root, files), columns)

    def identity(self) -> dict:
        """What makes two inputs the same for resuming: the files (named from the root), sizes, format, and
        what decides their records and ids (`InputColumns.identity`, the partition keys; only where they
        differ from the defaults)."""
        identity = {"format": self.format, "files": [[self.names.names[f], s] for f, s in zip(self.files, self.sizes)]}
        columns = self.columns.identity()
        # Partition folders are columns now: an output started before they were (same files, no partition
        # columns) is another input's, not one whose files would disagree on their schema.
        keys = sorted({k for f in self.files for k in self.columns.partitions(self.names.relative(f))})
        columns |= {"partition_keys": keys} if keys else {}
        return identity | ({"columns": columns} if columns else {}) | ({"table": self.table} if self.table else {})
