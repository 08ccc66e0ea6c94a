"""``%timetravel`` / ``%tt``: the protocol's ops as line magics, for frontends without the comm.

Each magic builds a protocol request and hands it to the kernel's ProtocolHandler, so the
magics and the lab extension can never disagree; this module only parses and formats
(kernel layer).
"""

from __future__ import annotations

import html
import shlex
import time
import uuid
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from IPython.core.interactiveshell import InteractiveShell

    from timetravel_kernel.protocol import Response

__all__ = [
    "USAGE",
    "HandlesRequests",
    "Report",
    "format_result",
    "parse_magic_line",
    "register_magics",
]

USAGE = """\
%timetravel (alias %tt) — the history of this kernel's state
  %tt                   status: HEAD, number of states, store
  %tt log [N]           the last N states (all branches), newest first
  %tt undo | redo       step back / forward one cell's effect on the state
  %tt checkout ID       jump to a state (an id prefix of >= 4 hex digits works)
  %tt diff A B          names added, deleted and changed between two states
  %tt vars [ID]         the saved variables of a state (HEAD by default)
  %tt restore           bring back the previous session's last state
  %tt push | pull       send states to / fetch states from the remote now
                        (TimeTravelKernel.remote; pushes also run after every cell)
Put a checkout command alone in its cell: that cell is not recorded as a new state."""


class HandlesRequests(Protocol):
    """What the magics need from the kernel."""

    def handle_from_cell(self, request: Mapping[str, object]) -> Response:
        """Answer a request made from the running cell."""

    def remote_command(self, op: str) -> str:
        """Push to or pull from the remote now; return what happened."""


def parse_magic_line(line: str) -> dict[str, object]:
    """Return the protocol request a magic line stands for.

    Raises:
        ValueError: the line is not a known command; the message is the usage.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ValueError(f"{exc}\n{USAGE}") from exc
    op, args = (words[0], words[1:]) if words else ("status", [])
    request: dict[str, object] = {"id": f"magic-{uuid.uuid4().hex[:8]}", "op": op}
    shapes: dict[str, Sequence[str]] = {
        "status": (), "undo": (), "redo": (), "restore": (), "log": ("limit?",),
        "checkout": ("commit",), "diff": ("a", "b"), "vars": ("commit?",),
    }
    if op not in shapes:
        raise ValueError(USAGE)
    params = shapes[op]
    required = [p for p in params if not p.endswith("?")]
    if not len(required) <= len(args) <= len(params):
        raise ValueError(f"%tt {op} takes {' '.join(params) or 'no arguments'}\n{USAGE}")
    for name, value in zip(params, args, strict=False):
        key = name.rstrip("?")
        if key == "limit":
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"%tt log takes a positive number, not {value!r}")
            request[key] = int(value)
        else:
            request[key] = value
    return request


class Report:
    """A magic's answer: rich HTML in notebooks, plain text in consoles.

    Args:
        title: one line saying what happened.
        rows: a table (first row is the header); may be empty.
    """

    def __init__(self, title: str, rows: Sequence[Sequence[object]] = ()) -> None:
        self.title = title
        self.rows = [[str(cell) for cell in row] for row in rows]

    def __repr__(self) -> str:
        if not self.rows:
            return self.title
        widths = [max(len(row[i]) for row in self.rows) for i in range(len(self.rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in self.rows]
        return "\n".join([self.title, *lines])

    def _repr_html_(self) -> str:
        parts = [f"<p><b>{html.escape(self.title)}</b></p>"]
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


def _short(commit: Mapping[str, object] | None) -> str:
    if not commit:
        return "(none)"
    count = commit.get("execution_count")
    label = f"[{count}]" if count is not None else "[root]"
    return f"{str(commit.get('id'))[:10]} {label}"


def _first_line(code: object) -> str:
    text = str(code).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 50 else line[:47] + "..."


def _names(values: object) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, list) and values else "-"


def format_result(op: str, result: Mapping[str, object]) -> Report:
    """Return the readable form of an op's result."""
    if op == "status":
        store = result.get("store")
        path = store.get("path") if isinstance(store, dict) else ""
        size = store.get("bytes") if isinstance(store, dict) else 0
        title = (f"time travel: HEAD {_short(result.get('head'))} · {result.get('commits')} "  # type: ignore[arg-type]
                 f"states · store {path or '(none)'} ({size} bytes)")
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
            count = c.get("execution_count")
            rows.append([str(c.get("id"))[:10], f"[{count}]" if count is not None else "root",
                         c.get("status"), when, _names(c.get("changed")),
                         _first_line(c.get("code", ""))])
        return Report(f"time travel: {len(rows) - 1} states, newest first", rows)
    if op == "diff":
        return Report("time travel: difference", [
            ["added", "deleted", "changed"],
            [_names(result.get("added")), _names(result.get("deleted")),
             _names(result.get("changed"))]])
    if op == "vars":
        variables = result.get("vars")
        rows = [["name", "type", "bytes", "group", "saved"]]
        for v in variables if isinstance(variables, list) else []:
            saved = "yes" if v.get("saved") else f"no: {v.get('reason', '')}"
            rows.append([v.get("name"), v.get("type"), v.get("bytes"),
                         str(v.get("covariable"))[:10], saved])
        return Report(f"time travel: {len(rows) - 1} variables", rows)
    unrestored = result.get("unrestored")
    missing = ""
    if isinstance(unrestored, dict) and unrestored:
        missing = " · not restored: " + ", ".join(f"{k} ({v})" for k, v in unrestored.items())
    head = result.get("head")
    return Report(
        f"time travel: {op} → {_short(head)} · loaded {_names(result.get('loaded'))} · "  # type: ignore[arg-type]
        f"deleted {_names(result.get('deleted'))}{missing}")


def _make_magic(kernel: HandlesRequests) -> Callable[[str], Report]:
    def timetravel(line: str) -> Report:
        if line.strip() in ("push", "pull"):
            return Report(kernel.remote_command(line.strip()))
        try:
            request = parse_magic_line(line)
        except ValueError as exc:
            return Report(str(exc))
        reply = kernel.handle_from_cell(request).reply
        if not reply["ok"]:
            error = reply["error"]  # type: ignore[typeddict-item]
            return Report(f"time travel: {error['code']}: {error['message']}")
        return format_result(str(request["op"]), reply["result"])  # type: ignore[typeddict-item]

    timetravel.__doc__ = USAGE
    return timetravel


def register_magics(shell: InteractiveShell, kernel: HandlesRequests) -> None:
    """Register ``%timetravel`` and its alias ``%tt`` on the kernel's shell."""
    magic = _make_magic(kernel)
    shell.register_magic_function(magic, "line", "timetravel")
    shell.register_magic_function(magic, "line", "tt")
