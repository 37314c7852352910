"""Spilled buckets (`batchgen.core.spill`): every row comes back, once, in the bucket of its digest."""

from __future__ import annotations

import numpy as np

from batchgen.core.ledger import RECORD, digests
from batchgen.core.spill import SpilledBuckets


def test_rows_come_back_once_each_in_the_bucket_of_their_digests_first_byte():
    spilled = SpilledBuckets(RECORD, buffer_rows=100)
    ids = [f"id-{i}" for i in range(1000)]
    for start in range(0, 1000, 30):
        rows = np.zeros(len(ids[start:start + 30]), RECORD)
        rows["digest"], rows["number"] = digests(ids[start:start + 30]), np.arange(start, start + len(rows))
        spilled.add(rows)
    buckets = list(spilled.buckets())
    assert len(buckets) == 256 and spilled.rows == 1000
    numbers = np.concatenate([b["number"] for b in buckets])
    assert sorted(numbers.tolist()) == list(range(1000))
    for n, bucket in enumerate(buckets):
        assert all(bytes(d)[0] == n for d in bucket["digest"])
    folder = spilled._folder.name
    spilled.close()
    import os
    assert not os.path.exists(folder)
