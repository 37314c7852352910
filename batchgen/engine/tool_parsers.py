"""Tool calls in an answer, per reasoning profile: which parser reads a model family's tool-call format.

- Nemotron Nano v2 (`<TOOLCALL>[...]</TOOLCALL>`): batchgen's own `outputs.parse_tool_calls`. vLLM 0.32 has no
  parser for this format (the model ships its own as a plugin file for vLLM's server), and batchgen's reads
  every block, keeps the text between blocks and names the block that fails.
- Qwen3 and Hermes-style models (`<tool_call>{...}</tool_call>`): vLLM's `hermes` parser.
- DeepSeek-R1 (`<｜tool▁calls▁begin｜>...`, the V3 format R1-0528 uses): vLLM's `deepseek_v3` parser. Its
  markers are special tokens, so the answer it reads is decoded with them (`keeps_special_tokens`); a
  tokenizer without them (R1's distilled models) gets no tool-call parsing.

vLLM's parsers keep only the text before the first call as content (text after the calls is dropped, as
vLLM's server does), and on a call they cannot read they log and return the text as content: batchgen
then keeps the text and writes `tool_call_parse_error` in `error`, as for its own parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batchgen.record.answers import ToolParse, parse_tool_calls, tool_call_id

# Profile name -> vLLM tool parser name (`vllm.tool_parsers.ToolParserManager`); absent: batchgen's own.
VLLM_TOOL_PARSERS = {"qwen3": "hermes", "deepseek-r1": "deepseek_v3"}


@dataclass
class ToolParser:
    """Reads the tool calls of one profile's answers: `parse(answer, record_id) -> (content, tool_calls or
    None, error or None)`, tool calls as `{id, name, arguments}` with deterministic ids."""

    name: str
    keeps_special_tokens: bool = False
    _vllm: object = field(default=None, repr=False)
    _marker: str = ""
    _own: ToolParse = parse_tool_calls  # when no vLLM parser is used

    def parse(self, content: str, record_id: str) -> tuple[str, list[dict] | None, str | None]:
        if self._vllm is None:
            return self._own(content, record_id)
        # `request` is only read by vLLM's streaming parsers and `adjust_request`; extraction ignores it.
        extracted = self._vllm.extract_tool_calls(content, request=None)
        if not extracted.tools_called:
            if self._marker in content:
                return content, None, (f"tool_call_parse_error: vLLM's {self.name} parser could not read the tool "
                                       f"call at character {content.index(self._marker)}")
            return content, None, None
        calls = [{"id": tool_call_id(record_id, i), "name": call.function.name, "arguments": call.function.arguments}
                 for i, call in enumerate(extracted.tool_calls)]
        return (extracted.content or "").strip(), calls or None, None


def _no_tool_calls(content: str, record_id: str) -> tuple[str, None, None]:
    return content, None, None


def tool_parser_for(profile_name: str, tokenizer) -> ToolParser:
    """The tool-call parser of a profile. Where vLLM's parser refuses the tokenizer (DeepSeek's needs its
    markers in the vocabulary, which R1's distilled models lack), answers are kept as written (`none`)."""
    name = VLLM_TOOL_PARSERS.get(profile_name)
    if name is None:
        return ToolParser("batchgen <TOOLCALL>")
    from vllm.tool_parsers import ToolParserManager

    try:
        parser = ToolParserManager.get_tool_parser(name)(tokenizer)
    except RuntimeError:
        return ToolParser("none", _own=_no_tool_calls)
    marker = getattr(parser, "tool_calls_start_token", None) or parser.tool_call_start_token
    return ToolParser(name, keeps_special_tokens=name == "deepseek_v3", _vllm=parser, _marker=marker)
