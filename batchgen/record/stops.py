"""Stop strings on the answer only (pure logic, no engine): a record's `stop` field as a list, and
`AnswerStops`, which matches them against the answer while its tokens stream in (`replica` aborts the
request once one matched)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def stop_strings(stop: str | list[str] | None) -> list[str]:
    """A record's `stop` field as a list. Raises ValueError (the record's `invalid_value`) for an empty
    string, which would match everywhere; vLLM refuses it too (`SamplingParams._verify_args`)."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if "" in stops:
        raise ValueError(f"stop: an empty string cannot be a stop string (got {stop!r:.80})")
    return stops


class AnswerStops:
    """Matches a record's stop strings against its answer while the tokens stream in.

    vLLM matches stop strings over everything a request generates, reasoning included
    (`vllm/v1/engine/detokenizer.py`, 0.32); hosted APIs apply them to the answer and let the reasoning
    run on. This applies vLLM's own rules (`check_stop_strings`) to the answer alone: the answer starts
    after the first end-of-thinking token, as `split_reasoning` has it (with reasoning off, or no end
    token, it is the whole output); the stop string that completes earliest wins (ties: list order); the
    text ends where that string starts; the tokens end with the one that completed it.

    The answer is decoded incrementally with `decode` (ids to text, the same decoding as the final
    split), a few tokens at a time: each step decodes only the tokens since the last complete character,
    so a long answer costs O(n) in all. Pure logic: no engine."""

    def __init__(
        self, stops: Sequence[str], decode: Callable[[list[int]], str], mode: str, end_token_id: int | None
    ):
        self.stops = list(stops)
        self._decode = decode
        self._end_token_id = end_token_id
        self._in_answer = mode == "off" or end_token_id is None
        self.token_ids: list[int] = []  # every generated token so far
        self._answer: list[int] = []
        self._text = ""  # the answer decoded so far, up to its last complete character
        self._prefix = 0  # start of the tokens decoded again for context
        self._read = 0  # answer tokens already in `_text`
        self.content: str | None = None  # once a stop string matched: the answer before it

    def push(self, token_id: int) -> bool:
        """Takes the next generated token; True once it completes a stop string (then `content` is the
        answer before that string and `token_ids` ends with this token). Call no more after True."""
        self.token_ids.append(token_id)
        if not self._in_answer:
            self._in_answer = token_id == self._end_token_id
            return False
        self._answer.append(token_id)
        before = self._decode(self._answer[self._prefix:self._read])
        window = self._decode(self._answer[self._prefix:])
        # A token that only starts a multi-byte character (or a skipped special token) adds no text yet.
        if len(window) <= len(before) or window.endswith("\ufffd"):
            return False
        checked = len(self._text)
        self._text += window[len(before):]
        self._prefix, self._read = self._read, len(self._answer)
        best = None
        for stop in self.stops:
            # Only a match that ends in the new text is new: earlier text was searched already.
            at = self._text.find(stop, max(0, checked - len(stop) + 1))
            if at != -1 and (best is None or at + len(stop) < best[0] + len(best[1])):
                best = (at, stop)
        if best is None:
            return False
        self.content = self._text[: best[0]]
        return True
