"""%timetravel parsing and formatting, in process."""

from __future__ import annotations

import pytest

from timetravel_kernel.kernel.magics import USAGE, parse_magic_line
from timetravel_kernel.session.reports import Report, format_result


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
              "changed": ["x", "y"], "bytes_written": 10, "cells": 1}
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
    ("rebuild", {"op": "rebuild"}),
    ("rebuild gen conn", {"op": "rebuild", "names": ["gen", "conn"]}),
    ("rebuild --preview", {"op": "rebuild-preview"}),
    ("rebuild --budget 2.5 gen", {"op": "rebuild", "budget": 2.5, "names": ["gen"]}),
])
def test_rebuild_lines_become_protocol_requests(line, expected):
    request = parse_magic_line(line)
    assert request.pop("id").startswith("magic-")
    assert request == expected


@pytest.mark.parametrize("line", ["rebuild --budget soon", "rebuild 3x", "rebuild --budget"])
def test_bad_rebuild_lines_explain_themselves(line):
    with pytest.raises(ValueError, match="%tt rebuild"):
        parse_magic_line(line)


def test_rebuild_reports_show_the_cells_code_and_the_reasons():
    step = {"kind": "run", "names": ["gen"], "commit": "ab" * 16, "execution_count": 4,
            "code": "gen = (i for i in range(3))", "seconds": 0.25}
    reconnect = {"kind": "reconnect", "names": ["log"], "commit": None,
                 "execution_count": None, "code": "", "seconds": 0.0}
    plan = {"at": {}, "names": ["gen", "log"], "steps": [step, reconnect], "seconds": 0.25,
            "impossible": {"sock": "no recorded cell made sock"}}
    text = repr(format_result("rebuild-preview", plan))
    assert "gen, log can be rebuilt" in text and "cells [4]" in text and "0.25 s" in text
    assert "gen = (i for i in range(3))" in text and "reconnect log" in text
    assert "sock (no recorded cell made sock)" in text
    assert "<pre>" in format_result("rebuild-preview", plan)._repr_html_()
    done = repr(format_result("rebuild", {"rebuilt": ["gen"], "failed": {"x": "it raised"},
                                          "cells_run": 1, "seconds": 0.5}))
    assert "rebuilt gen" in done and "x: it raised" in done


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
              "changed": ["x"], "bytes_written": 0, "cells": 1}
    text = repr(format_result("history", {"name": "x", "versions": [
        {"commit": commit, "covariable": "c" * 32, "type": "list", "bytes": 64, "saved": True,
         "members": ["x", "y"], "current": True}]}))
    assert "1 version of x" in text and "list (shared with y)" in text and " - " in text
    text = repr(format_result("diff", {"added": ["a"], "deleted": [], "changed": ["n"],
                                       "values": {"n": "1 → 2"}}))
    assert text.splitlines()[1:] == ["name  what changed", "a     added", "n     1 → 2"]
