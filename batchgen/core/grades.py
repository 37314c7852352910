"""Output blocks graded (`graded`): each row's `extracted_answer`, `correct` and `ungraded_reason` from its
`content`, `error` and the record's reference column (`batchgen.record.grading`). The job runs it where rows
are written, in Ray Data's write tasks, off the engine's actors; `reference_column` finds the reference
among the output's columns, or refuses the spec before any engine starts.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from batchgen.core.passthrough import Passthrough
from batchgen.record.grading import Grade, GradeSpec, grade_row
from batchgen.spec.job import SpecError

GRADE_COLUMNS = tuple(f.name for f in dataclasses.fields(Grade))  # the row contract's columns of the same names


def reference_column(grade: GradeSpec, passthrough: Passthrough) -> str | None:
    """The output column holding `grade.reference` (an input column is renamed `input_<name>` where the
    row contract has the name; None for a judge's verdicts). Raises SpecError naming the column and those
    the input has."""
    if grade.reference is None:
        return None
    for column, source in passthrough.sources.items():
        if source == grade.reference:
            return column
    have = ", ".join(sorted(passthrough.sources.values())) or "none"
    raise SpecError(f"grade.reference: the input has no column {grade.reference!r} (its columns: {have})")


def graded(block: pa.Table, grade: GradeSpec, reference: str | None) -> pa.Table:
    """`block` (output rows of the prefix's schema) with its grade columns filled in; the same schema.
    `reference`: the reference's column (None: a judge's verdicts, `compare: verdict`)."""
    if not block.num_rows:
        return block
    references = block.column(reference).to_pylist() if reference else [None] * block.num_rows
    grades = [grade_row(content, error, ref, grade) for content, error, ref in zip(
        block.column("content").to_pylist(), block.column("error").to_pylist(), references)]
    for name in GRADE_COLUMNS:
        index = block.schema.get_field_index(name)
        values = pa.array([getattr(g, name) for g in grades], type=block.schema.field(index).type)
        block = block.set_column(index, block.schema.field(index), values)
    return block
