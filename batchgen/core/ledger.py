"""Job bookkeeping across batches and replicas: which record first used an id, which records were running
when a replica's engine died, and which rows were already handed out. Pure state, kept by the job's
progress actor or a validation pass."""

from __future__ import annotations

import hashlib

import numpy as np


class FirstOccurrences:
    """Finds the records whose id an earlier record (in file order, then line or row order) already used:
    those are `duplicate_id` errors, and the first occurrence runs. Batches may arrive in any order.

    Every id of the input passes through here, so it keeps 32 bytes per record (a 128-bit digest of the id
    and its position in numpy arrays), not the ids: a 1M-record input costs ~32 MB instead of ~200 MB of
    Python strings and tuples. Two different ids share a digest with odds of about n^2 / 2^129.
    """

    def __init__(self) -> None:
        self._digests: list[np.ndarray] = []
        self._positions: list[np.ndarray] = []

    def add(self, record_ids: list[str], positions: list[tuple[int, int]]) -> None:
        """`positions`: (file rank, line or row number) of each record."""
        digests = b"".join(hashlib.blake2b(rid.encode(), digest_size=16).digest() for rid in record_ids)
        self._digests.append(np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2))
        self._positions.append(np.asarray(positions, dtype=np.int64).reshape(-1, 2))

    def later_occurrences(self) -> dict[tuple[int, int], tuple[int, int]]:
        """Position of every later occurrence -> the first occurrence's position."""
        if not self._digests:
            return {}
        digests, positions = np.concatenate(self._digests), np.concatenate(self._positions)
        # Sorted by id, then position: each id's first occurrence heads its run of equal digests.
        order = np.lexsort((positions[:, 1], positions[:, 0], digests[:, 1], digests[:, 0]))
        digests, positions = digests[order], positions[order]
        same_id = np.r_[False, (digests[1:] == digests[:-1]).all(axis=1)]
        same_place = np.r_[False, (positions[1:] == positions[:-1]).all(axis=1)]  # one record seen twice
        heads = np.maximum.accumulate(np.where(same_id, 0, np.arange(len(digests))))
        return {tuple(positions[i].tolist()): tuple(positions[heads[i]].tolist())
                for i in np.flatnonzero(same_id & ~same_place)}


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
    """The ids whose rows a replica has handed to the writer. A replica returns rows of whichever of its
    records finished (`flow`), so when it dies Ray Data retries batches some of whose records another call
    already returned: those must not run again, or their rows would be written twice.

    Keeps Python's hash of each id (one process, the progress actor, asks and answers, so the hash is
    stable): about 70 bytes per record, 70 MB for a million records."""

    def __init__(self) -> None:
        self._hashes: set[int] = set()

    def add(self, record_ids: list[str]) -> None:
        self._hashes.update(hash(r) for r in record_ids)

    def __contains__(self, record_id: str) -> bool:
        return hash(record_id) in self._hashes
