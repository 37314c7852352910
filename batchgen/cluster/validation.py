"""`batchgen validate`: checks a job without an engine or a GPU. Opens the input, runs every record through
the same normalization and templating the replicas use, and reports what would fail and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from batchgen.engine.models import context_length, load_tokenizer, profile_for, resolve_path
from batchgen.core.blocks import decode
from batchgen.record.prompting import EngineInput, PromptBuilder
from batchgen.record.contract import RecordError, normalize
from batchgen.core.scan import scan
from batchgen.spec.job import JobSpec
from batchgen.core.storage import InputSet, open_fs, read_file


@dataclass
class Report:
    files: list[str]
    records: int = 0
    errors: Counter = field(default_factory=Counter)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (id, "code: message"), the first few
    prompts: list[EngineInput] = field(default_factory=list)  # the first few, as the engine will see them


def validate_job(spec: JobSpec, show: int = 2, keep_bad: int = 20) -> Report:
    fs, path = open_fs(spec.input.uri, spec.storage)
    inputs = InputSet.find(fs, path, spec.input.format)
    model_path = resolve_path(spec.model.path)
    tokenizer = load_tokenizer(spec.model, model_path)
    builder = PromptBuilder(
        tokenizer, profile_for(spec.model, tokenizer), spec.budget, context_length(spec.model, model_path, spec.engine)
    )
    report = Report(inputs.files)
    # The same scan and decoding as `run`, in-process.
    scanned = scan(inputs, (block for file in inputs.files for block in read_file(fs, inputs, file, scan=True)))
    for file in inputs.files:
        for block in read_file(fs, inputs, file, frozenset(scanned.duplicates)):
            batch = decode(block, scanned.passthrough, scanned.duplicates, openai=inputs.format == "openai")
            for raw, rid in zip(batch.records, batch.ids):
                report.records += 1
                outcome = raw if isinstance(raw, RecordError) else normalize(raw, spec.defaults, row_id=rid)
                if not isinstance(outcome, RecordError):
                    outcome = builder.build(outcome)
                if isinstance(outcome, RecordError):
                    report.errors[outcome.code] += 1
                    if len(report.bad) < keep_bad:
                        report.bad.append((rid, str(outcome)))
                elif len(report.prompts) < show:
                    report.prompts.append(outcome)
    return report
