"""Stop strings matched on the answer only, on a byte vocabulary (pure; the engine side is in
tests/engine/test_replica.py)."""

from batchgen.record.stops import AnswerStops

# AnswerStops on a byte vocabulary: 0 ends the reasoning, 1 is a special token (decodes to nothing).
VOCAB = {0: b"", 1: b"", 2: b"think it", 3: b"ab", 4: b"cd", 5: b"\xc3", 6: b"\xa9", 7: b"e f", 8: b"abcd"}


def watch(stops, mode="on"):
    return AnswerStops(stops, lambda ids: b"".join(VOCAB[i] for i in ids).decode(errors="replace"), mode, 0)


def feed(stops, tokens, mode="on"):
    """(tokens taken until a stop matched, the content before it); content None: no match."""
    w = watch(stops, mode)
    for token in tokens:
        if w.push(token):
            break
    return w.token_ids, w.content


def test_answer_stops_skip_the_reasoning_and_cut_at_the_completing_token():
    assert feed([" ", "b"], [2, 2, 0, 3, 4, 7, 3]) == ([2, 2, 0, 3], "a")
    assert feed(["bc"], [2, 0, 3, 4, 7]) == ([2, 0, 3, 4], "a")  # across two tokens
    assert feed(["t"], [2, 2, 3]) == ([2, 2, 3], None)  # no end of reasoning: all reasoning
    assert feed(["t"], [2, 0, 3], mode="off") == ([2], "")  # reasoning off: all answer


def test_answer_stops_earliest_completion_wins_then_list_order():
    assert feed(["cd", "bc"], [0, 8]) == ([0, 8], "a")
    assert feed(["abcd", "bcd"], [0, 8]) == ([0, 8], "")
    assert feed(["bcd", "abcd"], [0, 8]) == ([0, 8], "a")


def test_answer_stops_wait_for_whole_characters_and_ignore_special_tokens():
    assert feed(["\u00e9"], [0, 3, 5, 1, 6, 4]) == ([0, 3, 5, 1, 6], "ab")
    assert feed(["\ufffd"], [0, 5, 6, 3]) == ([0, 5, 6, 3], None)  # half a character is never text
