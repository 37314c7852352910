"""`batchgen validate`: checks a job without an engine or a GPU. Opens the input, runs every record through
the same normalization and templating the replicas use, and reports what would fail and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from batchgen.engine.preparer import RecordPreparer
from batchgen.core.blocks import Decoder
from batchgen.lake.reading import job_inputs
from batchgen.core.grades import reference_column
from batchgen.core.prompts import prompt_plan
from batchgen.record.prompting import EngineInput
from batchgen.record.contract import RecordError
from batchgen.core.scan import scan
from batchgen.spec.job import JobSpec
from batchgen.core.reading import read_file


@dataclass
class Report:
    """What `validate_job` found: the input's data files, how many records they hold, the error rows the
    job would write per error code, the first few bad records and the first few prompts."""

    files: list[str]
    records: int = 0
    errors: Counter = field(default_factory=Counter)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (id, "code: message"), the first few
    prompts: list[EngineInput] = field(default_factory=list)  # the first few, as the engine will see them


def validate_job(spec: JobSpec, show: int = 2, keep_bad: int = 20) -> Report:
    """Reads the job's input in-process, with the same scan, decoding and record preparation as `run`
    (`RecordPreparer.build`, the context the `engine` section gives, else the model's own), and reports what
    would fail and why: `show` prompts as the engine would see them, up to `keep_bad` bad records by id.
    Needs the model's tokenizer and config, no engine and no GPU. Raises FileNotFoundError for an input
    without data files, SpecError (a ValueError) for a grade reference the input lacks, ValueError for an
    unknown toy model, and what loading the tokenizer raises (OSError)."""
    fs, inputs = job_inputs(spec)
    preparer = RecordPreparer.for_model(spec.model, spec.engine, spec.budget, spec.defaults)
    report = Report(inputs.files)
    # The same scan and decoding as `run`, in-process.
    scanned = scan(inputs, (block for file in inputs.files for block in read_file(fs, inputs, file, scan=True)))
    scanned.close()  # its spilled digests: what validation needs of them is in the decoder
    if spec.grade:
        reference_column(spec.grade, scanned.passthrough)  # SpecError: the input lacks it
    decode = Decoder(scanned.passthrough, scanned.duplicate_errors, inputs.format == "openai", inputs.columns, prompt_plan(spec))
    for file in inputs.files:
        for block in read_file(fs, inputs, file, frozenset(scanned.duplicate_errors)):
            batch = decode(block)
            for raw, rid in zip(batch.records, batch.ids):
                report.records += 1
                outcome = preparer.build(raw, rid)
                if isinstance(outcome, RecordError):
                    report.errors[outcome.code] += 1
                    if len(report.bad) < keep_bad:
                        report.bad.append((rid, str(outcome)))
                elif len(report.prompts) < show:
                    report.prompts.append(outcome)
    return report
