"""The job's order (pure logic): records sharing a prefix together, longest expected first; and the prefix
cache's counts in the stats."""

from __future__ import annotations

import random

import pyarrow as pa

from batchgen.core.blocks import Decoder
from batchgen.core.passthrough import Passthrough
from batchgen.core.schedule import ANSWER_TOKENS, GROUP_CHARS, UNBOUNDED, expected_tokens, order, ordered_block
from batchgen.core.stats import prefix_cache
from batchgen.record.contract import RecordError, RecordFields, normalize


def request(**fields):
    return normalize({"id": fields.pop("id", "r"), **fields}, RecordFields(**fields.pop("defaults", {})))


def test_expected_length_follows_max_tokens_budgets_and_the_mode():
    assert expected_tokens(request(prompt="x"), 500) == UNBOUNDED
    assert expected_tokens(request(prompt="x", max_tokens=300), 500) == 300
    assert expected_tokens(request(prompt="x", max_thinking_tokens=1000), 500) == 1000 + 500 + ANSWER_TOKENS
    assert expected_tokens(request(prompt="x", max_thinking_tokens=1000, max_tokens=900), 500) == 900
    assert expected_tokens(request(prompt="x", max_thinking_tokens=[0, 256, 4096]), 100) == 4096 + 100 + ANSWER_TOKENS
    assert expected_tokens(request(prompt="x", max_thinking_tokens=[0, None]), 100) == UNBOUNDED  # one runs unbounded
    assert expected_tokens(request(prompt="x", reasoning="off"), 500) == ANSWER_TOKENS
    assert expected_tokens(request(prompt="x /no_think"), 500) == ANSWER_TOKENS  # the flag, as the profile reads it
    assert expected_tokens(request(prompt="x", defaults={"reasoning": "off", "max_tokens": 64}), 500) == 64


def test_records_sharing_a_prefix_are_grouped_and_groups_go_longest_first():
    rng = random.Random(0)
    docs = {d: f"doc {d} " + "x" * GROUP_CHARS for d in "abc"}
    long_doc = "c"  # its records may run longest: its group goes first
    records = []
    for i in range(60):
        d = rng.choice("abc")
        records.append(request(id=f"r{i}", prompt=f"{docs[d]} question {i}", max_tokens=4096 if d == long_doc else 64))
    ranked = [records[i] for i in order(records)]
    docs_in_order = [r.messages[0]["content"][4] for r in ranked]
    runs = [d for k, d in enumerate(docs_in_order) if k == 0 or d != docs_in_order[k - 1]]
    assert runs == ["c", "a", "b"]  # one run per document, the longest group first, then by text


def test_within_a_group_longest_first_then_text_then_samples_then_input_order():
    shared = "instructions " * 200  # longer than GROUP_CHARS: one group
    records = [
        request(id="short", prompt=shared + "b", max_tokens=10),
        request(id="long", prompt=shared + "z", max_tokens=1000),
        request(id="b2", prompt=shared + "b", max_tokens=10, n=4),
        request(id="a", prompt=shared + "a", max_tokens=10),
        request(id="short-again", prompt=shared + "b", max_tokens=10),
    ]
    assert [records[i].id for i in order(records)] == ["long", "a", "b2", "short", "short-again"]


def test_tools_lead_the_text_and_errors_go_first():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    records = [request(id="plain", prompt="q", max_tokens=5), RecordError("invalid_value", "bad"),
               request(id="tools", prompt="q", tools=tools, max_tokens=5)]
    ranked = order(records)
    assert ranked[0] == 1  # the error row: no engine time
    assert sorted(ranked[1:]) == [0, 2]


def test_the_order_is_a_pure_function_of_the_records():
    records = [request(id=f"r{i}", prompt=f"p{i % 7} " * 300 + str(i), max_tokens=16 * (i % 5 + 1)) for i in range(200)]
    assert order(records) == order(list(records))
    assert sorted(order(records)) == list(range(200))


def test_a_block_is_reordered_whole_with_its_rows_unchanged():
    lines = [b'{"id": "a", "prompt": "hi", "max_tokens": 5}', b'{not json', b'{"id": "b", "prompt": "hi", "max_tokens": 50}']
    block = pa.table({"id": ["a", "f:2", "b"], "__batchgen_source": ["f"] * 3, "__batchgen_index": [1, 2, 3],
                      "__batchgen_line": pa.array(lines, pa.binary())})
    ordered = ordered_block(block, Decoder(Passthrough(pa.schema([]), {})), RecordFields(), 500)
    assert ordered.column("id").to_pylist() == ["f:2", "b", "a"]  # the bad line first, then the longest
    assert sorted(ordered.to_pylist(), key=lambda r: r["__batchgen_index"]) == block.to_pylist()


def test_prefix_cache_counts_sum_over_replicas():
    assert prefix_cache({}) is None
    found = prefix_cache({"b": {"prefill": 1000, "cached": 900, "decode": 5}, "a": {"prefill": 3000, "cached": 0}})
    assert {k: found[k] for k in ("prompt_tokens", "cached_tokens", "prefill_tokens_computed", "hit_rate")} == {
        "prompt_tokens": 4000, "cached_tokens": 900, "prefill_tokens_computed": 3100, "hit_rate": 0.225}
    assert [(r["replica"], r["hit_rate"]) for r in found["replicas"]] == [("a", 0.0), ("b", 0.9)]


def test_short_prompts_are_not_grouped_so_the_longest_records_go_first():
    # The same short prompt for a long and a short record, another for a middle one: longest first, whatever
    # the prompts (a short prompt is cheap to prefill again).
    records = [request(id="a-short", prompt="say apple", max_tokens=16), request(id="b-mid", prompt="say river", max_tokens=500),
               request(id="a-long", prompt="say apple", max_tokens=1500)]
    assert [records[i].id for i in order(records)] == ["a-long", "b-mid", "a-short"]
