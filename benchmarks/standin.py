"""A STAND-IN ENGINE for the benchmarks of scale (streaming memory, replica scaling): no model, no vLLM.

A job gets it as its replica factory (`run(spec, replica_factory=StandInReplica)`), so everything else in
a batchgen job runs for real: the readers, the actor pool, the checkpointing, the writers. A batch of records "decodes" in parallel, like a continuously batched
engine, and takes `BATCHGEN_STANDIN_SECONDS_PER_TOKEN` x its longest record's max_tokens, sleeping (no CPU),
so eight replicas fit on two cores. Each record's answer is `max_tokens` words long. It lives here, with the
benchmarks, and is never used by a test that claims to test generation.
"""

from __future__ import annotations

import os
import time

from batchgen.records import RecordError, normalize
from batchgen.rows import answer_row, error_row
from batchgen.spec import JobSpec
from benchmarks.events import log_event

SECONDS_PER_TOKEN = "BATCHGEN_STANDIN_SECONDS_PER_TOKEN"


class StandInReplica:
    def __init__(self, spec: JobSpec):
        self.model_name = f"stand-in:{spec.model.path}"
        self.defaults = spec.defaults
        self.seconds_per_token = float(os.environ.get(SECONDS_PER_TOKEN, "0"))

    def generate(self, records: list[dict], ids: list[str]) -> list[dict]:
        requests = [normalize(raw, self.defaults, row_id=rid) for raw, rid in zip(records, ids)]
        lengths = [r.max_tokens or 16 for r in requests if not isinstance(r, RecordError)]
        time.sleep(self.seconds_per_token * max(lengths, default=0))
        log_event("done", len(records))
        return [
            error_row(rid, self.model_name, r) if isinstance(r, RecordError) else answer_row(
                record_id=rid, model=self.model_name, mode="off", reasoning_text=None,
                content=" ".join(["token"] * (r.max_tokens or 16)), finish_reason="length", budget_hit=False,
                prompt_tokens=len(str(r.messages[-1]["content"]).split()), reasoning_tokens=0,
                completion_tokens=r.max_tokens or 16,
            )
            for r, rid in zip(requests, ids)
        ]

    def close(self) -> None:
        pass


def install() -> None:
    """Ray's worker_process_setup_hook: instruments the readers (no behaviour changed) so that every worker
    logs when it finishes reading an input file."""
    import batchgen.storage

    reader = batchgen.storage.read_stream

    def logged(stream, path, *args, **kwargs):
        yield from reader(stream, path, *args, **kwargs)
        log_event("read", path)

    batchgen.storage.read_stream = logged
