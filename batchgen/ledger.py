"""Job bookkeeping across batches and replicas: which record first used an id, and which records were
running when a replica's engine died. Pure state, kept by the job's progress actor or a validation pass."""

from __future__ import annotations


class FirstOccurrences:
    """Finds the records whose id an earlier record (in file order, then line or row order) already used:
    those are `duplicate_id` errors, and the first occurrence runs. Batches may arrive in any order; only
    the best position per id and the later occurrences are kept."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[int, int]] = {}
        self._later: dict[tuple[int, int], str] = {}

    def add(self, record_ids: list[str], positions: list[tuple[int, int]]) -> None:
        """`positions`: (file rank, line or row number) of each record."""
        for rid, position in zip(record_ids, positions):
            best = self._first.setdefault(rid, position)
            if best == position:
                continue
            first, later = sorted((position, best))
            self._first[rid] = first
            self._later[later] = rid

    def later_occurrences(self) -> dict[tuple[int, int], tuple[str, tuple[int, int]]]:
        """Position of every later occurrence -> (its id, the first occurrence's position)."""
        return {where: (rid, self._first[rid]) for where, rid in self._later.items()}


class CrashLedger:
    """Counts, per record, the engine deaths it was running through, so that a record which kills its
    replica again and again ends as an error row instead of looping. A record begun and never ended was
    running when its replica died (Ray restarts the replica and retries the batch)."""

    def __init__(self, max_crashes: int = 3) -> None:
        self.max_crashes = max_crashes
        self._running: set[str] = set()
        self._crashes: dict[str, int] = {}

    def peek(self, record_ids: list[str]) -> list[int]:
        """How many engine deaths each record has been through, counting a run that never ended."""
        return [self._crashes.get(r, 0) + (r in self._running) for r in record_ids]

    def begin(self, record_ids: list[str]) -> list[int]:
        counts = self.peek(record_ids)
        for rid, count in zip(record_ids, counts):
            self._crashes[rid] = count
            self._running.add(rid)
        return counts

    def end(self, record_ids: list[str]) -> None:
        for rid in record_ids:
            self._running.discard(rid)
            self._crashes.pop(rid, None)
