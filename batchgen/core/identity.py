"""Row identity: the id every input row gets, and which rows are later uses of an id (pure logic).

A row's id is its record's own `id` as text (an integer, or a float that holds one, becomes its decimal
text). A record without one is named by where it is: its file's path relative to the input root, and its
line (JSONL, 1-based) or row (Parquet, 0-based) number, `day=1/part-0.jsonl:3`, so id-less records of
different files never share an id. A later use of an id (file order, then line order) becomes
`id@file:number`: every output row's id is unique, which is what resume and the checkpoint key on
(`ROW_KEY`).

Owns the names of a later use: its place, (file, number); `duplicate_places`, the set of them that renames
ids (`row_ids`); `duplicate_errors`, place -> its `duplicate_id` error (`DuplicateFinder`, the scan's result).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

import numpy as np

from batchgen.core.ledger import ANYWHERE, RECORD, FirstOccurrences, digests
from batchgen.core.positions import PositionSet, Positions
from batchgen.core.spill import SpilledBuckets
from batchgen.record.contract import RecordError, id_text

__all__ = ["ROW_KEY", "DuplicateFinder", "InputNames", "id_text", "input_root", "row_ids"]

ROW_KEY = "id"  # the output column that identifies a row: Ray Data's checkpoint filters finished rows by it


def input_root(path: str) -> str:
    """The directory record locations are named from: the input URI's directory part before any glob
    character (a single file's own directory, so a lone file is named by its base name)."""
    head = path
    for i, char in enumerate(path):
        if char in "*?[":
            head = path[:i]
            break
    else:
        return path.rstrip("/")
    return head.rsplit("/", 1)[0] if "/" in head else ""


class InputNames:
    """Names input files by their path relative to the input root (`a/b.jsonl`), for fallback ids."""

    def __init__(self, root: str, files: Iterable[str]):
        root = root.rstrip("/")
        self.names = {}
        for path in files:
            inside = root and path.startswith(root + "/")
            self.names[path] = path[len(root) + 1:] if inside else PurePosixPath(path).name

    def relative(self, path: str) -> str:
        """The file's name from the input root (`day=1/part-0.jsonl`)."""
        return self.names.get(path, PurePosixPath(path).name)

    def location(self, path: str, number: int) -> str:
        """`name:number`: where a record is, as ids and error messages say it."""
        return f"{self.relative(path)}:{number}"


def row_ids(raw_ids: list, path: str, numbers: list[int], names: InputNames,
            duplicate_places: frozenset = frozenset()) -> list[str]:
    """The id of each row of one file: its own id as text, else its location; a later occurrence (its
    (path, number) in `duplicate_places`) becomes `id@location`."""
    ids = []
    for raw, number in zip(raw_ids, numbers):
        where = names.location(path, number)
        rid = id_text(raw) or where
        ids.append(f"{rid}@{where}" if (path, number) in duplicate_places else rid)
    return ids


class DuplicateFinder:
    """Collects (id, file, number) of every input row, in any order; then says which rows reuse an id, and
    where the rows of a checkpoint's committed ids are. Its digests live in a temporary folder until
    `close` (`ledger.FirstOccurrences`)."""

    def __init__(self, files: list[str], names: InputNames):
        self.files, self.names = files, names
        self._rank = {path: n for n, path in enumerate(files)}
        self._seen = FirstOccurrences()
        self._later: dict[tuple[int, int], tuple[int, int]] | None = None

    def add(self, ids: list[str], paths: list[str], numbers: list[int]) -> None:
        """Rows' ids with their (file, number) places, aligned."""
        self._seen.add(ids, [self._rank[p] for p in paths], numbers)

    def _later_occurrences(self) -> dict[tuple[int, int], tuple[int, int]]:
        if self._later is None:
            self._later = self._seen.later_occurrences()
        return self._later

    def duplicate_errors(self) -> dict[tuple[str, int], RecordError]:
        """(file, number) of every later occurrence -> its `duplicate_id` error, naming the first one."""
        return {
            (self.files[rank], number): RecordError(
                "duplicate_id", f"its id was already used at {self.names.location(self.files[first[0]], first[1])}")
            for (rank, number), first in self._later_occurrences().items()
        }

    def committed(self, committed_ids: Iterable[list[str]], positions: Positions) -> PositionSet:
        """The positions of the input records whose row ids (`row_ids`: a later use's is `id@file:n`) are
        among `committed_ids` (lists of ids, a checkpoint file's each). Memory: a bucket at a time."""
        later = self._later_occurrences()
        by_location = {self.names.location(self.files[rank], number): (rank, number) for rank, number in later}
        spilled = SpilledBuckets(RECORD)
        try:
            for ids in committed_ids:
                rows = np.zeros(len(ids), RECORD)
                rows["rank"] = ANYWHERE
                heads = list(ids)
                for i, rid in enumerate(ids if by_location else ()):
                    head, at, where = rid.rpartition("@")
                    if at and where in by_location:
                        heads[i] = head
                        rows["rank"][i], rows["number"][i] = by_location[where]
                rows["digest"] = digests(heads)
                spilled.add(rows)
            return self._seen.committed(spilled, positions, later)
        finally:
            spilled.close()

    def close(self) -> None:
        self._seen.close()
