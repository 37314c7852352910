"""Extraction and comparison of graded answers (`batchgen.record.grading`), with hand-made cases."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from batchgen.record.grading import GradeSpec, extract_answer, grade_row, last_boxed, normalized


def spec(**fields) -> GradeSpec:
    return GradeSpec(reference="answer", **fields)


@pytest.mark.parametrize("text, expected", [
    (r"so \boxed{42}.", "42"),
    (r"first \boxed{1} then \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\boxed{\{1, 2\}} and \fbox{x^{2}}", "x^{2}"),
    (r"\boxed {  7 }", "7"),
    (r"\boxed{never closed", None),
    ("no box here", None),
])
def test_the_last_boxed_answer_with_its_braces_balanced(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize("fields, content, expected", [
    ({"extract": "last_number"}, "3 apples and -1,234.5 pears, then 2e3", "2e3"),
    ({"extract": "last_number"}, "costs .5 dollars", ".5"),
    ({"extract": "last_number"}, "no digits", None),
    ({"extract": "regex", "pattern": r"Answer:\s*(\w+)"}, "Answer: cat ... Answer: dog", "dog"),
    ({"extract": "regex", "pattern": r"Answer:\s*(\w+)"}, "nothing", None),
    ({"extract": "json_field", "field": "answer"}, '{"answer": "B", "why": "..."}', "B"),
    ({"extract": "json_field", "field": "answer"}, '{"answer": 12}', "12"),
    ({"extract": "json_field", "field": "answer"}, "not json", None),
    ({"extract": "json_field", "field": "answer"}, '{"other": 1}', None),
    ({"extract": "choice", "letters": "ABCD"}, "I think (B) is tempting, but the answer is C.", "C"),
    ({"extract": "choice", "letters": "ABCD"}, "Between A and D I pick D", "D"),
    ({"extract": "choice", "letters": "ABCD"}, "Answer: option (a)", "A"),
    ({"extract": "choice", "letters": "ABCD"}, "Everything is fine", None),
    ({"extract": "content"}, "  candle \n", "candle"),
])
def test_each_extractor(fields, content, expected):
    assert extract_answer(content, spec(**fields)) == expected


def test_exact_normal_form():
    assert normalized("  The   Answer.\n") == "the answer"
    assert normalized("ＡＢＣ") == "abc"  # NFKC: full-width letters
    assert normalized("1.5") == "1.5"


@pytest.mark.parametrize("fields, content, reference, correct", [
    ({"extract": "content", "compare": "exact"}, "Candle.", "candle", True),
    ({"extract": "content", "compare": "exact"}, "candles", "candle", False),
    ({"extract": "last_number", "compare": "numeric"}, "it is 1,000.0000001", "1000", True),
    ({"extract": "last_number", "compare": "numeric"}, "it is 1001", "1000", False),
    ({"extract": "last_number", "compare": "numeric", "tolerance": 0.01}, "about 99.5", "100", True),
    ({"extract": "last_number", "compare": "numeric"}, "50%", 50, True),
    ({"extract": "choice", "compare": "choice", "letters": "ABCD"}, "the answer is B", "(B)", True),
    ({"extract": "choice", "compare": "choice", "letters": "ABCD"}, "the answer is B", "c", False),
    ({"extract": "content", "compare": "one_of"}, "NYC", ["New York", "nyc"], True),
    ({"extract": "content", "compare": "one_of"}, "Boston", '["New York", "NYC"]', False),
    ({"compare": "math"}, r"\boxed{0.5}", r"\frac{1}{2}", True),
    ({"compare": "math"}, r"\boxed{\sqrt{8}}", r"2\sqrt{2}", True),
    ({"compare": "math"}, r"\boxed{\{2, 1\}}", r"\{1, 2\}", True),
    ({"compare": "math"}, r"\boxed{(0, 1]}", r"(0, 1]", True),
    ({"compare": "math"}, r"\boxed{[0, 1]}", r"(0, 1]", False),
    ({"compare": "math"}, r"\boxed{3}", "4", False),
])
def test_each_comparison(fields, content, reference, correct):
    grade = grade_row(content, None, reference, spec(**fields))
    assert (grade.correct, grade.ungraded_reason) == (correct, None), grade


@pytest.mark.parametrize("content, error, reference, fields, reason", [
    ("42", None, None, {}, "no_reference: answer is null"),
    ("42", None, "  ", {}, "no_reference: answer is null"),
    (None, "engine_error: boom", "42", {}, "error_row: an error row has no answer"),
    ("no box", None, "42", {}, "no_answer: nothing to extract (boxed) in the answer"),
    ("7", None, "seven", {"extract": "last_number", "compare": "numeric"}, "bad_reference: 'seven' is not a number"),
    ("B", None, "E", {"extract": "choice", "compare": "choice", "letters": "ABCD"},
     "bad_reference: 'E' is not one of the letters ABCD"),
    ("x", None, "not a list", {"extract": "content", "compare": "one_of"},
     "bad_reference: the reference is not a list (one_of needs a list or its JSON text)"),
])
def test_a_grade_that_cannot_be_given_is_null_saying_why(content, error, reference, fields, reason):
    grade = grade_row(content, error, reference, spec(**fields))
    assert grade.correct is None and grade.ungraded_reason == reason


@pytest.mark.parametrize("fields, message", [
    ({"extract": "regex"}, "extract: regex needs a pattern"),
    ({"extract": "regex", "pattern": "no group"}, "has no group"),
    ({"extract": "regex", "pattern": "(unclosed"}, "not a regular expression"),
    ({"extract": "json_field"}, "needs the field's name"),
])
def test_a_grade_section_that_cannot_work_is_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        spec(**fields)


@pytest.mark.parametrize("content, correct, reason", [
    ("yes", True, None), ("Yes.", True, None), ("no", False, None), ("maybe", None, "no_answer"),
    (None, None, "error_row"),
])
def test_a_judges_answer_is_its_verdict(content, correct, reason):
    grade = grade_row(content, None if content else "engine_error: x", None, GradeSpec(compare="verdict", extract="content"))
    assert grade.correct is correct and (grade.ungraded_reason or "").split(":")[0] == (reason or "")


def test_verdicts_need_no_reference_and_everything_else_needs_one():
    with pytest.raises(ValidationError, match="name the reference column"):
        GradeSpec(compare="exact")
    with pytest.raises(ValidationError, match="has no reference"):
        GradeSpec(compare="verdict", reference="answer")
