"""Graded answers: the `grade` section (`GradeSpec`), how an answer is taken out of a row's `content`
(`extract_answer`) and compared with the record's reference (`compare`), and a row's grade (`Grade`,
`grade_row`). Pure code on one row; the job applies it where rows are written, off the engine.

A grade is true, false or null. Null says why (`Grade.ungraded_reason`, "code: why"): `no_reference` (the
record has none), `bad_reference` (it cannot be read for the comparison), `error_row`, `no_answer`
(nothing to extract), `timeout` (math-verify ran out of time). Rows cut by `max_tokens` are graded like
any row. The metrics leave out records that cannot be graded and count every other row that is not
correct as incorrect (`batchgen.core.scores`).

Sources: the extraction rules follow NeMo-Skills' and lm-evaluation-harness's (last `\\boxed{}`, last
number, a regex's group, a multiple-choice letter); mathematical equivalence is Hugging Face's
`math-verify` (`parse` both sides, `verify(gold, answer)`), its timeouts included.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

class GradeSpec(BaseModel):
    """The job spec's `grade` section: where the reference is, how the answer is extracted, how compared."""

    model_config = ConfigDict(extra="forbid")
    reference: str | None = Field(None, description="the input column holding each record's reference answer "
                                  "(none with compare: verdict)")
    extract: Literal["boxed", "last_number", "regex", "json_field", "choice", "content"] = Field(
        "boxed", description="boxed: the last \\boxed{...}; last_number: the last number; regex: `pattern`'s first "
        "group in its last match; json_field: `field` of the answer read as a JSON object (a structured answer); "
        "choice: the choice letter; content: the whole answer")
    pattern: str | None = Field(None, description="extract: regex; a Python regular expression with one group")
    field: str | None = Field(None, description="extract: json_field; the key whose value is the answer")
    letters: str = Field("ABCDEFGHIJ", min_length=2, description="extract or compare: choice; the choice letters")
    compare: Literal["exact", "numeric", "choice", "one_of", "math", "verdict"] = Field(
        "exact", description="exact: equal after normalisation (NFKC, case-folded, whitespace collapsed, one "
        "trailing period dropped); numeric: equal within `tolerance`; choice: the same letter; one_of: equal "
        "(as exact) to one item of a list reference; math: mathematically equivalent (math-verify); verdict: "
        "the answer is a judge's verdict on another job's row (`verdict_true` / `verdict_false`), no reference")
    verdict_true: list[str] = Field(["yes", "true", "correct"], min_length=1,
                                    description="compare: verdict; answers (as exact) that say the judged row is correct")
    verdict_false: list[str] = Field(["no", "false", "incorrect"], min_length=1,
                                     description="compare: verdict; answers (as exact) that say it is not")
    tolerance: float = Field(1e-6, ge=0, description="compare: numeric; |answer - reference| <= tolerance x "
                             "max(1, |reference|)")
    timeout_s: int = Field(5, ge=1, le=60, description="compare: math; seconds for each of math-verify's parse and "
                           "verify (math-verify's own timeout); past it the grade is null, saying so")

    @model_validator(mode="after")
    def _needs(self) -> GradeSpec:
        if (self.reference is None) != (self.compare == "verdict"):
            raise ValueError("grade.reference: name the reference column, except with compare: verdict (a judge's "
                             "answer is its own grade)" if self.reference is None else
                             "grade.reference: compare: verdict grades a judge's answer, which has no reference")
        if self.extract == "regex":
            if not self.pattern:
                raise ValueError("grade.pattern: extract: regex needs a pattern with one group")
            try:
                groups = re.compile(self.pattern).groups
            except re.error as error:
                raise ValueError(f"grade.pattern: not a regular expression: {error}") from None
            if groups < 1:
                raise ValueError(f"grade.pattern: {self.pattern!r} has no group: the group is the answer")
        if self.extract == "json_field" and not self.field:
            raise ValueError("grade.field: extract: json_field needs the field's name")
        return self


@dataclass(frozen=True)
class Grade:
    """One row's grade: the answer extracted (None: nothing to extract), whether it is correct (None: not
    graded) and, when it is None, why."""

    extracted_answer: str | None
    correct: bool | None
    ungraded_reason: str | None = None


NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+(?:[eE][-+]?\d+)?")
BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def last_boxed(text: str) -> str | None:
    """The inside of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced; None when there is none
    or it is never closed."""
    starts = [m.end() for m in BOXED.finditer(text)]
    if not starts:
        return None
    depth, start = 1, starts[-1]
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
    return None


def last_number(text: str) -> str | None:
    """The last number in the text as written (sign, thousands commas and exponent kept), or None."""
    found = NUMBER.findall(text)
    return found[-1] if found else None


def choice_letter(text: str, letters: str) -> str | None:
    """The choice letter an answer gives: the letter after the last "answer is"/"answer:" if there is one,
    else the last letter standing alone (`(C)`, `C.`, `C`); None when no letter of `letters` is there."""
    alone = rf"(?<![A-Za-z])[(\[]?([{re.escape(letters)}])[)\]]?(?![A-Za-z])"
    stated = list(re.finditer(rf"answer\s*(?:is|:)?\s*(?:option\s*)?{alone}", text, re.IGNORECASE))
    if stated:
        return stated[-1].group(1).upper()
    found = re.findall(alone, text)
    return found[-1].upper() if found else None


def extract_answer(content: str, spec: GradeSpec) -> str | None:
    """The answer `spec.extract` takes out of `content`, as text; None when it finds none."""
    if spec.extract == "boxed":
        return last_boxed(content)
    if spec.extract == "last_number":
        return last_number(content)
    if spec.extract == "regex":
        matches = list(re.finditer(spec.pattern, content))
        return matches[-1].group(1).strip() if matches and matches[-1].group(1) is not None else None
    if spec.extract == "json_field":
        try:
            value = json.loads(content)
        except ValueError:
            return None
        if not isinstance(value, dict) or value.get(spec.field) is None:
            return None
        found = value[spec.field]
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)
    if spec.extract == "choice":
        return choice_letter(content, spec.letters)
    return content.strip() or None


def normalized(text: str) -> str:
    """The exact comparison's normal form: Unicode NFKC, case-folded, whitespace runs made one space,
    trimmed, one trailing period dropped."""
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return text[:-1].rstrip() if text.endswith(".") else text


def as_number(text: str) -> float | None:
    """A number written as text (`1,234.5`, `-3`, `2e3`, `50%` as 50), or None."""
    cleaned = text.strip().rstrip("%").replace(",", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# Why a grade is null, as the code its `ungraded_reason` starts with. The metrics leave out the rows of
# records that cannot be graded (no or unreadable reference, no verdict from a judge) and count the others
# as incorrect.
UNGRADED = {"no_reference": False, "bad_reference": False, "no_verdict": False, "error_row": True, "no_answer": True,
            "timeout": True}


class Ungraded(Exception):
    """A comparison that cannot be made; its message ("code: why") is the row's `ungraded_reason`."""


def reference_list(reference: Any) -> list[str]:
    """one_of's reference as a list of texts: a list, or JSON text of one."""
    if isinstance(reference, str):
        try:
            reference = json.loads(reference)
        except ValueError:
            raise Ungraded("bad_reference: the reference is not a list (one_of needs a list or its JSON text)") from None
    if not isinstance(reference, list | tuple) or not reference:
        raise Ungraded("bad_reference: the reference is not a non-empty list (one_of)")
    return [item if isinstance(item, str) else json.dumps(item) for item in reference]


def compare(answer: str, reference: Any, spec: GradeSpec) -> bool:
    """Whether `answer` (extracted) matches `reference` (the column's value) by `spec.compare`. Raises
    Ungraded when the reference cannot be read for it or math-verify ran out of time."""
    if spec.compare == "one_of":
        return normalized(answer) in {normalized(item) for item in reference_list(reference)}
    reference = reference if isinstance(reference, str) else json.dumps(reference)
    if spec.compare == "exact":
        return normalized(answer) == normalized(reference)
    if spec.compare == "numeric":
        expected = as_number(reference)
        if expected is None:
            raise Ungraded(f"bad_reference: {reference!r:.60} is not a number")
        got = as_number(answer)
        return got is not None and abs(got - expected) <= spec.tolerance * max(1.0, abs(expected))
    if spec.compare == "choice":
        expected = reference.strip().strip("().").upper()
        if len(expected) != 1 or expected not in spec.letters:
            raise Ungraded(f"bad_reference: {reference!r:.60} is not one of the letters {spec.letters}")
        return choice_letter(answer, spec.letters) == expected
    return math_equivalent(answer, reference, spec.timeout_s)


def math_equivalent(answer: str, reference: str, timeout_s: int) -> bool:
    """math-verify's verdict: both sides parsed as LaTeX (wrapped in `$...$` unless they hold math
    delimiters or a `\\boxed`) or as plain expressions, then `verify(gold, answer)`. Its timeouts are
    signal alarms: they work on a process's main thread, where the job grades (a Ray task's thread)."""
    from math_verify import parse, verify

    def parsed(text: str):
        wrapped = text if ("$" in text or "\\boxed" in text or "\\(" in text or "\\[" in text) else f"${text}$"
        try:
            return parse(wrapped, parsing_timeout=timeout_s, raise_on_error=True)
        except TimeoutError:
            raise Ungraded(f"timeout: math-verify did not parse {text!r:.60} within {timeout_s} s") from None
        except Exception:  # math-verify raises whatever its LaTeX or sympy parsers raise
            return []

    gold = parsed(reference)
    if not gold:
        raise Ungraded(f"bad_reference: math-verify cannot read {reference!r:.60}")
    got = parsed(answer)
    if not got:
        return False
    try:
        return bool(verify(gold, got, timeout_seconds=timeout_s, raise_on_error=True))
    except TimeoutError:
        raise Ungraded(f"timeout: math-verify did not compare within {timeout_s} s") from None
    except Exception:  # sympy failing on an odd expression: not equivalent as far as can be told
        return False


def grade_row(content: str | None, error: str | None, reference: Any, spec: GradeSpec) -> Grade:
    """One row's grade. `content`: its answer (None on an error row); `error`: its error column;
    `reference`: the record's reference column's value (None: it has none). A null grade's reason starts
    with its code (`UNGRADED`), as error columns do."""
    if spec.compare == "verdict":
        return _verdict(content, error, spec)
    if reference is None or (isinstance(reference, str) and not reference.strip()):
        return Grade(None if content is None else extract_answer(content, spec), None,
                     f"no_reference: {spec.reference} is null")
    if error is not None or content is None:
        return Grade(None, None, "error_row: an error row has no answer")
    answer = extract_answer(content, spec)
    if answer is None:
        return Grade(None, None, f"no_answer: nothing to extract ({spec.extract}) in the answer")
    try:
        return Grade(answer, compare(answer, reference, spec))
    except Ungraded as why:
        return Grade(answer, None, str(why))


def _verdict(content: str | None, error: str | None, spec: GradeSpec) -> Grade:
    """A judge's row: its extracted answer is the verdict on the row it judged."""
    if error is not None or content is None:
        return Grade(None, None, "error_row: an error row has no answer")
    answer = extract_answer(content, spec)
    if answer is None:
        return Grade(None, None, f"no_answer: nothing to extract ({spec.extract}) in the answer")
    if normalized(answer) in {normalized(v) for v in spec.verdict_true}:
        return Grade(answer, True)
    if normalized(answer) in {normalized(v) for v in spec.verdict_false}:
        return Grade(answer, False)
    return Grade(answer, None, f"no_answer: the verdict {answer!r:.40} is in neither verdict_true nor verdict_false")
