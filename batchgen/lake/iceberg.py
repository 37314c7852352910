"""The Iceberg edge: a catalog as PyIceberg configures one, the output table made ready for a job's rows
(created, evolved, or the job refused), its files registered in commits, and what a table holds of a prefix.

Everything here is PyIceberg's own operations: `create_table_if_not_exists`, `update_schema().union_by_name`,
and `add_files`, which registers Parquet files already written (their footers read for the column metrics,
no row rewritten) as one append snapshot whose summary carries batchgen's properties. Which of a prefix's
files a table holds is read from the table itself (its current snapshot's manifests), so no ledger of
ours can disagree with it; a commit PyIceberg reports as not made (`CommitFailedException`: another writer
got there first) is made again on the fresh table, and one whose outcome is unknown is made again only
with the files the fresh table still lacks.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pyarrow as pa

from batchgen.lake.types import LakeRefused, lake_schema, lake_type
from batchgen.spec.job import TableSpec

__all__ = ["JOB_COLUMN", "PROPERTY", "FilesSchema", "IcebergTable", "catalog_properties", "committed_by_jobs",
           "snapshot_properties"]

JOB_COLUMN = "job"  # each row of a table names the job that wrote it: two jobs can share a table
# The snapshot summary's keys batchgen writes (Iceberg summaries are string to string).
PROPERTY = {"job": "batchgen.job", "fingerprint": "batchgen.fingerprint", "version": "batchgen.version",
            "output": "batchgen.output", "files": "batchgen.files"}
_COMMIT_TRIES = 8


def snapshot_properties(job: str, fingerprint: str, output: str) -> dict[str, str]:
    """The batchgen entries of a snapshot's summary: the job's name, its output's fingerprint
    (`prefix.Manifest`), the batchgen version, and its output prefix's URL (where `inspect` finds the job)."""
    from importlib.metadata import version

    return {PROPERTY["job"]: job, PROPERTY["fingerprint"]: fingerprint, PROPERTY["version"]: version("batchgen"),
            PROPERTY["output"]: output}


def catalog_properties(spec: TableSpec, storage: dict) -> dict[str, str]:
    """The catalog's properties: the spec's, a scheme-less local warehouse made absolute (`file://`), and
    the storage section's S3 endpoint where the spec gives the catalog none (one endpoint for the job's
    files and the table's). Credentials come from the environment (PyIceberg's own variables and AWS's).
    A SQLite catalog's folder is made here."""
    properties = dict(spec.catalog)
    warehouse = properties.get("warehouse")
    if warehouse and "://" not in warehouse:
        properties["warehouse"] = "file://" + os.path.abspath(warehouse)
    if storage.get("endpoint_url") and "s3.endpoint" not in properties:
        properties["s3.endpoint"] = storage["endpoint_url"]
    database = properties.get("uri", "")
    if properties.get("type") == "sql" and database.startswith("sqlite:///") and database != "sqlite:///:memory:":
        # SQLite makes its file, not the folder it goes in
        os.makedirs(os.path.dirname(os.path.abspath(database.removeprefix("sqlite:///"))), exist_ok=True)
    return properties


def _widens(ours: pa.DataType, theirs: pa.DataType) -> bool:
    """Whether Iceberg promotes `ours` to `theirs` (int to long, float to double, a decimal's precision up)."""
    if pa.types.is_decimal(ours) and pa.types.is_decimal(theirs):
        return ours.scale == theirs.scale and ours.precision < theirs.precision
    return (ours, theirs) in ((pa.int32(), pa.int64()), (pa.float32(), pa.float64()))


@dataclass(frozen=True)
class FilesSchema:
    """What a job writes into a table: its data files' `schema` (table-friendly types; the job column after
    the job's own, then the table's columns this job's input left null throughout) and the `untyped`
    columns (null throughout) that the table neither has nor gets."""

    schema: pa.Schema
    untyped: tuple[str, ...]


class IcebergTable:
    """One Iceberg table in its catalog (`spec`: identifier and catalog; `storage`: the job's storage
    section). The catalog is loaded here; the table is read afresh for every decision."""

    def __init__(self, spec: TableSpec, storage: dict | None = None):
        try:
            from pyiceberg.catalog import load_catalog
        except ImportError:
            raise LakeRefused("an Iceberg table needs PyIceberg: pip install 'batchgen[iceberg]'") from None
        self.identifier = spec.identifier
        self.catalog = load_catalog(spec.catalog_name, **catalog_properties(spec, storage or {}))

    def load(self):
        """The table as the catalog has it now (PyIceberg's `Table`); raises NoSuchTableError."""
        return self.catalog.load_table(self.identifier)

    def prepare(self, output: pa.Schema, partition_by: list[str]) -> FilesSchema:
        """Makes the table ready for rows of Arrow schema `output` (`blocks.schema`: the row contract and the
        passthrough columns) and returns the schema the job's data files are written with. A missing
        table is created (with its namespace, identity-partitioned by `partition_by`); a table lacking some
        of the columns, or holding one in a type this job's widens (int to long, float to double), is
        evolved; a column this job holds in a type the table's is not and does not widen to refuses the
        job (LakeRefused, one line naming the column and both types), before anything is written."""
        from pyiceberg.exceptions import CommitFailedException, ValidationError

        if JOB_COLUMN in output.names:
            raise LakeRefused(f"input column {JOB_COLUMN!r}: a table's {JOB_COLUMN} column names the job that wrote "
                              f"each row; rename the input's column or leave it out (input.columns)")
        ours, untyped = lake_schema(output.append(pa.field(JOB_COLUMN, pa.string())))
        for attempt in range(_COMMIT_TRIES):
            table = self._created(ours, partition_by)
            theirs = self._arrow_schema(table)
            written, evolve = self._reconciled(ours, theirs)
            # A column null in every record: written in the table's type where the table has one.
            written = pa.schema([*written, *(theirs.field(name) for name in untyped if name in theirs.names)])
            files = FilesSchema(written, tuple(name for name in untyped if name not in theirs.names))
            if not evolve:
                return files
            try:
                with table.update_schema() as update:
                    update.union_by_name(written)
                return files
            except CommitFailedException:
                time.sleep(0.1 * 2 ** attempt)  # another writer changed the table: decide again on the new one
            except (ValueError, ValidationError) as error:  # PyIceberg's refusal of a nested change it cannot make
                raise LakeRefused(f"table {self.identifier}: {error}") from None
        raise LakeRefused(f"table {self.identifier}: its schema kept changing under {_COMMIT_TRIES} tries to evolve it")

    def _created(self, schema: pa.Schema, partition_by: list[str]):
        from pyiceberg.exceptions import TableAlreadyExistsError

        namespace = self.identifier.rsplit(".", 1)[0]
        self.catalog.create_namespace_if_not_exists(namespace)
        if self.catalog.table_exists(self.identifier):
            return self.load()
        # Schema and partitions in one commit: a kill between two would leave the table unpartitioned for good.
        creating = self.catalog.create_table_transaction(self.identifier, schema=schema)
        if partition_by:
            # Identity partitions only of columns each data file holds one value of (PARTITION_COLUMNS, checked
            # in the spec): add_files reads a file's partition from its columns' bounds.
            with creating.update_spec() as update:
                for column in partition_by:
                    update.add_identity(column)
        try:
            creating.commit_transaction()
        except TableAlreadyExistsError:
            pass  # another job made it first: take it as it is
        return self.load()

    @staticmethod
    def _arrow_schema(table) -> pa.Schema:
        from pyiceberg.io.pyarrow import schema_to_pyarrow

        arrow = schema_to_pyarrow(table.schema(), include_field_ids=False)
        return pa.schema([pa.field(f.name, lake_type(f.type, f.name)) for f in arrow])

    def _reconciled(self, ours: pa.Schema, theirs: pa.Schema) -> tuple[pa.Schema, bool]:
        """(the files' schema for the columns of `ours`, whether the table must evolve to take them)."""
        fields, evolve = [], False
        for field in ours:
            table_type = theirs.field(field.name).type if field.name in theirs.names else None
            if field.type == table_type:
                fields.append(field)
            elif table_type is not None and _widens(field.type, table_type):
                fields.append(pa.field(field.name, table_type))
            elif table_type is None or _widens(table_type, field.type) or (
                    pa.types.is_nested(field.type) and pa.types.is_nested(table_type)):
                # New, wider, or nested: PyIceberg's union adds and widens columns and a struct's new
                # fields, or refuses what it cannot make (a nested type changed).
                fields.append(field)
                evolve = True
            else:
                raise LakeRefused(f"column {field.name}: the table {self.identifier} holds {table_type}, this job's "
                                  f"rows have {field.type}; write to another table, or cast the input's column")
        return pa.schema(fields), evolve

    def files_of(self, output_uri: str) -> set[str]:
        """The data files under `output_uri` (URLs as `add_files` was given them) that the table holds now or
        that a commit of this output added in the current snapshot's history: a file compaction or a
        copy-on-write delete has since rewritten is still one this output committed, and never added again
        (while the snapshot that added it has not been expired)."""
        from pyiceberg.manifest import ManifestContent, ManifestEntryStatus
        from pyiceberg.table.snapshots import ancestors_of

        table = self.load()
        if table.current_snapshot() is None:
            return set()
        under = output_uri.rstrip("/") + "/"
        held = {task.file.file_path for task in table.scan().plan_files() if task.file.file_path.startswith(under)}
        for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
            if (snapshot.summary and snapshot.summary.get(PROPERTY["output"])) != output_uri.rstrip("/"):
                continue
            for manifest in snapshot.manifests(table.io):
                if manifest.content == ManifestContent.DATA and manifest.added_snapshot_id == snapshot.snapshot_id:
                    held.update(entry.data_file.file_path for entry in manifest.fetch_manifest_entry(table.io)
                                if entry.status == ManifestEntryStatus.ADDED)
        return held

    def append(self, files: list[str], properties: dict[str, str], output_uri: str) -> int | None:
        """Registers `files` (full URIs of Parquet files under `output_uri`, none yet in the table) as one
        append snapshot whose summary carries `properties`; returns its id (None when the table already held
        every file: a commit whose outcome was unknown had been made). Raises what the catalog raises once
        tries run out."""
        from pyiceberg.exceptions import CommitFailedException

        for attempt in range(_COMMIT_TRIES):
            if attempt:
                # Before every retry the table says what it holds: an earlier attempt whose outcome was
                # unknown may have landed since, even behind a later attempt another writer beat.
                held = self.files_of(output_uri)
                files = [f for f in files if f not in held]
                if not files:
                    return None
            table = self.load()
            try:
                table.add_files(files, snapshot_properties={**properties, PROPERTY["files"]: str(len(files))},
                                check_duplicate_files=False)
                return table.current_snapshot().snapshot_id
            except CommitFailedException:
                pass  # not made: another writer committed first; made again on the fresh table
            except Exception:
                if attempt == _COMMIT_TRIES - 1:
                    raise
                # Outcome unknown (a catalog that stopped answering mid-commit): the next attempt asks the table.
            time.sleep(min(30.0, 0.2 * 2 ** attempt))
        raise CommitFailedException(f"table {self.identifier}: {_COMMIT_TRIES} commits in a row lost to other writers")


def committed_by_jobs(table) -> list[dict]:
    """Per job output that committed into `table` (a PyIceberg `Table`), newest first: its `job`, `output`
    (the prefix's URL), `rows` and `snapshots` added in the current snapshot's history, and the `last`
    commit's snapshot id and time (ms since the epoch)."""
    from pyiceberg.table.snapshots import ancestors_of

    jobs: dict[str, dict] = {}
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        summary = snapshot.summary
        output = summary.get(PROPERTY["output"]) if summary else None
        if output is None:
            continue  # another writer's snapshot
        entry = jobs.setdefault(output, {"job": summary.get(PROPERTY["job"]), "output": output, "rows": 0, "snapshots": 0,
                                         "last_snapshot_id": snapshot.snapshot_id, "last_at_ms": snapshot.timestamp_ms})
        entry["rows"] += int(summary.get("added-records", 0))
        entry["snapshots"] += 1
    return list(jobs.values())
