"""``%timetravel`` / ``%tt``: the protocol's ops as line magics, for frontends without the comm.

Each magic builds a protocol request and hands it to the kernel's ProtocolHandler, so the
magics and the lab extension can never disagree; this module only parses, and prints the
answer as ``session/reports.py`` formats it (kernel layer).
"""

from __future__ import annotations

import shlex
import uuid
from typing import TYPE_CHECKING, Protocol

from timetravel_kernel.session.reports import Report, format_result

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from IPython.core.interactiveshell import InteractiveShell

    from timetravel_kernel.protocol import Response

__all__ = [
    "USAGE",
    "HandlesRequests",
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
