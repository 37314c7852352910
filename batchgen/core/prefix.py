"""The output prefix: everything batchgen keeps under `output.uri`, and what identity a prefix has.

    output.uri/part-<write>-<task>.parquet   data files (one schema for all: `blocks.schema`)
    output.uri/_job.json                     the manifest: spec, input identity, fingerprint
    output.uri/_checkpoint/                  Ray Data's checkpoint: the ids of every committed row
    output.uri/_stats.json, _SUCCESS         written last; _SUCCESS only for a job that succeeded

A prefix belongs to one job: the same answer-shaping settings (model, engine, defaults, budget, output
format) over the same input (its files, named from the input root, and their sizes). A run onto a prefix
starts it (nothing committed there yet, even if an earlier run wrote its manifest and then failed at
start), resumes it (same identity, not complete), finds it complete (same identity, `_SUCCESS`), or is
refused with one line that says what to do: another input is always refused (its records' ids could
match rows already written, and they would be skipped silently); other settings are refused unless
`--allow-changed-spec`.

Owns the prefix's layout and reading it without Ray: its state, manifest, markers, data files, staged
leftovers, and the ids Ray Data's checkpoint committed (the `_checkpoint/` files are plain Parquet).
Ray's own pieces for a prefix, its checkpoint config and data file names, are `batchgen.cluster.ray_io`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc

from batchgen.record.rows import OUTPUT_SCHEMA
from batchgen.record.templates import PromptPlan
from batchgen.spec.job import JobSpec
from batchgen.core.stats import JobStats, RowCounts
from batchgen.core.storage import STAGING_PREFIX, InputSet, arrow_fs, format_of, open_fs, parquet_file

JOB_FILE, STATS_FILE, SUCCESS_FILE, CHECKPOINT_DIR = "_job.json", "_stats.json", "_SUCCESS", "_checkpoint"
BATCH_OUTPUT = "_batch_output.jsonl"  # output.format openai: OpenAI Batch API output lines, written last
SHAPING = ("model", "engine", "defaults", "budget", "seed")  # what makes two jobs' rows differ
# Ray Data's name for a checkpoint written before its data file and not yet committed
# (ray/data/checkpoint/checkpoint_writer.py: PENDING_CHECKPOINT_SUFFIX); a test checks it against Ray's.
PENDING_SUFFIX = ".pending.parquet"
# A write task's checkpoint is named after its data files' common stem (`part-<write>-<task>`; Ray Data's
# Parquet writer adds `-<n>` per file): plan_write_op.py's `_generate_base_filename` in Ray 2.60.
_COMMIT_STEM = re.compile(r"^(part-[0-9a-f]+-\d+)(?:-\d+)?\.[a-z]+$")


def commit_stem(path: str) -> str | None:
    """The stem of the write that made the data file `path` (`part-<write>-<task>`), None for another file."""
    stem = _COMMIT_STEM.match(PurePosixPath(path).name)
    return stem.group(1) if stem else None


class PrefixRefused(RuntimeError):
    """The output prefix holds results this run must not add to; the message says what to do."""


@dataclass(frozen=True)
class Manifest:
    """`_job.json`: the spec as run, the input's identity, and the fingerprint of both."""

    spec: dict
    input: dict
    prompt: dict | None = None
    columns: dict | None = None

    @classmethod
    def of(cls, spec: JobSpec, inputs: InputSet, prompt: PromptPlan | None = None) -> Manifest:
        """The manifest of running `spec` over `inputs` with the prompt section's resolved `prompt` (its
        examples are part of what shapes an answer, and they live in a file the spec only names)."""
        return cls(spec.model_dump(mode="json"), inputs.identity(), prompt.identity() if prompt else None,
                   inputs.columns.shaping() or None)

    @property
    def shaping(self) -> dict:
        """The settings that shape a row's answer (`SHAPING`, the output format, the prompt's templates and
        examples, the columns read, the grading; keys only where set, so older prefixes keep their
        fingerprint)."""
        shaping = {**{k: self.spec.get(k) for k in SHAPING}, "output_format": self.spec["output"]["format"]}
        return shaping | {k: v for k, v in (("prompt", self.prompt), ("columns", self.columns),
                                             ("grade", self.spec.get("grade"))) if v}

    @property
    def fingerprint(self) -> str:
        """A short hash of the shaping settings and the input's identity: equal for the same job."""
        whole = {"shaping": self.shaping, "input": self.input}
        return hashlib.sha256(json.dumps(whole, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        """`_job.json`'s content."""
        return {"fingerprint": self.fingerprint, "spec": self.spec, "input": self.input} | {
            k: v for k, v in (("prompt", self.prompt), ("columns", self.columns)) if v}


def data_files(fs, prefix: str) -> list[str]:
    """The data files under a prefix: what a reader should take (not the `_`-prefixed files batchgen keeps
    beside them, nor staged ones)."""
    prefix = prefix.rstrip("/")
    if not fs.exists(prefix):
        return []
    return sorted(
        f for f in fs.find(prefix)
        if format_of(f) and not any(part.startswith("_") for part in PurePosixPath(f[len(prefix):]).parts)
    )


def _describe(identity: dict | None) -> str:
    files = (identity or {}).get("files") or []
    if len(files) == 1:
        return f"{files[0][0]}, {files[0][1]:,} bytes"
    return f"{len(files)} files" + (f", first {files[0][0]}" if files else "")


class OutputPrefix:
    """One `output.uri`: its state, manifest, markers, data files, staging and checkpoint folder."""

    def __init__(self, uri: str, storage: dict | None = None):
        self.uri = uri
        self.fs, path = open_fs(uri, storage)
        self.path = path.rstrip("/")

    def _file(self, name: str) -> str:
        return f"{self.path}/{name}"

    def data_files(self) -> list[str]:
        """The prefix's data files (`data_files`)."""
        return data_files(self.fs, self.path)

    def final_commits(self) -> dict[str, str]:
        """Each write Ray Data's checkpoint has committed and no retry holds pending, as its stem (`part-<write>-
        <task>`, `commit_stem`) -> its checkpoint file: its data files are whole, and no resume deletes them.
        A write without its commit may be half-written (the next run deletes it); so may one whose task Ray
        runs again after its commit (a pending checkpoint beside the committed one, until the retry commits).
        One listing of `_checkpoint/`."""
        listing = self._checkpoint_listing()
        pending = {PurePosixPath(f).name.removesuffix(PENDING_SUFFIX) for f in listing if f.endswith(PENDING_SUFFIX)}
        return {stem: f for f in listing if f.endswith(".parquet") and not f.endswith(PENDING_SUFFIX)
                and (stem := PurePosixPath(f).name.removesuffix(".parquet")) not in pending}

    def committed_data_files(self, stems: set[str] | None = None) -> list[str]:
        """The data files of the writes `stems` (None: every final commit's, `final_commits`)."""
        stems = set(self.final_commits()) if stems is None else stems
        return [f for f in self.data_files() if commit_stem(f) in stems]

    def url(self, path: str) -> str:
        """A path under the prefix as a full URL (`file:///...`, `s3://...`), as other readers name it."""
        return self.fs.unstrip_protocol(path)

    def rows_in(self, path: str) -> int:
        """A Parquet data file's row count, from its footer."""
        with self.fs.open(path, "rb") as handle, parquet_file(handle) as parquet:
            return parquet.metadata.num_rows

    def committed_records(self) -> int:
        """Records Ray Data's checkpoint has committed (their data files are whole and counted)
        (`CommittedRecords`, read afresh)."""
        return CommittedRecords(self).count()

    def committed_ids(self, name: str) -> pa.ChunkedArray:
        """The row ids one committed checkpoint file holds (a record's once per row)."""
        from batchgen.core.identity import ROW_KEY

        with self.fs.open(name, "rb") as handle, parquet_file(handle) as parquet:
            return parquet.read(columns=[ROW_KEY], use_threads=False).column(ROW_KEY)

    def checkpoint_files(self) -> list[str]:
        """The committed files of Ray Data's checkpoint (a pending one's data file may not be whole)."""
        return [f for f in self._checkpoint_listing() if f.endswith(".parquet") and not f.endswith(PENDING_SUFFIX)]

    def _checkpoint_listing(self) -> list[str]:
        folder = self.checkpoint_path
        return self.fs.find(folder) if self.fs.exists(folder) else []

    def state(self, manifest: Manifest, allow_changed_spec: bool = False) -> str:
        """"new", "resume" or "done"; raises PrefixRefused when this prefix is another job's."""
        if not self.fs.exists(self._file(JOB_FILE)):
            if self.data_files():
                raise PrefixRefused(f"output.uri {self.uri} holds data files that no batchgen job wrote there; "
                                    "write to a new output.uri")
            return "new"
        if not self.data_files() and not self.committed_records():
            return "new"  # an earlier run stopped before committing anything: nothing to protect
        previous = self.read_manifest()
        if previous.get("input") != manifest.input:
            raise PrefixRefused(
                f"output.uri {self.uri} holds results for another input ({_describe(previous.get('input'))}; "
                f"this run reads {_describe(manifest.input)}): write to a new output.uri")
        before = Manifest(previous["spec"], previous["input"], previous.get("prompt"), previous.get("columns"))
        if before.fingerprint != manifest.fingerprint and not allow_changed_spec:
            changed = [k for k in {**before.shaping, **manifest.shaping}
                       if before.shaping.get(k) != manifest.shaping.get(k)]
            raise PrefixRefused(
                f"output.uri {self.uri} holds results of a different spec (changed: {', '.join(changed)}); "
                "write to a new output.uri, or allow it explicitly (--allow-changed-spec)")
        return "done" if self.fs.exists(self._file(SUCCESS_FILE)) else "resume"

    def clear_staging(self) -> None:
        """Removes staged files a crash left half-written (never visible as data files)."""
        if self.fs.exists(self.path):
            for path in self.fs.find(self.path):
                if PurePosixPath(path).name.startswith(STAGING_PREFIX):
                    self.fs.rm(path)

    def _write(self, name: str, payload: dict | None = None) -> None:
        self.fs.makedirs(self.path, exist_ok=True)
        with self.fs.open(self._file(name), "w") as handle:
            handle.write(json.dumps(payload, indent=2) + "\n" if payload is not None else "")

    def write_manifest(self, manifest: Manifest, records: int | None = None) -> None:
        """`records`: the input's record count, known once the scan has run (`batchgen inspect` reads it)."""
        self._write(JOB_FILE, manifest.to_json() | ({"records": records} if records is not None else {}))

    def write_stats(self, stats: JobStats) -> None:
        """`_stats.json`."""
        self._write(STATS_FILE, stats.to_json())

    def write_success(self) -> None:
        """`_SUCCESS`, the marker of a job that succeeded (written last)."""
        self._write(SUCCESS_FILE)

    def read_stats(self) -> JobStats:
        """`_stats.json` as written."""
        return JobStats.from_json(json.loads(self.fs.cat_file(self._file(STATS_FILE))))

    def read_manifest(self) -> dict | None:
        """`_job.json` as written (with `records`, the input's record count, once the job's scan ended), or
        None where no batchgen job wrote one."""
        if not self.fs.exists(self._file(JOB_FILE)):
            return None
        return json.loads(self.fs.cat_file(self._file(JOB_FILE)))

    def has(self, name: str) -> bool:
        """Whether the file `name` (`_SUCCESS`, `_stats.json`, ...) is under the prefix."""
        return self.fs.exists(self._file(name))

    def batches(self, columns: list[str] | None, files: list[str] | None = None,
                rows_per_batch: int = 4096) -> Iterator[pa.RecordBatch]:
        """The data files' rows in batches, over those of `columns` they have (None: all), file by file.
        The format is read from the files' extension; of JSON Lines files only the row contract's columns
        are read (`_json_lines_batches`).

        Read on the calling thread (`storage.parquet_file`), each file closed before the next is opened,
        not by pyarrow's dataset readers (its scanner, `pq.read_table`): those read on pyarrow's own
        threads through this Python filesystem, and a reader or file they leave behind (a scan stopped
        early, `run --show`; a file never closed) is destroyed on one of those threads while Python shuts
        down, where taking the GIL ends the thread and the process aborts (`terminate called without an
        active exception`: 11 of 30 `batchgen inspect` runs before this, 0 of 30 after; 1 of 20 on a
        loaded machine until pre-buffering, which reads ahead on those threads too, was turned off)."""
        files = self.data_files() if files is None else files
        for path in files:
            if format_of(path) == "jsonl":
                wanted = OUTPUT_SCHEMA if columns is None else pa.schema([f for f in OUTPUT_SCHEMA if f.name in columns])
                yield from self._json_lines_batches([path], wanted, rows_per_batch)
                continue
            with self.fs.open(path, "rb") as handle, parquet_file(handle) as parquet:
                names = parquet.schema_arrow.names
                chosen = None if columns is None else [c for c in columns if c in names]
                yield from parquet.iter_batches(batch_size=rows_per_batch, columns=chosen, use_threads=False)

    def _json_lines_batches(self, files: list[str], schema: pa.Schema, rows_per_batch: int):
        """JSON Lines data files as batches of the row contract's `schema`, read line by line in Python:
        a passthrough value may change type from row to row (`blocks.json_lines`), which Arrow's JSON
        reader refuses even for a column it is told to ignore."""
        rows = []
        for path in files:
            with self.fs.open(path, "rb") as handle:
                for line in handle:
                    if line.strip():
                        row = json.loads(line)
                        rows.append({name: row.get(name) for name in schema.names})
                    if len(rows) == rows_per_batch:
                        yield pa.RecordBatch.from_pylist(rows, schema=schema)
                        rows = []
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    def rows(self):
        """Every row written, as dicts, data file by data file (streamed: one batch in memory at a time)."""
        for batch in self.batches(None):
            yield from batch.to_pylist()

    def write_lines(self, name: str, lines) -> None:
        """Text lines into `name` under the prefix (streamed)."""
        with self.fs.open(self._file(name), "w") as handle:
            for line in lines:
                handle.write(line + "\n")

    def read(self, columns: list[str], files: list[str] | None = None) -> pa.Table:
        """`columns` of every row written (an empty table of the output schema's types when none are)."""
        batches = list(self.batches(columns, files))
        if not batches:
            return OUTPUT_SCHEMA.empty_table().select([c for c in columns if c in OUTPUT_SCHEMA.names])
        return pa.concat_tables([pa.Table.from_batches([b]) for b in batches], promote_options="default")

    def row_counts(self) -> RowCounts:
        """Counts over the data files as written."""
        return RowCounts.of(self.batches(list(RowCounts.COLUMNS)))

    def arrow_fs(self):
        """The prefix's filesystem as a pyarrow one, staging local data files (`storage.arrow_fs`)."""
        return arrow_fs(self.fs)

    @property
    def checkpoint_path(self) -> str:
        """The folder of Ray Data's checkpoint under the prefix (`_checkpoint/`; its config is
        `batchgen.cluster.ray_io.checkpoint_config`)."""
        return self._file(CHECKPOINT_DIR)


class CommittedRecords:
    """Counts the records an output prefix's checkpoint has committed, reading each committed checkpoint
    file once, so a job's progress can be polled from what reached the output: the sum of each file's
    distinct ids, as a record's rows (one per sample and budget) are committed together, in one file (a
    replica returns a record's rows in one block, `batchgen.core.blocks`). Memory: one count per file."""

    def __init__(self, prefix: OutputPrefix):
        self.prefix = prefix
        self._counts: dict[str, int] = {}

    def count(self) -> int:
        """Records committed so far (reads the files committed since the last call)."""
        for name in self.prefix.checkpoint_files():
            if name not in self._counts:
                self._counts[name] = pc.count_distinct(self.prefix.committed_ids(name)).as_py()
        return sum(self._counts.values())
