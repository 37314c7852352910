"""A lake table as a job's input (`batchgen.lake.reading`) on the stand-in engine (`tests/standin.py`): real
Ray Data, real PyIceberg tables (SQL catalog on SQLite); the row filter, the snapshot recorded and read
again by a resume after the table changed, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.cluster.pipeline import run
from batchgen.lake.types import LakeRefused
from tests.cluster.test_stage import assert_exactly_once, job
from tests.standin import StandIn


def questions(tmp_path: Path, rows: int = 30):
    from pyiceberg.catalog import load_catalog

    properties = {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": f"file://{tmp_path}/wh"}
    catalog = load_catalog("default", **properties)
    catalog.create_namespace("evals")
    table = catalog.create_table("evals.questions", schema=pa.schema(
        [("id", pa.string()), ("prompt", pa.string()), ("split", pa.string()), ("difficulty", pa.int64())]))
    table.append(pa.table({"id": [f"q{i}" for i in range(rows)], "prompt": [f"say {i}" for i in range(rows)],
                           "split": ["test", "train", "test"] * (rows // 3), "difficulty": list(range(rows))}))
    return table, properties


def table_input(properties: dict, **table) -> dict:
    return {"uri": "iceberg://evals.questions", "table": {"catalog": properties, **table}}


def test_a_filtered_table_is_read_at_its_snapshot_and_a_resume_reads_that_snapshot_again(tmp_path, ray_cluster):
    table, properties = questions(tmp_path)
    spec = job(tmp_path, [], input=table_input(properties, row_filter="split = 'test' and difficulty >= 3"))
    assert run(spec, replica_factory=StandIn).records == 18
    wanted = [f"q{i}" for i in range(3, 30) if i % 3 != 1]
    rows = assert_exactly_once(tmp_path / "out", wanted)
    assert rows["q5"]["split"] == "test" and rows["q5"]["difficulty"] == 5 and rows["q5"]["content"] == "echo: say 5"
    recorded = json.loads((tmp_path / "out" / "_job.json").read_text())["input"]["table"]
    first_snapshot = table.current_snapshot().snapshot_id
    assert recorded == {"identifier": "evals.questions", "snapshot_id": first_snapshot,
                        "row_filter": "split = 'test' and difficulty >= 3"}

    # The table changes; the job's output loses some committed records (as a kill would leave it).
    table.append(pa.table({"id": ["late"], "prompt": ["say late"], "split": ["test"], "difficulty": [99]}))
    assert run(spec, replica_factory=StandIn).already_complete  # the recorded snapshot: nothing new to do
    out = tmp_path / "out"
    (out / "_SUCCESS").unlink()
    checkpoint = sorted((out / "_checkpoint").glob("*.parquet"))[0]
    lost = pq.read_table(checkpoint).column(0).to_pylist()
    for data in out.glob(checkpoint.stem + "*.parquet"):
        data.unlink()
    checkpoint.unlink()
    stats = run(spec, replica_factory=StandIn)
    assert stats.records == 18 and stats.skipped_already_done == 18 - len(set(lost))
    assert_exactly_once(out, wanted)  # the late row is not in the first run's snapshot

    # Asking for the new snapshot onto the same output is another input: refused, not mixed in.
    newer = job(tmp_path, [], input=table_input(properties, row_filter="split = 'test' and difficulty >= 3",
                                                snapshot_id=table.current_snapshot().snapshot_id))
    with pytest.raises(Exception, match="holds results for another input"):
        run(newer, replica_factory=StandIn)


def test_a_filter_that_does_not_parse_or_names_no_column_is_refused(tmp_path, ray_cluster):
    _, properties = questions(tmp_path, 3)
    for bad in ("split = ", "level > 2"):
        with pytest.raises(LakeRefused, match=r"^input.table.row_filter: '" + bad.replace("'", "") + "'"):
            run(job(tmp_path, [], input=table_input(properties, row_filter=bad)), replica_factory=StandIn)


def test_a_filter_on_a_column_older_files_lack_reads_it_as_null_there_and_a_column_left_out_stays_out(tmp_path, ray_cluster):
    from pyiceberg.types import StringType

    table, properties = questions(tmp_path, 6)
    with table.update_schema() as update:  # a later writer adds a column; the first file does not hold it
        update.add_column("tier", StringType())
    table.append(pa.table({"id": ["g1", "g2"], "prompt": ["say g1", "say g2"], "split": ["test"] * 2,
                           "difficulty": [1, 2], "tier": ["gold", "silver"]}))
    spec = job(tmp_path, [], input={**table_input(properties, row_filter="tier = 'gold' or difficulty = 0"),
                                    "columns": ["split"]})
    assert run(spec, replica_factory=StandIn).records == 2
    rows = assert_exactly_once(tmp_path / "out", ["q0", "g1"])
    assert "tier" not in rows["g1"] and "difficulty" not in rows["g1"] and rows["g1"]["split"] == "test"


def test_a_snapshot_the_table_does_not_have_is_refused_naming_it(tmp_path, ray_cluster):
    _, properties = questions(tmp_path, 3)
    with pytest.raises(LakeRefused, match="^input.table.snapshot_id: table evals.questions has no snapshot 42"):
        run(job(tmp_path, [], input=table_input(properties, snapshot_id=42)), replica_factory=StandIn)


def test_every_data_file_ray_data_writes_is_known_as_committed_and_reaches_the_table_once(tmp_path, ray_cluster):
    """Pins batchgen's reading of Ray Data's checkpointed file names (`prefix._COMMIT_STEM`): were they to
    drift, no file would count as committed and the table would stay empty."""
    from batchgen.core.prefix import OutputPrefix

    properties = {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": f"file://{tmp_path}/wh"}
    spec = job(tmp_path, [{"id": f"r{i}", "prompt": f"say {i}"} for i in range(40)],
               output={"format": "iceberg", "table": {"identifier": "evals.answers", "catalog": properties}})
    stats = run(spec, replica_factory=StandIn)
    prefix = OutputPrefix(str(tmp_path / "out"))
    assert len(prefix.data_files()) >= 5 and prefix.committed_data_files() == prefix.data_files()
    assert sum(c["files"] for c in stats.table["commits"]) == len(prefix.data_files())
    from pyiceberg.catalog import load_catalog

    ids = load_catalog("default", **properties).load_table("evals.answers").scan().to_arrow().column("id").to_pylist()
    assert sorted(ids) == sorted(f"r{i}" for i in range(40))
