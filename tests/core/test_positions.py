"""Record positions and bit sets of them (`batchgen.core.positions`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from batchgen.core.positions import Positions, PositionSet


def test_positions_number_every_file_after_the_ones_before_it():
    positions = Positions(["a.jsonl", "empty.jsonl", "b.parquet"], {"a.jsonl": 4, "b.parquet": 3})
    assert positions.size == 7
    paths = pa.chunked_array([["b.parquet", "a.jsonl"], ["a.jsonl", "b.parquet"]])
    numbers = pa.chunked_array([[0, 1], [3, 2]])
    assert positions.of(paths, numbers).tolist() == [4, 1, 3, 6]


def test_a_position_set_holds_what_was_added_and_nothing_else():
    done = PositionSet(1001)
    done.add(np.array([0, 7, 8, 1000]))
    done.add(np.array([7]))  # twice is once
    assert done.contains(np.arange(1001)).nonzero()[0].tolist() == [0, 7, 8, 1000]
    assert len(done) == 4 and done.bits.nbytes == 126
    assert PositionSet(5, done.bits[:1]).contains(np.array([0, 1])).tolist() == [True, False]
