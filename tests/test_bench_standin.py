"""The benchmarks' stand-in engine's prefix cache (`benchmarks/standin.py`), as pure logic: the model the
simulated 8-replica benchmark of order and prefix caching stands on (`python -m benchmarks.scale prefix`).
A stand-in: it never answers a test that claims to test generation."""

from __future__ import annotations


def test_the_standin_prefix_cache_hits_leading_blocks_pins_running_ones_and_evicts_the_least_recently_freed():
    from benchmarks.standin import PrefixCache, block_hashes, prompt_tokens

    def prompt(doc: int, question: str) -> str:  # as `leading_text` makes it: role, text, per turn
        return f"system\nDocument {doc}: " + "lorem ipsum " * 100 + f"\nuser\n{question * 30}\n"

    a1, a2, b = block_hashes(prompt(0, "why? ")), block_hashes(prompt(0, "how? ")), block_hashes(prompt(1, "why? "))
    assert len(a1) == len(a2) == len(b) == (prompt_tokens(prompt(0, "why? ")) - 1) // 16 == 21  # 1,376 chars
    assert a1[:19] == a2[:19] and a1[19] != a2[19]  # the document's 19 full blocks (1,225 chars) are shared
    assert not set(a1) & set(b)  # a chain: the same text after another first block is another block
    cache = PrefixCache(capacity=46)
    assert cache.admit(a1, 2) == 0  # cold
    assert cache.admit(a2, 2) == 19  # the document hits; its blocks are pinned once
    assert cache.used == 21 + 2 + 2 + 2
    assert cache.admit(b, 2) is None  # 23 more blocks do not fit while both run: it waits
    cache.release(a1, 2)
    cache.release(a2, 2)
    assert not cache.pinned and cache.private == 0 and len(cache.free) == 23  # still cached, unpinned
    assert cache.admit(b, 2) == 0 and cache.hits(a1) == 21  # fits without evicting: 46 blocks used
    assert cache.admit([], 5) == 0  # 5 blocks evicted, least recently freed first, a prompt's tail first
    assert cache.hits(a1) == cache.hits(a2) == 18 and cache.hits(b) == 21 and cache.used == 46


def test_the_standin_reports_prompt_cached_and_generated_tokens_only_with_its_cache_keys(monkeypatch):
    from batchgen.spec.job import JobSpec
    from benchmarks.standin import STEP_SECONDS, StandInReplica, block_hashes, prompt_tokens

    monkeypatch.setenv(STEP_SECONDS, "0.001")

    def spec(**engine):
        return JobSpec.model_validate({"name": "t", "model": {"path": "m", "profile": "none"}, "input": {"uri": "/in"},
                                       "output": {"uri": "/out"}, "engine": engine,
                                       "scaling": {"replicas": 1, "gpus_per_replica": 0}})

    plain = StandInReplica(spec())
    assert not hasattr(plain, "engine_tokens")
    plain.close()
    doc = "word " * 400
    records = [{"system": doc, "prompt": f"question {i}", "max_tokens": 3} for i in range(4)]
    replica = StandInReplica(spec(standin_cache_blocks=1000, standin_prefill_s_per_token=1e-6))
    rows = [f.result(timeout=30)[0] for f in replica.submit(records, [f"r{i}" for i in range(4)])]
    replica.close()
    text = f"system\n{doc}\nuser\nquestion 0\n"
    shared = len(block_hashes(text))  # every full block lies in the document here
    assert [r["completion_tokens"] for r in rows] == [3] * 4 and rows[0]["prompt_tokens"] == prompt_tokens(text)
    assert replica.engine_tokens == {"prefill": 4 * prompt_tokens(text), "cached": 3 * shared * 16, "decode": 12}
