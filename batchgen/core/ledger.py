"""Job bookkeeping across batches and replicas: which record first used an id, which records were running
when a replica's engine died, and which rows were already handed out. Pure state, kept by the job's
progress actor or a validation pass."""

from __future__ import annotations

import hashlib

import numpy as np

from batchgen.core.positions import PositionSet, Positions
from batchgen.core.spill import SpilledBuckets


RECORD = np.dtype([("digest", "V16"), ("rank", "<i4"), ("number", "<i8")])  # an id's digest at (file rank, number)
ANYWHERE = -1  # a committed id's rank when it names no place of its own (not a later use's `id@file:n`)


def digests(record_ids: list[str]) -> np.ndarray:
    """128-bit BLAKE2b digests of ids (`V16`): two different ids share one with odds of about n^2 / 2^129."""
    return np.frombuffer(b"".join(hashlib.blake2b(rid.encode(), digest_size=16).digest() for rid in record_ids),
                         dtype="V16")


class FirstOccurrences:
    """Finds the records whose id an earlier record (in file order, then line or row order) already used:
    those are `duplicate_id` errors, and the first occurrence runs. Batches may arrive in any order.

    Every id of the input passes through here; it keeps a 128-bit digest of each with its place (28 bytes)
    in buckets spilled to local disk (`batchgen.core.spill`), so memory holds one bucket at a time: the
    driver's memory does not grow with the input. The same digests find the places of the ids a
    checkpoint has committed when a job resumes (`committed`)."""

    def __init__(self) -> None:
        self._seen = SpilledBuckets(RECORD)

    def add(self, record_ids: list[str], ranks: list[int], numbers: list[int]) -> None:
        """Ids with the (file rank, line or row number) of each record, aligned."""
        rows = np.empty(len(record_ids), RECORD)
        rows["digest"], rows["rank"], rows["number"] = digests(record_ids), ranks, numbers
        self._seen.add(rows)

    def later_occurrences(self) -> dict[tuple[int, int], tuple[int, int]]:
        """Place of every later occurrence -> the first occurrence's place."""
        later = {}
        for rows in self._seen.buckets():
            # Sorted by id, then place: each id's first occurrence heads its run of equal digests.
            rows = rows[np.lexsort((rows["number"], rows["rank"], rows["digest"]))]
            same_id = np.r_[False, rows["digest"][1:] == rows["digest"][:-1]]
            same_place = np.r_[False, (rows["rank"][1:] == rows["rank"][:-1]) & (rows["number"][1:] == rows["number"][:-1])]
            heads = np.maximum.accumulate(np.where(same_id, 0, np.arange(len(rows))))
            for i in np.flatnonzero(same_id & ~same_place):  # (one record seen twice is no later use)
                later[(int(rows["rank"][i]), int(rows["number"][i]))] = (int(rows["rank"][heads[i]]),
                                                                          int(rows["number"][heads[i]]))
        return later

    def committed(self, committed: SpilledBuckets, positions: Positions,
                  later: dict[tuple[int, int], tuple[int, int]]) -> PositionSet:
        """The positions of the records whose ids `committed` holds (`RECORD` rows: a committed id's digest
        with rank `ANYWHERE`, or a later use's `id@file:n` as the digest of its `id` at its place), joined
        bucket by bucket with the digests seen here. A later use matches only at its own place, never by
        its first occurrence's id."""
        done = PositionSet(positions.size)
        later_positions = np.array([positions.of_ranks(np.int64(r), np.int64(n)) for r, n in later], np.int64)
        for seen, ids in zip(self._seen.buckets(), committed.buckets()):
            if not len(ids) or not len(seen):
                continue
            places = positions.of_ranks(seen["rank"].astype(np.int64), seen["number"])
            is_later = np.isin(places, later_positions)
            plain = ids[ids["rank"] == ANYWHERE]["digest"]
            done.add(places[~is_later & np.isin(seen["digest"], plain)])
            own = ids[ids["rank"] != ANYWHERE]
            if len(own):
                keys = positions.of_ranks(own["rank"].astype(np.int64), own["number"])
                matched = is_later & np.isin(places, keys)
                # the place matches; so must the id before its `@`
                pairs = set(zip(keys.tolist(), own["digest"].tolist()))
                done.add([p for p, d in zip(places[matched].tolist(), seen["digest"][matched].tolist()) if (p, d) in pairs])
        return done

    def close(self) -> None:
        self._seen.close()


class CrashLedger:
    """Counts, per record, the engine deaths it was on the engine for, and those it was alone on the engine
    for, so that the record that kills its replica is found (`batchgen.core.suspects` narrows the suspects
    down) and ends as an error row instead of looping, while no record pays for another's deaths.

    A dying replica says which records were on its engine (`died`); one that vanished without a word (its
    node lost, its process killed) leaves its records begun and never ended, and each counts one death,
    not alone (a death alone is proof only when the replica said so)."""

    def __init__(self) -> None:
        self._begun: set[str] = set()
        self._deaths: dict[str, tuple[int, int]] = {}  # id -> (deaths, deaths alone)

    def begin(self, record_ids: list[str]) -> list[tuple[int, int]]:
        """(deaths, deaths alone) of each record, which is now running; one begun before and never ended
        nor reported counts one more death."""
        counts = []
        for rid in record_ids:
            deaths, alone = self._deaths.get(rid, (0, 0))
            if rid in self._begun:
                deaths += 1
            if deaths:
                self._deaths[rid] = (deaths, alone)
            self._begun.add(rid)
            counts.append((deaths, alone))
        return counts

    def died(self, on_engine: list[str], waiting: list[str]) -> None:
        """A replica's engine died with `on_engine` running on it (alone when there is one) while `waiting`
        had been begun there but not started: those count no death."""
        for rid in on_engine:
            deaths, alone = self._deaths.get(rid, (0, 0))
            self._deaths[rid] = (deaths + 1, alone + (len(on_engine) == 1))
        self._begun.difference_update(on_engine)
        self._begun.difference_update(waiting)

    def end(self, record_ids: list[str]) -> None:
        for rid in record_ids:
            self._begun.discard(rid)
            self._deaths.pop(rid, None)


class HandedOut:
    """The records whose rows a replica has handed to the writer in this pass, by position (one bit each,
    `batchgen.core.positions`). A replica returns rows of whichever of its records finished (`flow`), so
    when it dies Ray Data retries batches some of whose records another call already returned: those must
    not run again, or their rows would be written twice."""

    def __init__(self, size: int) -> None:
        self._positions = PositionSet(size)

    def add(self, positions: list[int]) -> None:
        self._positions.add(np.asarray(positions, dtype=np.int64))

    def contains(self, positions: list[int]) -> list[bool]:
        return self._positions.contains(np.asarray(positions, dtype=np.int64)).tolist()
