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

from timetravel_kernel.protocol.rebuilds import describe_plan, describe_rebuild, list_plan_code

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from IPython.core.interactiveshell import InteractiveShell

    from timetravel_kernel.protocol import Response
    from timetravel_kernel.protocol.rebuilds import RebuildPlanJSON

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
  %tt diff A B          names added, deleted and changed between two states, and what
                        changed inside each changed value
  %tt vars [ID]         the saved variables of a state (HEAD by default)
  %tt history NAME      the versions NAME had (all branches), newest first
  %tt get NAME@ID [as NEWNAME]
                        bring back NAME as it was at state ID, leaving every other name
                        alone (recorded as a new state: %tt undo takes it back); add
                        --together for a name that shares objects with others
  %tt restore           bring back the previous session's last state
  %tt rebuild [NAME ...]  bring back unsaveable values a restore left behind by running the
                        recorded cells that made them on their recorded inputs
                        (--preview: show those cells and their code; --budget SECONDS)
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
    if op == "rebuild":
        return _parse_rebuild(args, request)
    if op == "get":
        return {**request, **_parse_get(args)}
    if op == "diff":
        request["values"] = True
    shapes: dict[str, Sequence[str]] = {
        "status": (), "undo": (), "redo": (), "restore": (), "log": ("limit?",),
        "checkout": ("commit",), "diff": ("a", "b"), "vars": ("commit?",), "history": ("name",),
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


def _parse_rebuild(args: list[str], request: dict[str, object]) -> dict[str, object]:
    names: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--preview":
            request["op"] = "rebuild-preview"
        elif word == "--budget":
            value = next(words, "")
            try:
                request["budget"] = float(value)
            except ValueError:
                raise ValueError(f"%tt rebuild --budget takes seconds, not {value!r}") from None
        elif word.isidentifier():
            names.append(word)
        else:
            raise ValueError(f"%tt rebuild takes variable names, not {word!r}\n{USAGE}")
    if names:
        request["names"] = names
    return request


def _parse_get(args: list[str]) -> dict[str, object]:
    """Return the parameters of ``get NAME@ID [as NEWNAME] [--together]``.

    Raises:
        ValueError: the words are not of that form; the message shows it.
    """
    form = "%tt get NAME@ID [as NEWNAME] [--together]"
    together = "--together" in args
    words = [w for w in args if w != "--together"]
    if len(words) not in (1, 3) or (len(words) == 3 and words[1] != "as"):
        raise ValueError(f"{form}\n{USAGE}")
    name, _, commit = words[0].partition("@")
    if not name or not commit:
        example = name or "NAME"
        raise ValueError(f"{form}: say which state, e.g. {example}@3f2a (%tt history {example})")
    params: dict[str, object] = {"name": name, "commit": commit}
    if len(words) == 3:
        params["as"] = words[2]
    if together:
        params["together"] = True
    return params


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
