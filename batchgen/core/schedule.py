"""The order a job runs its records in (pure logic): records that share a prompt prefix next to each other,
and the longest expected first.

Why order pays: an engine's prefix cache helps only when records sharing a prefix (a document asked many
questions, few-shot examples, a long system prompt) reach it while the prefix is still cached, and records
that share their prefix's blocks also share their KV cache, so more of them fit on the engine at once; in
input order, with more distinct prefixes than the cache holds, each is evicted before it is reused. And
reasoning lengths are long-tailed: records expected to run longest go first, so a job does not end with a
few long traces running alone while the engine idles.

What is ordered: one window at a time, a block of the read (`reading.ROWS_PER_BLOCK` consecutive records of
one file), so memory stays bounded by the block and the order is a pure function of the input and the
spec: a rerun orders the same way, and a resumed job orders what is left (Ray Data's checkpoint filter
drops finished records at the read, before the window is ordered). Output, ids and exactly-once do not
depend on it: each record's row is the same in any order (its seeds come from its id).

The key, per record (`order`):
1. its group: records whose leading text (`leading_text`: tools, then each turn's role and text, the order
   chat templates render them in) agrees on the first `GROUP_CHARS` characters. Groups go longest expected
   first (their longest record's `expected_tokens`), then by that text, so groups sharing a shorter prefix
   still sit side by side. A record whose whole text is shorter is a group of its own: a short prompt is
   cheap to prefill, and grouping records by it would hold their long-running ones back.
2. within a group, longest expected first, then the whole leading text (up to `TEXT_CHARS`), so records
   of one expected length that share a longer prefix (the same document after a shared instruction) are
   next to each other, then more samples first, then input order. Expected lengths come from `max_tokens`
   and budgets (`expected_tokens`), which a job sets for classes of records, not each its own.
A proxy, not the tokens: the text is compared before the chat template and the tokenizer run (those are
the replica's, and the leading characters of a rendered prompt follow from the turns' text in order).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa

from batchgen.core.blocks import Decoder
from batchgen.core.reading import ROWS_PER_BLOCK
from batchgen.record.contract import RecordError, RecordFields, Request, normalize
from batchgen.record.profiles import flag_mode

GROUP_CHARS = 1024  # ~250 tokens: a shared prefix shorter than this saves little prefill
TEXT_CHARS = 32768  # past ~8k tokens a longer shared prefix changes nothing in the order worth its cost
ANSWER_TOKENS = 1024  # an answer's expected length where max_tokens does not bound it lower
UNBOUNDED = 1 << 20  # a record without max_tokens: bounded only by the context, so it may run longest


def leading_text(request: Request, limit: int | None = TEXT_CHARS) -> str:
    """What a chat template renders first, in its order: the tools offered (templates put them in or
    before the system turn), then each turn's role and text; its first `limit` characters (None: all)."""
    parts = [json.dumps(request.tools, sort_keys=True, default=str)] if request.tools else []
    for message in request.messages:
        parts.append(f"{message['role']}\n{message.get('content') or ''}\n")
    return "".join(parts)[:limit]


def expected_tokens(request: Request, grace_tokens: int) -> int:
    """How many tokens the record's longest request may generate, as far as its fields say: `max_tokens`
    (or `UNBOUNDED`); with reasoning on and a thinking budget (a sweep's largest), the budget plus its
    grace (the model card's rule: the reasoning ends by then) plus an answer (`ANSWER_TOKENS`); with
    reasoning off, an answer. Samples (`n`) run side by side, so they do not make a record longer. The
    mode as most reasoning profiles weigh it, without knowing the model's: the record's, its messages'
    flags, the job's default, else on (a profile that never reasons is taken as reasoning: an estimate
    errs long, never short)."""
    cap = request.max_tokens or UNBOUNDED
    mode = request.reasoning or flag_mode(request.messages) or request.default_reasoning or "on"
    if mode == "off":
        return min(cap, ANSWER_TOKENS)
    budgets = request.max_thinking_tokens if isinstance(request.max_thinking_tokens, list) else [request.max_thinking_tokens]
    if None in budgets:
        return cap
    return min(cap, max(budgets) + grace_tokens + ANSWER_TOKENS)


def order(records: Sequence[Request | RecordError], grace_tokens: int = 500) -> list[int]:
    """The indices of `records` in the order they should run (a permutation; see the module's docstring).
    Records that cannot run (`RecordError`) go first: they take no engine time."""
    texts = [leading_text(r) if isinstance(r, Request) else "" for r in records]
    lengths = [expected_tokens(r, grace_tokens) if isinstance(r, Request) else 0 for r in records]
    groups = [text[:GROUP_CHARS] if len(text) >= GROUP_CHARS else "" for text in texts]  # "": a group of its own
    longest: dict[str, int] = {}
    for group, length in zip(groups, lengths):
        if group:
            longest[group] = max(longest.get(group, 0), length)

    def key(i: int):
        record = records[i]
        if not isinstance(record, Request):
            return (0, 0, "", 0, "", 0, i)
        return (1, -longest.get(groups[i], lengths[i]), groups[i], -lengths[i], texts[i], -record.n, i)

    return sorted(range(len(records)), key=key)


def ordered_block(block: pa.Table, decoder: Decoder, defaults: RecordFields, grace_tokens: int) -> pa.Table:
    """A block of the read (records mode) with its rows in the order they should run (`order`), each row
    read as the replica will read it (`decoder`, the job's defaults applied) and left as it was; ordered
    in windows of `reading.ROWS_PER_BLOCK` rows (a job's read blocks are at most that; `batchgen.generate`
    gets a pipeline's blocks, of any size). The order is an optimisation: a window whose records cannot
    be read for it (an error the replica will turn into the records' error rows) keeps its input order."""
    windows = []
    for start in range(0, block.num_rows, ROWS_PER_BLOCK):
        window = block.slice(start, ROWS_PER_BLOCK)
        try:
            ids = window.column("id").to_pylist()
            requests = [normalize(raw, defaults, row_id=rid) if isinstance(raw, dict) else raw
                        for raw, rid in zip(decoder.records(window), ids)]
            windows.append(window.take(order(requests, grace_tokens)))
        except Exception:  # never the job's failure: the replica decodes the same rows and says what is wrong
            windows.append(window)
    return pa.concat_tables(windows) if len(windows) != 1 else windows[0]
