"""Prompt templates over a row's columns (`batchgen.record.templates`): what a record's prompt becomes, and
what a row that cannot fill it gets instead."""

from __future__ import annotations

import pytest

from batchgen.record.contract import RecordError
from batchgen.record.templates import PromptPlan, Renderer, TemplateError, template_names
from batchgen.spec.job import SpecError, parse_spec

QA = (("system", "Answer in {{ lang }}."),
      ("user", "Question: {{ question }}\n{% if context is defined %}\nContext: {{ context }}\n{% endif %}"))
EXAMPLES = ({"id": "e1", "question": "1+1?", "answer": "2"}, {"id": "e2", "question": "2+2?", "answer": "4"},
            {"id": "q7", "question": "3+3?", "answer": "6"}, {"id": "e4", "question": "5+5?", "answer": "10"})
EXAMPLE_TURNS = (("user", "Question: {{ question }}"), ("assistant", "{{ answer }}"))


def test_a_row_becomes_messages_from_its_columns_and_a_null_column_is_left_out_by_the_template():
    renderer = Renderer(PromptPlan(turns=QA))
    assert renderer.render({"question": "Why?", "context": "Because.", "lang": "en"}, "q1") == {"messages": [
        {"role": "system", "content": "Answer in en."}, {"role": "user", "content": "Question: Why?\nContext: Because.\n"}]}
    # trim_blocks: the {% if %} lines leave no blank lines behind
    assert renderer.render({"question": "Why?", "context": None, "lang": "en"}, "q1")["messages"][1] == {
        "role": "user", "content": "Question: Why?\n"}


@pytest.mark.parametrize("row", [{"question": "Why?", "answer": "x", "lang": None}, {"question": "Why?", "answer": "x"}])
def test_a_column_the_template_needs_that_is_null_or_absent_is_an_error_naming_template_and_columns(row):
    assert Renderer(PromptPlan(turns=QA)).render(row, "q1") == RecordError(
        "missing_field", "the system template needs 'lang'; this record has answer, question")


def test_a_template_failing_on_a_rows_values_is_that_rows_error_and_the_sandbox_holds():
    assert Renderer(PromptPlan(turns=(("user", "{{ 10 / n }}"),))).render({"n": 0}, "a") == RecordError(
        "template_error", "the user template: ZeroDivisionError: division by zero")
    escape = Renderer(PromptPlan(turns=(("user", "{{ q.__class__.__mro__ }}"),))).render({"q": "x"}, "a")
    assert escape.code == "template_error" and "unsafe" in escape.message


def test_fields_come_from_columns_with_their_types_and_a_null_leaves_the_field_to_the_defaults():
    plan = PromptPlan(turns=(("user", "{{ q }}"),), fields={"max_thinking_tokens": "budget", "reasoning": "mode"})
    renderer = Renderer(plan)
    assert renderer.render({"q": "x", "budget": 64, "mode": "off"}, "a") == {
        "messages": [{"role": "user", "content": "x"}], "max_thinking_tokens": 64, "reasoning": "off"}
    assert renderer.render({"q": "x", "budget": None, "mode": "on"}, "a") == {
        "messages": [{"role": "user", "content": "x"}], "reasoning": "on"}


def test_every_example_goes_after_the_system_turn_in_file_order_but_never_the_record_itself():
    plan = PromptPlan(turns=QA, examples=EXAMPLES, example_turns=EXAMPLE_TURNS)
    messages = Renderer(plan).render({"question": "3+3?", "lang": "en"}, "q8")["messages"]  # same question as q7
    assert [m["content"] for m in messages] == [
        "Answer in en.", "Question: 1+1?", "2", "Question: 2+2?", "4", "Question: 5+5?", "10", "Question: 3+3?\n"]
    by_id = Renderer(plan).render({"question": "7+7?", "lang": "en"}, "e2")["messages"]
    assert "Question: 2+2?" not in [m["content"] for m in by_id] and len(by_id) == 1 + 3 * 2 + 1


def test_k_examples_are_drawn_per_record_the_same_way_every_time_and_differ_between_records():
    plan = PromptPlan(turns=(("user", "Question: {{ question }}"),), examples=EXAMPLES, example_turns=EXAMPLE_TURNS,
                      k=2, seed=11)

    def shown(rid, question="9+9?"):
        messages = Renderer(plan).render({"question": question}, rid)["messages"]
        return [m["content"] for m in messages if m["role"] == "user"][:-1]

    draws = {rid: shown(rid) for rid in (f"r{i}" for i in range(40))}
    assert all(len(d) == 2 for d in draws.values())
    assert draws == {rid: shown(rid) for rid in draws}  # a fresh renderer (another replica) draws the same
    assert len({tuple(d) for d in draws.values()}) > 4
    assert all("Question: 3+3?" not in shown("q7") for _ in range(3))  # by id
    assert "Question: 1+1?" not in shown("x", "1+1?")  # by rendered question
    other_seed = PromptPlan(**{**plan.__dict__, "seed": 12})
    assert any(Renderer(other_seed).render({"question": "9+9?"}, rid)["messages"][:-1] !=
               Renderer(plan).render({"question": "9+9?"}, rid)["messages"][:-1] for rid in draws)


def test_an_example_that_does_not_render_is_found_before_any_record():
    with pytest.raises(TemplateError, match=r"prompt.examples: example 2: the example template needs 'answer'"):
        Renderer(PromptPlan(turns=QA, examples=({"question": "a", "answer": "b"}, {"question": "c"}),
                            example_turns=EXAMPLE_TURNS))


def test_a_plan_travels_as_json_and_its_identity_follows_wording_examples_and_draw():
    plan = PromptPlan(turns=QA, fields={"reasoning": "mode"}, examples=EXAMPLES, example_turns=EXAMPLE_TURNS, k=2)
    assert PromptPlan.from_json(plan.to_json()) == plan
    variants = [PromptPlan(**{**plan.__dict__, **change}) for change in (
        {"turns": (QA[0], ("user", "Q: {{ question }}"))}, {"examples": EXAMPLES[:3]}, {"k": 3},
        {"example_turns": (EXAMPLE_TURNS[0], ("assistant", "The answer is {{ answer }}"))})]
    assert len({str(v.identity()) for v in [plan, *variants]}) == 5
    assert plan.identity() == PromptPlan.from_json(plan.to_json()).identity()


SPEC = {"name": "t", "model": {"path": "toy:nemotron-h"}, "input": {"uri": "in/"}, "output": {"uri": "out/"}}


@pytest.mark.parametrize("prompt, message", [
    ({"user": "Q: {{ question }"}, "prompt.user: line 1: unexpected '}'"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "{% if x %}\n{{ y }}"}]},
     "prompt.messages[1]: line 2: Unexpected end of template"),
    ({"user": "a", "messages": [{"role": "user", "content": "b"}]}, "prompt: give user (with an optional system) or messages"),
    ({"user": "a", "fields": {"budget": "b"}}, "prompt.fields: budget is not a record field"),
    ({"user": "a", "examples": {"uri": "e.jsonl", "assistant": "{{ answer "}}, "prompt.examples.assistant: line 1"),
])
def test_a_prompt_section_that_cannot_work_is_a_spec_error_naming_the_key_and_line(prompt, message):
    with pytest.raises(SpecError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        parse_spec({**SPEC, "prompt": prompt})


def test_a_template_file_is_read_into_the_spec_and_keys_written_inline_win(tmp_path):
    (tmp_path / "qa.yaml").write_text("system: 'Be brief.'\nuser: 'Q: {{ question }}'\n")
    spec = parse_spec({**SPEC, "prompt": {"template_file": str(tmp_path / "qa.yaml"), "system": "Be {{ tone }}."}})
    assert (spec.prompt.system, spec.prompt.user, spec.prompt.template_file) == ("Be {{ tone }}.", "Q: {{ question }}", None)
    assert spec.prompt.columns() == {"tone", "question"}
    with pytest.raises(SpecError, match="^prompt.template_file: cannot read .*missing.yaml"):
        parse_spec({**SPEC, "prompt": {"template_file": str(tmp_path / "missing.yaml")}})


def test_the_names_a_template_reads_are_its_undeclared_variables():
    assert template_names("{% for c in choices %}{{ c }}{% endfor %}{{ question | upper }}{% set x = 1 %}{{ x }}") == {
        "choices", "question"}


def test_the_draw_is_pinned_and_even():
    from collections import Counter

    from batchgen.record.templates import _sample

    # pinned: a rerun, a resumed job, another Python shows a record the same examples
    assert _sample(list(range(10)), 3, b"7\x00examples\x00r1") == [6, 8, 4]
    counts = Counter(i for n in range(8000) for i in _sample(list(range(8)), 2, f"0\x00examples\x00r{n}".encode()))
    assert len(counts) == 8 and max(counts.values()) / min(counts.values()) < 1.15  # each example ~2,000 times
