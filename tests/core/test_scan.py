"""The input scan (`batchgen.core.scan`)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tests.inputs import (
    scanned,
)


def test_the_scan_says_whether_any_record_sets_a_thinking_budget(tmp_path):
    # The replicas register the budget processor only for such inputs (or the spec's defaults).
    (tmp_path / "none.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "max_thinking_tokens": null}\nnot json\n')
    (tmp_path / "one.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "max_thinking_tokens": 0}\n')
    pq.write_table(pa.table({"prompt": ["a", "b"], "max_thinking_tokens": pa.array([None, None], pa.int64())}),
                   tmp_path / "nulls.parquet")
    pq.write_table(pa.table({"prompt": ["a", "b"], "max_thinking_tokens": pa.array([None, 64], pa.int64())}),
                   tmp_path / "set.parquet")
    pq.write_table(pa.table({"prompt": ["a"]}), tmp_path / "plain.parquet")
    budgeted = {name: scanned(str(tmp_path / name))[2].budgeted
                for name in ("none.jsonl", "one.jsonl", "nulls.parquet", "set.parquet", "plain.parquet")}
    assert budgeted == {"none.jsonl": False, "one.jsonl": True, "nulls.parquet": False, "set.parquet": True,
                        "plain.parquet": False}
