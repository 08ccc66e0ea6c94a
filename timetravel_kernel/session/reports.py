"""Reports: the results of history requests as people read them, text or HTML (session layer).

What the magics print and what the ``timetravel`` command shows are the same sentences and
tables: both format a request's result here.
"""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING

from timetravel_kernel.session.sentences import describe_plan, describe_rebuild, list_plan_code

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from timetravel_kernel.protocol.messages import RebuildPlanJSON

__all__ = ["Report", "format_result"]


class Report:
    """A magic's answer: rich HTML in notebooks, plain text in consoles.

    Args:
        title: one line saying what happened.
        rows: a table (first row is the header); may be empty.
    """

    def __init__(self, title: str, rows: Sequence[Sequence[object]] = (), *,
                 listing: str = "") -> None:
        self.title = title
        self.rows = [[str(cell) for cell in row] for row in rows]
        self.listing = listing

    def __repr__(self) -> str:
        if self.listing:
            return f"{self.title}\n{self.listing}"
        if not self.rows:
            return self.title
        widths = [max(len(row[i]) for row in self.rows) for i in range(len(self.rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in self.rows]
        return "\n".join([self.title, *lines])

    def _repr_html_(self) -> str:
        parts = [f"<p><b>{html.escape(self.title)}</b></p>"]
        if self.listing:
            parts.append(f"<pre>{html.escape(self.listing)}</pre>")
        if self.rows:
            head, *body = self.rows
            parts.append("<table><thead><tr>")
            parts += [f"<th style='text-align:left'>{html.escape(c)}</th>" for c in head]
            parts.append("</tr></thead><tbody>")
            for row in body:
                cells = "".join(f"<td style='text-align:left'><code>{html.escape(c)}</code></td>"
                                for c in row)
                parts.append(f"<tr>{cells}</tr>")
            parts.append("</tbody></table>")
        return "".join(parts)


def _cell_label(commit: Mapping[str, object]) -> str:
    """Return ``[n]`` for a cell, ``root`` for a session's start, ``-`` for a restore."""
    count = commit.get("execution_count")
    if count is not None:
        return f"[{count}]"
    return "root" if commit.get("parent") is None else "-"


def _short(commit: Mapping[str, object] | None) -> str:
    if not commit:
        return "(none)"
    label = _cell_label(commit)
    return f"{str(commit.get('id'))[:10]} {label if label != 'root' else '[root]'}"


def _first_line(code: object) -> str:
    text = str(code).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 50 else line[:47] + "..."


def _names(values: object) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, list) and values else "-"


def _describe_size(size: object, budget: object) -> str:
    """Return "12.3 MB" or "12.3 MB of a 500.0 MB budget"."""
    text = f"{size / 1e6:.1f} MB" if isinstance(size, int) else "size unknown"
    return f"{text} of a {budget / 1e6:.1f} MB budget" if isinstance(budget, int) else text


def format_result(op: str, result: Mapping[str, object]) -> Report:
    """Return the readable form of an op's result."""
    if op == "status":
        store = result.get("store")
        store = store if isinstance(store, dict) else {}
        title = (f"time travel: HEAD {_short(result.get('head'))} · {result.get('commits')} "  # type: ignore[arg-type]
                 f"states · store {store.get('path') or '(none)'} "
                 f"({_describe_size(store.get('bytes'), store.get('budget'))})")
        notes = [str(result["notice"])] if result.get("notice") else []
        if result.get("restorable"):
            notes.append(f"restorable: {_short(result.get('restorable'))} (%tt restore)")  # type: ignore[arg-type]
        remote = result.get("remote")
        if isinstance(remote, dict):
            waiting = f"{remote.get('unpushed')} states not pushed yet" if remote.get(
                "unpushed") else "all states pushed"
            why = f" (last attempt: {remote['error']})" if remote.get("error") else ""
            notes.append(f"remote {remote.get('url')}: {waiting}{why}")
        return Report(" · ".join([title, *notes]))
    if op == "log":
        commits = result.get("commits")
        rows: list[list[object]] = [["id", "cell", "status", "when", "changed", "code"]]
        for c in commits if isinstance(commits, list) else []:
            when = time.strftime("%H:%M:%S", time.localtime(float(c.get("time", 0))))
            rows.append([str(c.get("id"))[:10], _cell_label(c),
                         c.get("status"), when, _names(c.get("changed")),
                         _first_line(c.get("code", ""))])
        return Report(f"time travel: {len(rows) - 1} states, newest first", rows)
    if op == "diff":
        return _format_diff(result)
    if op == "history":
        return _format_history(result)
    if op == "vars":
        variables = result.get("vars")
        rows = [["name", "type", "bytes", "group", "saved"]]
        for v in variables if isinstance(variables, list) else []:
            saved = "yes" if v.get("saved") else f"no: {v.get('reason', '')}"
            rows.append([v.get("name"), v.get("type"), v.get("bytes"),
                         str(v.get("covariable"))[:10], saved])
        return Report(f"time travel: {len(rows) - 1} variables", rows)
    if op == "rebuild-preview":
        plan: RebuildPlanJSON = result  # type: ignore[assignment]
        return Report(describe_plan(plan), listing=list_plan_code(plan))
    if op == "rebuild":
        return Report(describe_rebuild(result))  # type: ignore[arg-type]
    unrestored = result.get("unrestored")
    missing = ""
    if isinstance(unrestored, dict) and unrestored:
        missing = " · not restored: " + ", ".join(f"{k} ({v})" for k, v in unrestored.items())
    reconnected = result.get("reconnected")
    again = f" · reconnected {_names(reconnected)}" if reconnected else ""
    head = result.get("head")
    return Report(
        f"time travel: {op} → {_short(head)} · loaded {_names(result.get('loaded'))} · "  # type: ignore[arg-type]
        f"deleted {_names(result.get('deleted'))}{again}{missing}")


def _format_diff(result: Mapping[str, object]) -> Report:
    values = result.get("values")
    if not isinstance(values, dict):
        return Report("time travel: difference", [
            ["added", "deleted", "changed"],
            [_names(result.get("added")), _names(result.get("deleted")),
             _names(result.get("changed"))]])
    rows: list[list[object]] = [["name", "what changed"]]
    for kind in ("added", "deleted"):
        names = result.get(kind)
        rows += [[n, kind] for n in (names if isinstance(names, list) else [])]
    changed = result.get("changed")
    rows += [[n, values.get(n, "changed")] for n in (changed if isinstance(changed, list) else [])]
    if len(rows) == 1:
        return Report("time travel: no difference")
    return Report("time travel: difference", rows)


def _format_history(result: Mapping[str, object]) -> Report:
    versions = result.get("versions")
    rows: list[list[object]] = [["state", "cell", "when", "type", "bytes", "head", "code"]]
    for v in versions if isinstance(versions, list) else []:
        commit = v.get("commit") or {}
        when = time.strftime("%H:%M:%S", time.localtime(float(commit.get("time", 0))))
        deleted = v.get("covariable") is None
        shared = [m for m in v.get("members", []) if m != result.get("name")]
        kind = "(deleted)" if deleted else str(v.get("type"))
        if shared:
            kind += f" (shared with {', '.join(shared)})"
        rows.append([str(commit.get("id"))[:10], _cell_label(commit), when, kind,
                     "" if deleted else v.get("bytes"), "*" if v.get("current") else "",
                     _first_line(commit.get("code", ""))])
    count = len(rows) - 1
    return Report(f"time travel: {count} version{'' if count == 1 else 's'} of "
                  f"{result.get('name')}, newest first (get one back with %tt get NAME@STATE)",
                  rows)
