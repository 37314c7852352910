"""Tool calls per reasoning profile, on recorded answers (pure: vLLM's parsers need only a tokenizer, and
the toy model writes Nemotron's format alone, which tests/engine/test_samples.py runs end to end). The texts are
the formats the families' chat templates teach: Qwen3's `<tool_call>` JSON (Hermes style) and DeepSeek-R1's
V3 markers."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from batchgen.engine.tool_parsers import tool_parser_for

DEEPSEEK_MARKERS = ["<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
                    "<｜tool▁sep｜>"]


@pytest.fixture(scope="module")
def tokenizer():
    """A small word-level tokenizer that holds the families' markers as tokens, as their real ones do."""
    vocab = {token: i for i, token in enumerate(["[UNK]", "<tool_call>", "</tool_call>", *DEEPSEEK_MARKERS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")
    fast.add_special_tokens({"additional_special_tokens": DEEPSEEK_MARKERS})
    return fast


QWEN3 = ('I will check both cities.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
         '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>')
DEEPSEEK = ("Let me look it up.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
            '{"city": "Paris"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>')


@pytest.mark.parametrize("profile, text, names", [
    ("qwen3", QWEN3, ["get_weather", "get_time"]),
    ("deepseek-r1", DEEPSEEK, ["get_weather"]),
])
def test_vllms_parser_reads_the_profiles_format(tokenizer, profile, text, names):
    content, calls, error = tool_parser_for(profile, tokenizer).parse(text, "r1")
    assert error is None and [c["name"] for c in calls] == names
    assert content in ("I will check both cities.", "Let me look it up.")
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    # ids are batchgen's: deterministic per record and position, as for Nemotron's calls
    again = tool_parser_for(profile, tokenizer).parse(text, "r1")[1]
    assert [c["id"] for c in again] == [c["id"] for c in calls] and len({c["id"] for c in calls}) == len(calls)


def test_an_unreadable_call_keeps_the_text_and_says_so(tokenizer):
    broken = '<tool_call>\n{"name": "get_weather", "arguments": {"city": </tool_call>'
    content, calls, error = tool_parser_for("qwen3", tokenizer).parse(broken, "r1")
    assert content == broken and calls is None
    assert error == "tool_call_parse_error: vLLM's hermes parser could not read the tool call at character 0"


def test_an_answer_without_calls_is_left_alone(tokenizer):
    for profile in ("qwen3", "deepseek-r1", "nemotron-nano-v2", "none"):
        assert tool_parser_for(profile, tokenizer).parse("Paris is sunny.", "r1") == ("Paris is sunny.", None, None)


def test_nemotron_keeps_batchgens_own_parser(tokenizer):
    parser = tool_parser_for("nemotron-nano-v2", tokenizer)
    content, calls, error = parser.parse('<TOOLCALL>[{"name": "f", "arguments": {"x": 1}}]</TOOLCALL>', "r1")
    assert calls[0]["name"] == "f" and not parser.keeps_special_tokens
    assert tool_parser_for("deepseek-r1", tokenizer).keeps_special_tokens  # its markers are special tokens


def test_a_tokenizer_without_deepseeks_markers_gets_no_tool_parsing():
    # R1's distilled models (Qwen or Llama tokenizers) have no tool-call markers: vLLM's parser refuses them,
    # and their answers are kept as written.
    plain = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
    parser = tool_parser_for("deepseek-r1", plain)
    assert parser.name == "none" and parser.parse(DEEPSEEK, "r1") == (DEEPSEEK, None, None)
