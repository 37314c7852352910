"""A lake table as a job's input: `job_inputs` gives a table's data files at one snapshot, with the row
filter the readers apply, as the same `InputSet` that files give (so scan, positions, resume and chained
reads work unchanged); any other input goes to `core.columns.job_inputs`.

Why not Ray Data's own `read_iceberg`: a record's identity here is its data file and row number (what a
resume skips by, `core.positions`), and batchgen's readers give every block those; PyIceberg plans the
scan (the snapshot, the files the filter's column bounds cannot rule out), and the readers read the files.
The snapshot read is part of the input's identity in `_job.json`; a resume reads that snapshot again,
whatever was committed to the table since, so its records are the first run's.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from batchgen.core.columns import InputColumns, job_inputs as file_inputs
from batchgen.core.storage import InputSet, open_fs
from batchgen.lake.iceberg import IcebergTable
from batchgen.lake.types import LakeRefused
from batchgen.spec.job import JobSpec, TableSpec

__all__ = ["job_inputs"]


def job_inputs(spec: JobSpec, recorded: dict | None = None):
    """(filesystem, `InputSet`) of a job's input. For a table (input.uri iceberg://namespace.table): the
    data files of the snapshot `input.table.snapshot_id`, else the one `recorded` (the `input` of the
    output's `_job.json`) names for the same table and filter, else the current one. Raises LakeRefused
    (a spec error) for a table with delete files (merge-on-read; not read here) or a filter that does not
    parse, FileNotFoundError for a table with no snapshot; the catalog's errors as they come."""
    identifier = spec.input.table_identifier
    if identifier is None:
        return file_inputs(spec)
    options = spec.input.table
    table = IcebergTable(TableSpec(identifier=identifier, catalog=options.catalog, catalog_name=options.catalog_name),
                         spec.storage).load()  # first: it says so when PyIceberg is not installed
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.expressions.parser import parse
    from pyiceberg.expressions.visitors import bind, extract_field_ids
    from pyiceberg.io.pyarrow import expression_to_pyarrow, schema_to_pyarrow
    before = (recorded or {}).get("table") or {}
    same = before.get("identifier") == identifier and before.get("row_filter") == options.row_filter
    snapshot_id = options.snapshot_id or (before.get("snapshot_id") if same else None)
    if snapshot_id is None:
        if table.current_snapshot() is None:
            raise FileNotFoundError(f"input.uri: table {identifier} has no snapshot: nothing to read")
        snapshot_id = table.current_snapshot().snapshot_id
    snapshot = table.snapshot_by_id(snapshot_id)
    if snapshot is None:
        raise LakeRefused(f"input.table.snapshot_id: table {identifier} has no snapshot {snapshot_id} (expired, or "
                          "another table's); " + ("give another, or " if options.snapshot_id else "") +
                          "write to a new output.uri to read the table as it is now")
    try:
        condition = parse(options.row_filter) if options.row_filter else AlwaysTrue()
        schema = table.schemas()[snapshot.schema_id]
        bound = bind(schema, condition, case_sensitive=True)
    except Exception as error:  # PyIceberg's parse and bind errors: a bad filter is the spec's
        raise LakeRefused(f"input.table.row_filter: {options.row_filter!r}: {error}") from None
    tasks = list(table.scan(row_filter=condition, snapshot_id=snapshot_id).plan_files())
    if any(task.delete_files for task in tasks):
        raise LakeRefused(f"input.uri: table {identifier} has delete files at snapshot {snapshot_id} (merge-on-read "
                          "deletes): batchgen reads data files whole; compact the table (rewrite its data files) or "
                          "read another snapshot")
    location = tasks[0].file.file_path if tasks else table.location()
    fs, _ = open_fs(location, spec.storage)
    found = {fs._strip_protocol(task.file.file_path): {"size": task.file.file_size_in_bytes} for task in tasks}
    if not found:
        raise FileNotFoundError(f"input.uri: table {identifier} has no rows at snapshot {snapshot_id}"
                                + (f" where {options.row_filter}" if options.row_filter else ""))
    # A table's folders are its writer's layout (`ts_day=...` for a day transform), not columns: its
    # partition values are in its files.
    columns = dataclasses.replace(InputColumns.of(spec), hive=False)
    if options.row_filter:
        names = {schema.find_column_name(i) for i in extract_field_ids(bound)}
        if nested := sorted(n for n in names if "." in n):
            raise LakeRefused(f"input.table.row_filter: {', '.join(nested)}: a filter names top-level columns only")
        arrow = schema_to_pyarrow(schema, include_field_ids=False)
        columns = dataclasses.replace(columns, row_filter=expression_to_pyarrow(bound, schema),
                                      filter_columns=pa.schema([arrow.field(n) for n in sorted(names)]))
    inputs = InputSet.of_files(fs, fs._strip_protocol(table.location()), found, "parquet", columns)
    identity = {"identifier": identifier, "snapshot_id": snapshot_id, "row_filter": options.row_filter}
    return fs, dataclasses.replace(inputs, table=identity)
