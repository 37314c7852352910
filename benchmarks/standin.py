"""A STAND-IN ENGINE for the benchmarks of scale (occupancy, streaming memory, replicas): no model, no vLLM.

It is GPU-like on purpose: continuous batching with a fixed time per decode step for up to `max_num_seqs`
sequences (decode is memory-bound on a GPU, so a step costs about the same for 10 sequences as for 200),
records joining and leaving at step boundaries, each record running for its `max_tokens` steps. It sleeps
instead of computing, so eight replicas fit on two cores and what is measured is batchgen around the
engine. A job gets it as its replica factory (`run(spec, replica_factory=StandInReplica)`); everything
else in the job runs for real: readers, actor pool, checkpointing, writers. It logs its occupancy (running
sequences per step) as benchmark events. Never used by a test that claims to test generation.

With `engine.standin_cache_blocks` or `engine.standin_prefill_s_per_token` in the spec it also models vLLM's
prefix cache (`PrefixCache`): a prompt's tokens are estimated from its text (`CHARS_PER_TOKEN`), its full
16-token blocks are named by a hash chain, the leading blocks found in the replica's cache are hits, the rest
are computed, and the step that admits a record costs `standin_prefill_s_per_token` per computed token on top
of the decode step. KV blocks (cached prefixes and running records' own) share `standin_cache_blocks`: a
record that does not fit waits, and admission stops there (first come, first served, as in vLLM). The
replica then keeps `engine_tokens` (prompt, cached and generated tokens: the job's `stats.prefix_cache`) and
logs `cache` events. Without either key it runs exactly as before, with no `engine_tokens`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future

from batchgen.core.schedule import leading_text
from batchgen.record.contract import RecordError, normalize
from batchgen.record.rows import answer_row, error_row
from batchgen.spec.job import JobSpec
from benchmarks.events import log_event

STEP_SECONDS = "BATCHGEN_STANDIN_STEP_SECONDS"  # one decode step, for all running sequences at once
DEFAULT_MAX_TOKENS = 16
# The prefix cache model's engine keys (see the module's docstring), and its units, vLLM's.
CACHE_BLOCKS = "standin_cache_blocks"  # KV blocks in all: cached prefixes and running records' own blocks
PREFILL_S_PER_TOKEN = "standin_prefill_s_per_token"  # step time per prompt token not found in the cache
BLOCK_TOKENS = 16
CHARS_PER_TOKEN = 4  # a prompt's tokens, estimated from its text


def prompt_tokens(text: str) -> int:
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def block_hashes(text: str) -> list[str]:
    """The hash chain of a prompt's full blocks (a block's hash: of the previous one's and its own text), as
    vLLM names blocks; not the block holding the last token, which vLLM always computes."""
    chars, previous, hashes = BLOCK_TOKENS * CHARS_PER_TOKEN, "", []
    for i in range((prompt_tokens(text) - 1) // BLOCK_TOKENS):
        previous = hashlib.sha256(f"{previous}\0{text[i * chars:(i + 1) * chars]}".encode()).hexdigest()[:32]
        hashes.append(previous)
    return hashes


def blocks_needed(tokens: int, max_tokens: int) -> int:
    """KV blocks a record holds by its end: its prompt's and its generated tokens'."""
    return -(-(tokens + max_tokens) // BLOCK_TOKENS)


class PrefixCache:
    """vLLM's block pool, by count (pure logic): `capacity` blocks, each a running record's own (`private`)
    or a hashed prompt block. Hashed blocks that running records hold are pinned (`pinned`: hash -> holders);
    the others stay cached (`free`, least recently freed first) until their room is needed."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.pinned: dict[str, int] = {}
        self.free: OrderedDict[str, None] = OrderedDict()
        self.private = 0

    @property
    def used(self) -> int:
        return len(self.pinned) + len(self.free) + self.private

    def hits(self, hashes: list[str]) -> int:
        """How many of the leading blocks are cached (pinned or free)."""
        count = 0
        for h in hashes:
            if h not in self.pinned and h not in self.free:
                break
            count += 1
        return count

    def admit(self, hashes: list[str], private: int, force: bool = False) -> int | None:
        """Starts a record with these prompt blocks and `private` blocks of its own: its hit blocks, or None
        when it does not fit (unless `force`: the engine is empty and it must run). Pins its blocks, evicting
        the least recently freed cached blocks for the room its new ones take."""
        hit = self.hits(hashes)
        unpinned = [h for h in hashes if h not in self.pinned]  # a block twice in a prompt: pinned once
        if not force and len(self.pinned) + self.private + len(set(unpinned)) + private > self.capacity:
            return None
        for h in hashes:
            if h in self.free:
                del self.free[h]
            self.pinned[h] = self.pinned.get(h, 0) + 1
        self.private += private
        while self.used > self.capacity and self.free:
            self.free.popitem(last=False)
        return hit

    def release(self, hashes: list[str], private: int) -> None:
        """A record ended: its own blocks go, its prompt blocks no other record holds stay cached, freed
        last block first (vLLM frees in reverse, so a prompt's tail is evicted before its head)."""
        self.private -= private
        for h in reversed(hashes):
            self.pinned[h] -= 1
            if not self.pinned[h]:
                del self.pinned[h]
                self.free[h] = None


class StandInReplica:
    """`submit(records, ids)` -> one Future per record, resolved (to its one row: samples are not
    modelled) when its last step ran."""

    def __init__(self, spec: JobSpec, budgeted: bool = False):  # budgets are not modelled: lengths are given
        self.model_name = f"stand-in:{spec.model.path}"
        self.defaults = spec.defaults
        self.max_num_seqs = int(spec.engine.get("max_num_seqs", 256))
        self.step_seconds = float(os.environ.get(STEP_SECONDS, "0.02"))
        self._waiting: deque = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.cache = None
        if CACHE_BLOCKS in spec.engine or PREFILL_S_PER_TOKEN in spec.engine:
            self.job = spec.name
            self.cache = PrefixCache(int(spec.engine.get(CACHE_BLOCKS) or 1 << 62))
            self.prefill_s_per_token = float(spec.engine.get(PREFILL_S_PER_TOKEN, 0.0))
            self.engine_tokens = {"prefill": 0, "cached": 0, "decode": 0}
        threading.Thread(target=self._steps if self.cache is None else self._cached_steps, daemon=True).start()

    def submit(self, records: list[dict], ids: list[str]) -> list[Future]:
        futures = []
        for raw, rid in zip(records, ids):
            future = Future()
            request = normalize(raw, self.defaults, row_id=rid)
            if isinstance(request, RecordError):
                future.set_result([error_row(rid, self.model_name, request)])
            elif self.cache is not None:
                tokens, text = request.max_tokens or DEFAULT_MAX_TOKENS, leading_text(request, limit=None)
                hashes, prompt = block_hashes(text), prompt_tokens(text)
                with self._lock:
                    self._waiting.append((future, rid, request, tokens, hashes, prompt,
                                          blocks_needed(prompt, tokens) - len(hashes)))
            else:
                with self._lock:
                    self._waiting.append((future, rid, request, request.max_tokens or DEFAULT_MAX_TOKENS))
            futures.append(future)
        log_event("submitted", len(records))
        return futures

    def _steps(self) -> None:
        running: list[list] = []  # [future, id, request, tokens left, tokens in all]
        occupancy, window_start = [], time.time()
        while not self._stop.is_set():
            with self._lock:
                while self._waiting and len(running) < self.max_num_seqs:
                    future, rid, request, tokens = self._waiting.popleft()
                    running.append([future, rid, request, tokens, tokens])
            if running:
                occupancy.append(len(running))
            time.sleep(self.step_seconds)
            for seq in running:
                seq[3] -= 1
            for future, rid, request, _, tokens in [s for s in running if s[3] <= 0]:
                future.set_result([answer_row(
                    record_id=rid, model=self.model_name, mode="off", reasoning_text=None,
                    content=" ".join(["token"] * min(tokens, 64)), finish_reason="length", reasoning_end=None,
                    prompt_tokens=len(str(request.messages[-1]["content"]).split()), reasoning_tokens=0,
                    completion_tokens=tokens)])
            running = [s for s in running if s[3] > 0]
            if time.time() - window_start >= 0.5 and occupancy:  # one event per half second, not per step
                # With it, the stand-in's own CPU so far: the pipeline benchmark counts everything but it.
                log_event("occupancy", sum(occupancy) / len(occupancy) / self.max_num_seqs, len(occupancy),
                          time.thread_time())
                occupancy, window_start = [], time.time()

    def _cached_steps(self) -> None:
        """`_steps` with the prefix cache: admission while the next record fits, the admitting step's
        prefill, blocks released as records end. Logs `cache` events (job, records ended, prompt, cached
        and generated tokens, mean running sequences since the last one, waiting) every half second while
        they change, and at once when the engine goes idle."""
        running: list[list] = []  # [future, id, request, tokens left, tokens in all, hashes, prompt, own blocks]
        counts = self.engine_tokens
        occupancy, window_start, ended, logged = [], time.time(), 0, None
        while not self._stop.is_set():
            computed = 0
            with self._lock:
                while self._waiting and len(running) < self.max_num_seqs:
                    future, rid, request, tokens, hashes, prompt, own = self._waiting[0]
                    hit = self.cache.admit(hashes, own, force=not running)
                    if hit is None:  # first come, first served: the next one waits too
                        break
                    self._waiting.popleft()
                    cached = hit * BLOCK_TOKENS
                    counts["prefill"] += prompt
                    counts["cached"] += cached
                    computed += prompt - cached
                    running.append([future, rid, request, tokens, tokens, hashes, prompt, own])
                waiting = len(self._waiting)
            if running:
                occupancy.append(len(running))
            time.sleep(self.step_seconds + self.prefill_s_per_token * computed)
            for seq in running:
                seq[3] -= 1
            counts["decode"] += len(running)
            for future, rid, request, _, tokens, hashes, prompt, own in [s for s in running if s[3] <= 0]:
                with self._lock:
                    self.cache.release(hashes, own)
                ended += 1
                future.set_result([answer_row(
                    record_id=rid, model=self.model_name, mode="off", reasoning_text=None,
                    content=" ".join(["token"] * min(tokens, 64)), finish_reason="length", reasoning_end=None,
                    prompt_tokens=prompt, reasoning_tokens=0, completion_tokens=tokens)])
            running = [s for s in running if s[3] > 0]
            now = time.time()
            state = (ended, counts["prefill"], waiting)
            idle = not running and not waiting
            if state != logged and (now - window_start >= 0.5 or idle):
                log_event("cache", self.job, ended, counts["prefill"], counts["cached"], counts["decode"],
                          round(sum(occupancy) / len(occupancy), 2) if occupancy else 0, waiting)
                if occupancy:
                    log_event("occupancy", sum(occupancy) / len(occupancy) / self.max_num_seqs, len(occupancy),
                              time.thread_time())
                occupancy, window_start, logged = [], now, state

    def close(self) -> None:
        self._stop.set()


def install() -> None:
    """Ray's worker_process_setup_hook: instruments the readers (no behaviour changed) so that every worker
    logs when it finishes reading an input file."""
    import batchgen.core.reading

    reader = batchgen.core.reading.read_stream

    def logged(stream, path, *args, **kwargs):
        yield from reader(stream, path, *args, **kwargs)
        log_event("read", path)

    batchgen.core.reading.read_stream = logged
