"""ProtocolHandler: turns protocol v1 requests into timeline calls, one reply each (protocol layer).

The handler knows nothing of Jupyter: the kernel hands it the comm message's data and sends back
what it returns, and the magics call it with requests they build. Any failure, ours or the
timeline's, becomes an error reply; the namespace is only touched by the checkout ops.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from timetravel_kernel.errors import (
    BusyError,
    TimeTravelError,
    UnknownCommitError,
)
from timetravel_kernel.protocol.messages import (
    CHECKOUT_OPS,
    ERROR_CODES,
    PROTOCOL_VERSION,
    CheckoutEvent,
    ErrorCode,
    RebuiltEvent,
    Reply,
    StatusReply,
    format_checkout,
    format_commit,
    format_diff,
    format_history,
    format_var,
    make_error_reply,
    make_ok_reply,
)
from timetravel_kernel.protocol.rebuilds import format_rebuild, format_rebuild_plan
from timetravel_kernel.protocol.requests import parse_request

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping

    from timetravel_kernel.ids import CommitId
    from timetravel_kernel.protocol.messages import CheckoutOp, OpResult, RemoteStatusJSON
    from timetravel_kernel.protocol.requests import Request
    from timetravel_kernel.store import Commit
    from timetravel_kernel.timeline import Timeline
    from timetravel_kernel.timeline.results import CheckoutResult

__all__ = ["HistorySource", "ProtocolHandler", "Response", "ServedTimeline"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Response:
    """The one reply to a request and the events it causes (sent to every open comm)."""

    reply: Reply
    events: tuple[CheckoutEvent | RebuiltEvent, ...] = ()

    @property
    def moved_head(self) -> bool:
        """Whether the request changed the live namespace."""
        return bool(self.events)


class HistorySource(Protocol):
    """What a handler serves, read at each request: a session's timeline can be replaced.

    ``timeline`` is None when time travel is off or the store could not be opened (every op
    but ``status`` then fails with ``disabled``); ``notice`` is a sentence for ``status``
    explaining an unusual state; ``budget`` the store's size budget (retention), if any.
    """

    @property
    def timeline(self) -> Timeline | None: ...  # noqa: D102 - the class docstring says it

    @property
    def notice(self) -> str | None: ...  # noqa: D102

    @property
    def budget(self) -> int | None: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class ServedTimeline:
    """A history source for one timeline served as it is (tools, tests)."""

    timeline: Timeline | None
    notice: str | None = None
    budget: int | None = None


class ProtocolHandler:
    """Answers protocol v1 requests against one history and one live namespace.

    Args:
        source: what it serves (a session; ``ServedTimeline`` for a fixed timeline).
        namespace: the live namespace the timeline's HEAD describes.
        is_busy: returns True while a cell runs; checkout ops are then refused with ``busy``.
        lock: held around every timeline call so a checkpoint in another thread (a subshell)
            never interleaves with a checkout; a held lock also means ``busy``.
        read_only: the timeline was opened beside another writer; checkout ops are refused.
        transform_cell: turns a recorded cell's code into Python, for ``rebuild``.
        rebuild_budget: seconds a ``rebuild`` may run when the request names no budget.
        remote_status: returns the ``remote`` part of ``status`` (None: no remote).
    """

    def __init__(
        self,
        source: HistorySource,
        namespace: MutableMapping[str, object],
        *,
        is_busy: Callable[[], bool] = lambda: False,
        lock: threading.RLock | None = None,
        read_only: bool = False,
        transform_cell: Callable[[str], str] = str,
        rebuild_budget: float = 60.0,
        remote_status: Callable[[], RemoteStatusJSON | None] = lambda: None,
    ) -> None:
        self.transform_cell = transform_cell
        self.rebuild_budget = rebuild_budget
        self.source = source
        self.namespace = namespace
        self.read_only = read_only
        self._is_busy = is_busy
        self._remote_status = remote_status
        self._lock = lock if lock is not None else threading.RLock()

    @property
    def timeline(self) -> Timeline | None:
        """The timeline served now."""
        return self.source.timeline

    @property
    def notice(self) -> str | None:
        """The source's sentence about an unusual state of the history, if any."""
        return self.source.notice

    def handle(self, data: object, *, from_cell: bool = False,
               sent_during_cell: bool = False) -> Response:
        """Return the reply to one request, never raising.

        Args:
            data: the request as received (any JSON value).
            from_cell: the request comes from the running cell itself (a magic); it may move
                HEAD although a cell is running.
            sent_during_cell: the request was sent while a cell ran and waited for it to
                finish (a synchronous cell holds the shell channel); a move is then refused
                with ``busy``, since it would undo the cell the user saw running, not the one
                they meant.
        """
        request_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(request_id, str):
            request_id = None
        try:
            request = parse_request(data)
            if sent_during_cell and request.op in CHECKOUT_OPS:
                raise BusyError("a cell was running when this was sent; nothing was changed: "
                                "send it again now that the cell has finished")
            return self._dispatch(request, from_cell=from_cell)
        except TimeTravelError as exc:
            code: ErrorCode = exc.code if exc.code in ERROR_CODES else "internal"  # type: ignore[assignment]
            return Response(make_error_reply(request_id, code, str(exc)))
        except KeyboardInterrupt:
            return Response(make_error_reply(request_id, "internal", "interrupted by the user"))
        except Exception as exc:
            # Broad catch by design (STYLE.md): a bug below must become an error reply, never a
            # dead comm or a disturbed kernel.
            _log.exception("time-travel request %r failed", request_id)
            return Response(make_error_reply(
                request_id, "internal", f"internal error: {type(exc).__name__}: {exc}"))

    def _dispatch(self, request: Request, *, from_cell: bool) -> Response:
        if request.op == "status":
            wait = request.params.get("wait") is not False
            return Response(make_ok_reply(request.id, self.status(wait=wait)))
        timeline = self._require_timeline()
        if request.op in CHECKOUT_OPS:
            return self._checkout(timeline, request, from_cell=from_cell)
        if not self._lock.acquire(blocking=False):
            raise BusyError("the history is being written; try again when the cell finishes")
        try:
            result = self._query(timeline, request)
        finally:
            self._lock.release()
        return Response(make_ok_reply(request.id, result))

    def _query(self, timeline: Timeline, request: Request) -> OpResult:
        params = request.params
        if request.op == "log":
            limit = params.get("limit")
            commits = timeline.log(limit if isinstance(limit, int) else None,
                                   settle=params.get("wait") is not False)
            return {"commits": [format_commit(c) for c in commits]}
        if request.op == "diff":
            a = self._resolve(timeline, params["a"])
            b = self._resolve(timeline, params["b"])
            values = params.get("values") is True
            return format_diff(timeline.diff(a, b, values=values), values=values)
        if request.op == "history":
            name = str(params["name"])
            return format_history(name, timeline.history(name))
        if request.op == "rebuild-preview":
            return format_rebuild_plan(timeline.rebuild_plan(_names_param(params)))
        # vars
        commit = params.get("commit")
        commit_id = self._resolve(timeline, commit) if commit is not None else None
        return {"vars": [format_var(v) for v in timeline.variables(commit_id)]}

    def _checkout(self, timeline: Timeline, request: Request, *, from_cell: bool) -> Response:
        if self._is_busy() and not from_cell:
            raise BusyError("a cell is running; the state can be changed when it finishes")
        if self.read_only or timeline.read_only:
            return Response(make_error_reply(
                request.id, "read-only",
                "this kernel's history is read-only (another kernel owns the store)"))
        if request.op == "restore" and self._restorable_id(timeline, timeline.head) is None:
            return Response(make_error_reply(
                request.id, "nothing-to-restore",
                "there is no earlier session state to restore"))
        if not self._lock.acquire(blocking=False):
            raise BusyError("the history is being written; try again when the cell finishes")
        try:
            if request.op == "rebuild":
                return self._rebuild(timeline, request)
            result = self._run_checkout(timeline, request)
        finally:
            self._lock.release()
        op: CheckoutOp = request.op  # type: ignore[assignment]
        reply = format_checkout(result)
        event: CheckoutEvent = {"event": "checkout", "op": op, **reply}  # type: ignore[typeddict-item]
        return Response(make_ok_reply(request.id, reply), (event,))

    def _rebuild(self, timeline: Timeline, request: Request) -> Response:
        budget = request.params.get("budget")
        result = format_rebuild(timeline.rebuild(
            self.namespace,  # type: ignore[arg-type]
            _names_param(request.params), transform=self.transform_cell,
            budget=budget if isinstance(budget, float) else self.rebuild_budget))
        event: RebuiltEvent = {"event": "rebuilt", **result}  # type: ignore[typeddict-item]
        events = (event,) if result["rebuilt"] else ()
        return Response(make_ok_reply(request.id, result), events)

    def _run_checkout(self, timeline: Timeline, request: Request) -> CheckoutResult:
        ns = self.namespace
        if request.op == "undo":
            return timeline.undo(ns)
        if request.op == "redo":
            return timeline.redo(ns)
        if request.op == "restore":
            return timeline.restore(ns)
        if request.op == "get":
            as_name = request.params.get("as")
            return timeline.restore_variable(
                ns, str(request.params["name"]), self._resolve(timeline, request.params["commit"]),
                as_name=str(as_name) if as_name is not None else None,
                together=request.params.get("together") is True)
        return timeline.checkout(ns, self._resolve(timeline, request.params["commit"]))

    def status(self, *, wait: bool = True) -> StatusReply:
        """Return the ``status`` result (also what the magics print).

        ``wait``: first wait until every finished cell's state is durable; without it the
        answer describes what is durable now, and ``saving`` counts the rest.
        """
        timeline = self.timeline
        if timeline is None:
            return {"protocol": PROTOCOL_VERSION, "head": None, "commits": 0,
                    "store": {"path": "", "bytes": 0, "budget": None}, "restorable": None,
                    "enabled": False,
                    "read_only": True, "notice": self.notice, "saving": 0}
        if wait:
            timeline.settle()
        head = timeline.durable_head
        restorable_id = self._restorable_id(timeline, head)
        restorable = timeline.restorable if restorable_id is not None else None
        path = timeline.store_path
        reply: StatusReply = {
            "protocol": PROTOCOL_VERSION,
            "head": format_commit(head) if head is not None else None,
            "commits": timeline.commit_count(settle=False),
            "store": {"path": str(path) if path is not None else "",
                      "bytes": timeline.store_bytes(settle=False), "budget": self.source.budget},
            "restorable": format_commit(restorable) if restorable is not None else None,
            "enabled": True,
            "read_only": self.read_only or timeline.read_only,
            "notice": self.notice,
            "saving": len(timeline.recorder.saving),
        }
        remote = self._remote_status()
        if remote is not None:
            reply["remote"] = remote
        return reply

    @staticmethod
    def _restorable_id(timeline: Timeline, head: Commit | None) -> CommitId | None:
        # Restoring what the namespace already is would be a no-op: not offered.
        restorable = timeline.restorable
        if restorable is None or (head is not None and head.id == restorable.id):
            return None
        return restorable.id

    def _require_timeline(self) -> Timeline:
        if self.timeline is None:
            raise _DisabledError(self.notice or "time travel is off for this kernel")
        return self.timeline

    @staticmethod
    def _resolve(timeline: Timeline, text: object) -> CommitId:
        if not isinstance(text, str):
            raise UnknownCommitError(repr(text))
        return timeline.resolve(text)


def _names_param(params: Mapping[str, object]) -> list[str] | None:
    names = params.get("names")
    return [str(n) for n in names] if isinstance(names, list) and names else None


class _DisabledError(TimeTravelError):
    code = "disabled"
