"""The job's order on a stand-in engine (`tests/standin.py`, real Ray Data, actor pool, checkpoint): records
sharing a prefix reach the replica together, the longest expected first, with `scaling.order: scheduled`;
input order with `input`; the same rows either way, and a resumed job orders what is left."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from batchgen.cluster.pipeline import run
from batchgen.core.reading import ROWS_PER_BLOCK
from tests.cluster.test_stage import assert_exactly_once, job, rows_of
from tests.standin import StandIn

LOG = "order_log"  # the spec's engine key: a folder where each replica writes the ids it was given, in order


class Logged(StandIn):
    """A stand-in that writes the ids it is submitted, in submission order, to its own file in the spec's
    `engine.order_log` folder."""

    def __init__(self, spec, budgeted: bool = False):
        super().__init__(spec, budgeted)
        self.log = Path(spec.engine[LOG]) / f"{id(self)}-{random.random()}.log"

    def submit(self, records, ids):
        with self.log.open("a") as log:
            log.write("".join(rid + "\n" for rid in ids))
        return super().submit(records, ids)


def submitted(folder: Path) -> list[list[str]]:
    """Per replica, the ids in the order it was given them."""
    return [p.read_text().split() for p in sorted(folder.glob("*.log"))]


DOCS = [f"Document {d}: " + " ".join(f"word{d}-{w}" for w in range(300)) for d in range(6)]


def shared_prefix_records(count: int, seed: int = 0) -> list[dict]:
    """`count` records over the 6 documents, in random order: a document (~2,700 characters) then a
    question, as a prompt template makes them."""
    rng = random.Random(seed)
    return [{"id": f"q{i}", "doc": d, "prompt": f"{DOCS[d]}\n\nQuestion {i}: what is word{d}-{i % 300}?",
             "max_tokens": 16} for i, d in enumerate(rng.choice(range(6)) for _ in range(count))]


def assert_longest_first(lengths: list[int], scaling) -> None:
    """Longest first, up to the calls a replica runs at once: they may submit their blocks in another order
    than they were handed them, so a record may come at most that many records early."""
    reach = scaling.batch_size * scaling.batches_in_flight
    assert all(lengths[k] >= lengths[k + reach] for k in range(len(lengths) - reach)), lengths


def runs_of(ids: list[str], doc_of: dict[str, int]) -> int:
    """How many runs of consecutive records with the same document `ids` holds."""
    docs = [doc_of[i] for i in ids]
    return sum(1 for k, d in enumerate(docs) if k == 0 or d != docs[k - 1])


@pytest.mark.parametrize("order", ["scheduled", "input"])
def test_records_sharing_a_prefix_reach_the_replica_together(tmp_path, ray_cluster, order):
    records = shared_prefix_records(1500)
    (tmp_path / "log").mkdir()
    spec = job(tmp_path, records, engine={LOG: str(tmp_path / "log")},
               scaling={"order": order, "batch_size": 16, "records_in_flight": 64})
    run(spec, replica_factory=Logged)
    assert_exactly_once(tmp_path / "out", [r["id"] for r in records])
    [given] = submitted(tmp_path / "log")
    assert sorted(given) == sorted(r["id"] for r in records)
    doc_of = {r["id"]: r["doc"] for r in records}
    runs = runs_of(given, doc_of)
    if order == "input":  # random documents: a new one at almost every record
        assert runs > 1000
    else:  # each read block (1,024 records, then 476) in one run per document, give or take the blocks that
        # the replica's concurrent calls submit in another order than they were handed out
        windows = -(-len(records) // ROWS_PER_BLOCK)
        assert runs <= 6 * windows * 3


def test_longest_expected_first_and_a_resume_orders_what_is_left(tmp_path, ray_cluster):
    rng = random.Random(1)
    lengths = [rng.choice([16, 64, 256, 1024, 4096]) for _ in range(400)]
    records = [{"id": f"r{i}", "prompt": f"say {i}", "max_tokens": m} for i, m in enumerate(lengths)]
    (tmp_path / "log").mkdir()
    spec = job(tmp_path, records, engine={LOG: str(tmp_path / "log")}, scaling={"batch_size": 8, "records_in_flight": 16})
    run(spec, replica_factory=Logged)
    [given] = submitted(tmp_path / "log")
    length_of = {r["id"]: r["max_tokens"] for r in records}
    assert_longest_first([length_of[i] for i in given], spec.scaling)

    # A resume: every other commit undone (checkpoint and data); the rerun runs only what is left, longest first.
    out = tmp_path / "out"
    for cut in sorted(out.glob("part-*.parquet"))[::2]:
        (out / "_checkpoint" / (cut.name.rsplit("-", 1)[0] + ".parquet")).unlink()
        cut.unlink()
    (out / "_SUCCESS").unlink()
    (out / "_stats.json").unlink()
    kept = {r["id"] for r in rows_of(out)}
    for log in (tmp_path / "log").glob("*.log"):
        log.unlink()
    stats = run(spec, replica_factory=Logged)
    [given] = submitted(tmp_path / "log")
    assert stats.skipped_already_done == len(kept) and sorted(given) == sorted(set(length_of) - kept)
    assert_longest_first([length_of[i] for i in given], spec.scaling)
    assert_exactly_once(out, list(length_of))
