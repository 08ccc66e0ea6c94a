"""%timetravel parsing and formatting, in process."""

from __future__ import annotations

import pytest

from timetravel_kernel.kernel.magics import USAGE, Report, format_result, parse_magic_line


@pytest.mark.parametrize(("line", "expected"), [
    ("", {"op": "status"}),
    ("log", {"op": "log"}),
    ("log 5", {"op": "log", "limit": 5}),
    ("undo", {"op": "undo"}),
    ("checkout ab12", {"op": "checkout", "commit": "ab12"}),
    ("diff ab12 cd34", {"op": "diff", "a": "ab12", "b": "cd34", "values": True}),
    ("vars", {"op": "vars"}),
    ("vars ab12", {"op": "vars", "commit": "ab12"}),
])
def test_lines_become_protocol_requests(line, expected):
    request = parse_magic_line(line)
    assert request.pop("id").startswith("magic-")
    assert request == expected


@pytest.mark.parametrize("line", ["nope", "log x", "log 0", "checkout", "diff a", "undo 3",
                                  "log 'unclosed"])
def test_bad_lines_explain_the_usage(line):
    with pytest.raises(ValueError, match="%tt"):
        parse_magic_line(line)


def test_report_is_plain_text_and_escaped_html():
    report = Report("title <b>", [["name", "type"], ["x", "<int>"]])
    assert repr(report).splitlines() == ["title <b>", "name  type", "x     <int>"]
    assert "&lt;int&gt;" in report._repr_html_() and "<table>" in report._repr_html_()


def test_formats_every_result_kind():
    commit = {"id": "ab" * 16, "parent": None, "execution_count": 3, "cell_id": None,
              "code": "x = 1\ny = 2", "time": 0.0, "duration": 0.1, "status": "ok",
              "changed": ["x", "y"], "bytes_written": 10}
    assert "3 states" not in repr(format_result("log", {"commits": [commit]}))
    assert "x, y" in repr(format_result("log", {"commits": [commit]}))
    assert "[3]" in repr(format_result("undo", {
        "head": commit, "loaded": ["x"], "deleted": [], "kept": [], "seconds": 0.0,
        "unrestored": {"g": "generator"}}))
    assert "g (generator)" in repr(format_result("undo", {
        "head": commit, "loaded": [], "deleted": [], "kept": [], "seconds": 0.0,
        "unrestored": {"g": "generator"}}))
    assert "added" in repr(format_result("diff", {"added": ["a"], "deleted": [],
                                                  "changed": []}))
    assert "no: gen" in repr(format_result("vars", {"vars": [
        {"name": "g", "type": "generator", "bytes": 0, "covariable": "c", "saved": False,
         "reason": "gen"}]}))
    assert "(none)" in repr(format_result("status", {"head": None, "commits": 0,
                                                     "store": {"path": "", "bytes": 0}}))
    assert USAGE.startswith("%timetravel")


@pytest.mark.parametrize(("line", "expected"), [
    ("history df", {"op": "history", "name": "df"}),
    ("get df@ab12", {"op": "get", "name": "df", "commit": "ab12"}),
    ("get df@ab12 as old", {"op": "get", "name": "df", "commit": "ab12", "as": "old"}),
    ("get df@ab12 --together", {"op": "get", "name": "df", "commit": "ab12", "together": True}),
])
def test_variable_lines(line, expected):
    request = parse_magic_line(line)
    request.pop("id")
    assert request == expected


@pytest.mark.parametrize("line", ["get df", "get @ab12", "get df@ab12 to x", "get", "history"])
def test_bad_variable_lines_say_the_form(line):
    with pytest.raises(ValueError, match="%tt"):
        parse_magic_line(line)


def test_formats_history_and_value_diffs():
    commit = {"id": "ab" * 16, "parent": "cd" * 16, "execution_count": None, "cell_id": None,
              "code": "%tt get x@abab", "time": 0.0, "duration": 0.0, "status": "ok",
              "changed": ["x"], "bytes_written": 0}
    text = repr(format_result("history", {"name": "x", "versions": [
        {"commit": commit, "covariable": "c" * 32, "type": "list", "bytes": 64, "saved": True,
         "members": ["x", "y"], "current": True}]}))
    assert "1 version of x" in text and "list (shared with y)" in text and " - " in text
    text = repr(format_result("diff", {"added": ["a"], "deleted": [], "changed": ["n"],
                                       "values": {"n": "1 → 2"}}))
    assert text.splitlines()[1:] == ["name  what changed", "a     added", "n     1 → 2"]
