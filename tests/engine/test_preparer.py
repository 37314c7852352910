"""The record preparer (`batchgen.engine.preparer`) with the toy tokenizer: a raw record to its engine input
or error row, as `validate`, the replica and the benchmarks all prepare it (no engine)."""

from __future__ import annotations

import json

import pytest

from batchgen.engine.preparer import RecordPreparer
from batchgen.record.budget import BudgetSpec
from batchgen.record.contract import RecordError, RecordFields
from batchgen.record.profiles import PROFILES
from batchgen.record.prompting import EngineInput
from batchgen.record.rows import OUTPUT_FIELDS
from tests.conftest import TEST_GRACE, TOY

NEMOTRON = PROFILES["nemotron-nano-v2"]


@pytest.fixture(scope="module")
def preparer(toy_tokenizer):
    return RecordPreparer("toy", toy_tokenizer, NEMOTRON, 1024, BudgetSpec(grace_tokens=TEST_GRACE))


def prompt_ids(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def test_a_record_becomes_its_engine_input(preparer, toy_tokenizer):
    prepared = preparer.prepare({"id": 7, "prompt": "hello", "max_tokens": 50}, "job-id-7")
    assert isinstance(prepared, EngineInput)
    assert prepared.record_id == "job-id-7"  # the job's row id, not the record's own
    assert prepared.mode == "on" and prepared.prompt.endswith("User\nhello\n<SPECIAL_11>Assistant\n<think>\n")
    assert prepared.prompt_ids == prompt_ids(toy_tokenizer, prepared.prompt)
    # The card's sampling for reasoning on, the record's max_tokens; no budget, one sample.
    assert prepared.sampling == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 50}
    assert (prepared.budget, prepared.n, prepared.sweep, prepared.max_thinking_tokens) == (None, 1, (), None)
    # Without max_tokens, the room the context leaves.
    free = preparer.prepare({"prompt": "hello"}, "f")
    assert free.sampling["max_tokens"] == 1024 - len(free.prompt_ids)


def test_the_defaults_apply_and_the_record_wins(toy_tokenizer):
    off = RecordPreparer("toy", toy_tokenizer, NEMOTRON, 1024, defaults=RecordFields(reasoning="off", max_tokens=9))
    assert off.prepare({"prompt": "x"}, "a").mode == "off"
    assert off.prepare({"prompt": "x"}, "a").sampling == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 9}
    assert off.prepare({"prompt": "x", "reasoning": "on", "max_tokens": 3}, "b").sampling["max_tokens"] == 3


@pytest.mark.parametrize("raw, error", [
    ({"id": "b", "prompt": "x", "max_tokens": "abc"}, "invalid_type: max_tokens: Input should be a valid integer (got 'abc')"),
    ({"id": "b", "prompt": "x", "messages": []}, "empty_messages: messages: messages is empty (got [])"),
    ({"id": "b", "prompt": "word " * 1200}, "prompt_too_long: prompt is 1219 tokens, max_model_len is 1024"),
])
def test_a_bad_record_is_an_error_row_naming_the_field(preparer, raw, error):
    row = preparer.prepare(raw, "row-b")
    assert tuple(row) == OUTPUT_FIELDS
    assert (row["id"], row["error"], row["finish_reason"], row["model"]) == ("row-b", error, "error", "toy")
    assert (row["sample_index"], row["reasoning"], row["prompt_tokens"], row["content"]) == (None, None, 0, None)


def test_build_gives_the_record_error_and_passes_a_decoding_error_through(preparer):
    error = preparer.build({"prompt": "x", "temperature": -1}, "t")
    assert error == RecordError("out_of_range", "temperature: Input should be greater than or equal to 0 (got -1)")
    undecoded = RecordError("invalid_json", "line 3: Expecting value")
    assert preparer.build(undecoded, "line-3") is undecoded


def test_a_budget_needs_the_budget_processor(toy_tokenizer):
    without = RecordPreparer("toy", toy_tokenizer, NEMOTRON, 1024, budget_processor=False)
    row = without.prepare({"prompt": "hello", "max_thinking_tokens": 8}, "r")
    assert row["error"] == ("invalid_value: max_thinking_tokens: this replica was started without budgets "
                            "(Replica(..., budget_processor=True))")
    # The record did prepare: the row says its mode and prompt length.
    assert row["reasoning"] == "on" and row["prompt_tokens"] == len(without.build({"prompt": "hello"}, "r").prompt_ids)
    # With reasoning off a budget plans nothing, so it needs no processor; neither does a record without one.
    assert isinstance(without.prepare({"prompt": "hello", "reasoning": "off", "max_thinking_tokens": 8}, "r"), EngineInput)
    assert isinstance(without.prepare({"prompt": "hello"}, "r"), EngineInput)
    planned = RecordPreparer("toy", toy_tokenizer, NEMOTRON, 1024).prepare({"prompt": "hello", "max_thinking_tokens": 8}, "r")
    assert (planned.budget.budget, planned.budget.grace, planned.budget.strict) == (8, 500, False)


def test_a_sweep_runs_its_largest_budget_and_plans_each(preparer, toy_tokenizer):
    prepared = preparer.prepare({"prompt": "hello", "max_thinking_tokens": [16, 4, None]}, "s")
    assert [b for b, _ in prepared.sweep] == [16, 4, None]  # the record's order: its rows'
    plans = dict(prepared.sweep)
    assert (plans[16].budget, plans[4].budget, plans[None]) == (16, 4, None)
    assert plans[4].grace == TEST_GRACE and plans[4].starts_at_line_break  # the prompt ends "<think>\n"
    # No budget is the largest: it runs unbudgeted, the others fork from it.
    assert (prepared.max_thinking_tokens, prepared.budget) == (None, None)
    finite = preparer.prepare({"prompt": "hello", "max_thinking_tokens": [16, 4]}, "s")
    assert finite.max_thinking_tokens == 16 and finite.budget == dict(finite.sweep)[16]
    # Its largest budget runs with the processor: without it, the sweep is refused like one budget.
    without = RecordPreparer("toy", toy_tokenizer, NEMOTRON, 1024, budget_processor=False)
    assert without.prepare({"prompt": "hello", "max_thinking_tokens": [16, 4]}, "s")["error"].startswith(
        "invalid_value: max_thinking_tokens: this replica was started without budgets")


def test_for_model_loads_the_toy_and_takes_the_context_from_the_engine_section(toy_model_dir):
    config = json.loads((toy_model_dir / "config.json").read_text())
    assert RecordPreparer.for_model(TOY).prompts.max_model_len == config["max_position_embeddings"]
    preparer = RecordPreparer.for_model(TOY, {"max_model_len": 64}, BudgetSpec(mode="strict"), RecordFields(n=2))
    assert (preparer.model_name, preparer.profile.name, preparer.prompts.max_model_len) == ("toy:nemotron-h", "nemotron-nano-v2", 64)
    assert preparer.prepare({"prompt": "hello", "max_thinking_tokens": 3}, "a").budget.strict
    assert preparer.prepare({"prompt": "hello"}, "a").n == 2
    assert RecordPreparer.for_model(TOY, {"max_model_len": 64}, max_model_len=32).prompts.max_model_len == 32
