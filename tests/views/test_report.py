"""The HTML report of an output prefix, over prefixes written by hand (no engine): what it says, that it
needs no network, that it escapes what rows hold, and that Chromium draws it without an error."""

from __future__ import annotations

import json
import re

import pytest
from plotly.offline import get_plotlyjs

from batchgen.views import report
from tests.browser import render_in_chromium
from tests.prefixes import MODEL, ROWS, write_prefix


def figures(page: str) -> list[tuple[list, dict]]:
    """The (data, layout) of every plotly figure in the page, as the page hands them to plotly.js."""
    decoder, found = json.JSONDecoder(), []
    for call in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', page):
        data, end = decoder.raw_decode(page, call.end())
        layout, _ = decoder.raw_decode(page, page.index("{", end))
        found.append((data, layout))
    return found


def figure_titled(page: str, axis: str) -> list:
    (data,) = [d for d, layout in figures(page) if layout["xaxis"]["title"]["text"] == axis]
    return data


@pytest.fixture
def finished(tmp_path):
    uri = write_prefix(tmp_path, ROWS, records=9, finished=True)
    return uri, report.render(uri)


def test_the_page_needs_no_network_and_carries_plotly_js_once(finished):
    _, page = finished
    assert not re.search(r"<script[^>]*\bsrc\s*=", page)  # every script inline
    assert not re.search(r"<(link|img|iframe)\b", page)
    assert page.count(get_plotlyjs()[:200]) == 1
    assert len(figures(page)) == 6


def test_the_header_says_what_ran_and_how_far_it_got(finished):
    uri, page = finished
    assert "<title>batchgen report: report-test</title>" in page
    for text in [f"<dd>{MODEL}</dd>", f"<dd>{uri}</dd>", "in.jsonl</dd>", "<dd>complete</dd>",
                 "<dd>9 done of 9, in 1 data file</dd>", "<dd>3</dd>",
                 "<dd>60 prompt, 893 reasoning, 1,012 completion (reasoning + answer)</dd>",
                 "<dd>16.0 s wall time (12.5 s engine start-up, 3.5 s generating at 289.1 tokens/s)</dd>"]:
        assert text in page


def test_the_charts_show_the_rows_counts(finished):
    _, page = finished
    reasoning = {t["name"]: dict(zip(t["x"], t["y"])) for t in figure_titled(page, "reasoning tokens")}
    assert reasoning == {"reasoning on": {300: 1, 512: 1, 40: 1, 41: 1}, "reasoning off": {0: 2}}
    answers = {t["name"]: dict(zip(t["x"], t["y"])) for t in figure_titled(page, "answer tokens")}
    assert answers == {"reasoning on": {40: 1, 0: 1, 20: 1, 29: 1}, "reasoning off": {25: 1, 5: 1}}
    assert {t["xbins"]["size"] for t in figure_titled(page, "reasoning tokens")} == {20}  # 513 tokens / 40 bins
    (finish,) = figure_titled(page, "finish reason")
    assert dict(zip(finish["x"], finish["y"])) == {"error": 3, "length": 1, "stop": 5}
    (ends,) = figure_titled(page, "ended by")
    assert dict(zip(ends["x"], ends["y"])) == {"budget_line_break": 1, "length": 1, "model": 2}
    (codes,) = figure_titled(page, "error code")
    assert dict(zip(codes["x"], codes["y"])) == {"invalid_type": 1, "missing_prompt": 2}
    throughput = figure_titled(page, "seconds")
    assert [(t["name"], t["x"]) for t in throughput] == [("engine start-up: 12.5 s", [12.5]),
                                                         ("generation: 3.5 s", [3.5])]
    (layout,) = [layout for _, layout in figures(page) if layout["xaxis"]["title"]["text"] == "seconds"]
    assert layout["title"]["text"] == "289.1 tokens/s generating"


def test_the_tables_list_the_longest_records_and_example_errors(finished):
    _, page = finished
    longest = page[page.index("<h2>Longest records</h2>"):page.index("<h2>Example errors")]
    ids = re.findall(r"<tr><td>([^<]*)</td>", longest)
    assert ids == ["cut-1", "budget-1", "on-2", "on-1", "off-1", "&lt;b&gt;x&lt;/b&gt;"]  # error rows generated nothing
    assert ("<tr><td>cut-1</td><td>on</td><td class=n>512</td><td class=n>0</td><td>length</td><td>no</td></tr>"
            in longest)
    assert "<td>budget-1</td><td>on</td><td class=n>300</td><td class=n>40</td><td>stop</td><td>yes</td>" in longest
    assert "rows hold no timings" in longest
    errors = page[page.index("<h2>Example errors"):]
    assert "<h2>Example errors (first 3 of 3)</h2>" in errors
    assert re.findall(r"<tr><td>([^<]*)</td>", errors) == ["bad-1", "bad-2", "bad-3"]
    assert "<td>missing_prompt: a record needs exactly one of prompt or messages</td>" in errors


def test_every_value_from_the_rows_is_escaped(finished):
    _, page = finished
    assert "<b>x</b>" not in page and "<td>&lt;b&gt;x&lt;/b&gt;</td>" in page
    assert "(got &#x27;&lt;abc&gt;&#x27;)</td>" in page


def test_a_prefix_with_nothing_written_yet_still_renders(tmp_path):
    uri = write_prefix(tmp_path, [], records=5)
    page = report.render(uri)
    assert "<dd>partial</dd>" in page and "<dd>0 done of 5, in 0 data files</dd>" in page
    assert page.count("no data: no records were answered yet") == 2
    for text in ["no data: no rows written yet", "no data: no record answered with reasoning on", "no errors",
                 "no _stats.json"]:
        assert text in page
    assert figures(page) == [] and get_plotlyjs()[:200] not in page  # no chart: no 4 MB of plotly.js either
    assert page.count('<p class="note">none</p>') == 2


def test_a_killed_job_without_errors_says_so_instead_of_charting(tmp_path):
    page = report.render(write_prefix(tmp_path, ROWS[:6], records=9))
    assert "<dd>partial</dd>" in page and "<dd>6 done of 9, in 1 data file</dd>" in page
    assert "<h2>Errors by code</h2><p class=\"note\">no errors</p>" in page
    assert "no _stats.json: the job has not finished a run" in page
    assert len(figures(page)) == 4 and "<h2>Example errors</h2>" in page


def test_chromium_draws_every_chart_without_an_error(finished, tmp_path):
    uri, _ = finished
    path = report.write(uri, tmp_path / "report.html")
    shown = render_in_chromium(path)
    assert shown == {"errors": [], "charts": 6, "title": "batchgen report: report-test"}


def graded(rid, mode, budget, reasoning, correct, sample=0):
    from tests.prefixes import answer

    row = answer(rid, mode, reasoning, reasoning + 5)
    return row | {"max_thinking_tokens": budget, "sample_index": sample, "correct": correct,
                  "extracted_answer": "yes" if correct else "no", "ungraded_reason": None}


def test_a_graded_job_draws_accuracy_by_budget_pass_at_k_and_accuracy_by_length(tmp_path):
    rows = [graded("a", "on", 8, 8, False), graded("a", "on", 8, 8, True, 1), graded("b", "on", 8, 7, False),
            graded("b", "on", 8, 6, False, 1), graded("a", "on", 64, 50, True), graded("a", "on", 64, 45, True, 1),
            graded("b", "on", 64, 60, True), graded("b", "on", 64, 62, False, 1), graded("c", "off", None, 0, True)]
    uri = write_prefix(tmp_path, rows, records=3, finished=True, grade={"reference": "answer"})
    page = report.render(uri)
    budget = figure_titled(page, "max_thinking_tokens")
    accuracy = {t["name"]: (t["x"], t["y"]) for t in budget}
    assert accuracy["accuracy, reasoning on"] == (["8", "64"], [0.25, 0.75])
    assert accuracy["reasoning tokens, on"] == (["8", "64"], [7.25, 54.25])
    assert accuracy["accuracy, reasoning off"] == (["none"], [1.0])
    at_k = {t["name"]: t["y"] for t in figure_titled(page, "k (samples)")}
    # over (record, mode, budget) units: a@8 1 of 2, b@8 0 of 2, a@64 2 of 2, b@64 1 of 2, c off 1 of 1
    assert at_k["pass@k"] == pytest.approx([(0.5 + 0 + 1 + 0.5 + 1) / 5, (1 + 0 + 1 + 1) / 4])
    assert at_k["majority@k"] == pytest.approx([(0 + 0 + 1 + 1 + 1) / 5, (0 + 0 + 1 + 1) / 4])
    (by_length,) = figure_titled(page, "reasoning tokens (bins of 2)")
    assert by_length["x"][0] == 6 and by_length["y"][0] == 0.0  # the 6- and 7-token rows, both wrong
    path = report.write(uri, tmp_path / "report.html")
    # every figure in the page drawn (7: no errors and no reasoning ends to chart here)
    assert len(figures(page)) == 7
    assert render_in_chromium(path) == {"errors": [], "charts": 7, "title": "batchgen report: report-test"}
