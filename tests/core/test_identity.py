"""Record ids: the id column's text, ids named by path under the input root, later uses of an id as
duplicates (`batchgen.core.identity`)."""

from __future__ import annotations

import pytest

from batchgen.core.identity import InputNames, id_text, input_root
from batchgen.core.reading import INDEX, SOURCE, read_file
from tests.inputs import (
    scanned,
    write_lines,
)


def test_records_without_ids_are_named_by_their_path_under_the_input_root(tmp_path):
    for day in (1, 2):
        write_lines(tmp_path / "in" / f"day={day}" / "part-0.jsonl", [{"prompt": "x"}])
    fs, inputs, result = scanned(tmp_path / "in")
    ids = [rid for f in inputs.files for b in read_file(fs, inputs, f) for rid in b.column("id").to_pylist()]
    assert ids == ["day=1/part-0.jsonl:1", "day=2/part-0.jsonl:1"] and result.duplicate_errors == {}


def test_input_root_and_names():
    assert input_root("s3://b/in/*.jsonl") == "s3://b/in" and input_root("/d/x.jsonl") == "/d/x.jsonl"
    assert InputNames("/d", ["/d/a/b.jsonl", "/e/c.jsonl"]).names == {"/d/a/b.jsonl": "a/b.jsonl", "/e/c.jsonl": "c.jsonl"}


@pytest.mark.parametrize(("raw", "text"), [(7, "7"), ("a", "a"), (10.0, "10"), (1.5, None), (float("nan"), None),
                                           (True, None), (None, None), ([1], None)])
def test_id_text(raw, text):
    assert id_text(raw) == text


def test_later_uses_of_an_id_are_duplicates_named_by_location(tmp_path):
    write_lines(tmp_path / "in" / "a.jsonl", [{"id": 1, "prompt": "x"}, {"id": "1", "prompt": "y"}])
    write_lines(tmp_path / "in" / "b.jsonl", [{"id": 1.0, "prompt": "z"}])
    fs, inputs, result = scanned(tmp_path / "in")
    assert {(p.rsplit("/", 1)[1], n): str(e) for (p, n), e in result.duplicate_errors.items()} == {
        ("a.jsonl", 2): "duplicate_id: its id was already used at a.jsonl:1",
        ("b.jsonl", 1): "duplicate_id: its id was already used at a.jsonl:1"}
    assert result.records == 3


def test_committed_row_ids_are_found_at_their_records_positions_and_a_later_use_only_at_its_own(tmp_path):
    # a.jsonl: x at line 1, y at 2, x again at 3 (its row id is x@a.jsonl:3), no id at 5 (a blank line 4)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text('{"id": "x", "prompt": "p"}\n{"id": "y", "prompt": "p"}\n'
                                            '{"id": "x", "prompt": "p"}\n\n{"prompt": "p"}\n')
    write_lines(tmp_path / "in" / "b.jsonl", [{"id": "z", "prompt": "p"}])
    fs, inputs, result = scanned(tmp_path / "in")
    ids = [rid for f in inputs.files for b in read_file(fs, inputs, f, frozenset(result.duplicate_errors))
           for rid in b.column("id").to_pylist()]
    assert ids == ["x", "y", "x@a.jsonl:3", "a.jsonl:5", "z"]
    at = {rid: int(p) for f in inputs.files for b in read_file(fs, inputs, f, frozenset(result.duplicate_errors))
          for rid, p in zip(b.column("id").to_pylist(), result.positions.of(b.column(SOURCE), b.column(INDEX)))}
    assert result.positions.size == 6 + 2 and sorted(at.values()) == [1, 2, 3, 5, 7]

    def committed(*lists):
        return set(result.ids.committed(iter(lists), result.positions)
                           .contains(range(result.positions.size)).nonzero()[0].tolist())

    assert committed(["x"]) == {at["x"]}  # x's first use, never its later use at line 3
    assert committed(["x@a.jsonl:3", "x@a.jsonl:3"], ["a.jsonl:5", "z"]) == {at["x@a.jsonl:3"], at["a.jsonl:5"], at["z"]}
    assert committed(["y@a.jsonl:3", "x@a.jsonl:2", "w"]) == set()  # not any record's row id
    assert committed() == set()
    result.close()
