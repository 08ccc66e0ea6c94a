"""Comm protocol v1 message shapes: op names, events, error codes and their JSON forms.

Every name a frontend depends on is defined here once. Within v1 ops, events and fields are only
ever added, never renamed or removed (protocol layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypedDict, get_args

from typing_extensions import NotRequired

from timetravel_kernel.errors import BadRequestError, UnknownOpError
from timetravel_kernel.ids import id_to_hex

if TYPE_CHECKING:
    from collections.abc import Mapping

    from timetravel_kernel.store.objects import Commit
    from timetravel_kernel.timeline.results import (
        CheckoutResult,
        CheckpointResult,
        DiffResult,
        VarInfo,
        VersionInfo,
    )

__all__ = [
    "CHECKOUT_OPS",
    "COMM_TARGET",
    "ERROR_CODES",
    "EVENTS",
    "OPS",
    "PROTOCOL_VERSION",
    "CheckoutEvent",
    "CheckoutReply",
    "CheckpointEvent",
    "CommitJSON",
    "DiffReply",
    "ErrorCode",
    "ErrorInfo",
    "ErrorReply",
    "EventName",
    "HistoryReply",
    "LogReply",
    "OkReply",
    "Op",
    "RemoteStatusJSON",
    "Reply",
    "Request",
    "RestoreAvailableEvent",
    "RestoredEvent",
    "SavingEvent",
    "StatusReply",
    "StoreInfo",
    "VarJSON",
    "VarsReply",
    "VersionJSON",
    "WarningEvent",
    "format_checkout",
    "format_checkpoint_event",
    "format_commit",
    "format_diff",
    "format_history",
    "format_var",
    "make_error_reply",
    "make_ok_reply",
    "parse_request",
]

PROTOCOL_VERSION = 1
COMM_TARGET = "timetravel"

Op = Literal["status", "log", "checkout", "undo", "redo", "diff", "vars", "restore",
             "history", "get", "rebuild-preview", "rebuild"]
EventName = Literal["checkpoint", "saving", "checkout", "restored", "restore-available",
                    "warning", "rebuild-available", "rebuilt"]
ErrorCode = Literal[
    "bad-request",
    "unknown-op",
    "unknown-commit",
    "busy",
    "nothing-to-undo",
    "nothing-to-redo",
    "nothing-to-restore",
    "disabled",
    "read-only",
    "store-error",
    "store-locked",
    "store-corrupt",
    "store-format",
    "missing-object",
    "serialization",
    "timeline-error",
    "internal",
    "unknown-name",
    "covariable",
    "not-enough-memory",
]

OPS: frozenset[str] = frozenset(get_args(Op))
EVENTS: frozenset[str] = frozenset(get_args(EventName))
ERROR_CODES: frozenset[str] = frozenset(get_args(ErrorCode))
# Ops that change the live namespace: refused while a cell runs.
CHECKOUT_OPS: frozenset[str] = frozenset({"checkout", "undo", "redo", "restore", "get", "rebuild"})

# Ops' parameters: name -> (accepted type, required). Unknown extra fields are ignored so a
# newer frontend can talk to an older kernel.
_PARAMS: dict[str, dict[str, tuple[type, bool]]] = {
    "status": {"wait": (bool, False)},
    "log": {"limit": (int, False), "wait": (bool, False)},
    "checkout": {"commit": (str, True)},
    "undo": {},
    "redo": {},
    "diff": {"a": (str, True), "b": (str, True), "values": (bool, False)},
    "vars": {"commit": (str, False)},
    "restore": {},
    "history": {"name": (str, True)},
    "get": {"name": (str, True), "commit": (str, True), "as": (str, False),
            "together": (bool, False)},
    "rebuild-preview": {"names": (list, False)},
    "rebuild": {"names": (list, False), "budget": (float, False)},
}
_MAX_BUDGET = 86_400.0
_MAX_ID_LENGTH = 200


class CommitJSON(TypedDict):
    """A commit as every reply and event shows it."""

    id: str
    parent: str | None
    execution_count: int | None
    cell_id: str | None
    code: str
    time: float
    duration: float
    status: Literal["ok", "error"]
    changed: list[str]
    bytes_written: int
    cells: int
    """How many cells this state records (more than one when folded into one checkpoint)."""


class StoreInfo(TypedDict):
    """Where the history lives, how large it is on disk, and its size budget (None: none)."""

    path: str
    bytes: int
    budget: NotRequired[int | None]


class RemoteStatusJSON(TypedDict):
    """The ``remote`` of ``status``: where pushes go and how many states are not there yet."""

    url: str
    unpushed: int
    error: str | None
    last_push: float | None


class StatusReply(TypedDict):
    """Result of ``status``; ``enabled``, ``notice`` and ``remote`` extend the design's fields.

    ``remote`` is present only when the kernel has a remote.
    """

    protocol: int
    head: CommitJSON | None
    commits: int
    store: StoreInfo
    restorable: CommitJSON | None
    enabled: bool
    read_only: bool
    notice: str | None
    saving: int
    remote: NotRequired[RemoteStatusJSON]


class LogReply(TypedDict):
    """Result of ``log``: newest first, all branches."""

    commits: list[CommitJSON]


class CheckoutReply(TypedDict):
    """Result of ``checkout``, ``undo``, ``redo`` and ``restore``."""

    head: CommitJSON
    loaded: list[str]
    deleted: list[str]
    kept: list[str]
    seconds: float
    unrestored: dict[str, str]
    reconnected: list[str]


class DiffReply(TypedDict):
    """Result of ``diff``; ``values`` (asked with ``values: true``) says what changed inside."""

    added: list[str]
    deleted: list[str]
    changed: list[str]
    values: NotRequired[dict[str, str]]


class VarJSON(TypedDict):
    """One name of a commit."""

    name: str
    type: str
    bytes: int
    covariable: str
    saved: bool
    reason: NotRequired[str]


class VersionJSON(TypedDict):
    """One version of a name; ``covariable`` is null where the commit deleted the name."""

    commit: CommitJSON
    covariable: str | None
    type: str
    bytes: int
    saved: bool
    members: list[str]
    current: bool
    reason: NotRequired[str]


class HistoryReply(TypedDict):
    """Result of ``history``: the versions of one name, newest first, all branches."""

    name: str
    versions: list[VersionJSON]


class VarsReply(TypedDict):
    """Result of ``vars``."""

    vars: list[VarJSON]


class ErrorInfo(TypedDict):
    """Why a request failed and what to do."""

    code: ErrorCode
    message: str


class OkReply(TypedDict):
    """A successful reply."""

    id: str | None
    ok: Literal[True]
    result: Mapping[str, object]


class ErrorReply(TypedDict):
    """A failed reply; ``id`` is None only when the request had no usable id."""

    id: str | None
    ok: Literal[False]
    error: ErrorInfo


Reply = OkReply | ErrorReply


class CheckpointEvent(TypedDict):
    """Sent once a cell's state is durable; ``saving``: the cells still being saved after it."""

    event: Literal["checkpoint"]
    commit: CommitJSON
    unsaved: dict[str, str]
    seconds: float
    saving: int


class SavingEvent(TypedDict):
    """Sent when a cell's state is being saved in the background (not durable yet)."""

    event: Literal["saving"]
    saving: int
    execution_count: int | None


class CheckoutEvent(TypedDict):
    """Sent after any op that moved HEAD, whoever asked for it."""

    event: Literal["checkout"]
    op: Literal["checkout", "undo", "redo", "restore", "get"]
    head: CommitJSON
    loaded: list[str]
    deleted: list[str]
    kept: list[str]
    seconds: float
    unrestored: dict[str, str]
    reconnected: list[str]


class RestoredEvent(TypedDict):
    """Sent when the kernel brought back a previous session's state on its own."""

    event: Literal["restored"]
    head: CommitJSON
    crashed: bool
    unrestored: dict[str, str]
    reconnected: list[str]
    message: str


class RestoreAvailableEvent(TypedDict):
    """Sent when a previous session's state can be restored with ``restore``."""

    event: Literal["restore-available"]
    restorable: CommitJSON
    crashed: bool
    message: str


class WarningEvent(TypedDict):
    """Something was not saved or restored, or the store cannot be used as configured."""

    event: Literal["warning"]
    message: str
    names: dict[str, str]
    execution_count: NotRequired[int | None]


@dataclass(frozen=True, slots=True)
class Request:
    """A validated request: its id, op and the op's parameters."""

    id: str
    op: Op
    params: Mapping[str, object] = field(default_factory=dict)


def parse_request(data: object) -> Request:
    """Return the request in a comm message's data.

    Raises:
        BadRequestError: not an object, no string ``id``, missing or ill-typed parameters.
        UnknownOpError: ``op`` is not an op of protocol v1.
    """
    if not isinstance(data, dict):
        raise BadRequestError(f"a request is a JSON object, got {type(data).__name__}")
    request_id = data.get("id")
    if not isinstance(request_id, str) or len(request_id) > _MAX_ID_LENGTH:
        raise BadRequestError(f"a request needs an 'id' string of at most {_MAX_ID_LENGTH} chars")
    op = data.get("op")
    if not isinstance(op, str):
        raise BadRequestError("a request needs an 'op' string")
    if op not in OPS:
        raise UnknownOpError(f"unknown op {op[:50]!r}; protocol v1 has {', '.join(sorted(OPS))}")
    params: dict[str, object] = {}
    for name, (kind, required) in _PARAMS[op].items():
        value = data.get(name)
        if value is None:
            if required:
                raise BadRequestError(f"op {op!r} needs the parameter {name!r}")
            continue
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # JSON has one number type
        # bool is an int subclass: a JSON true is not a limit.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise BadRequestError(f"parameter {name!r} of {op!r} must be a {kind.__name__}")
        if kind is int and not 0 < value <= 1_000_000:  # type: ignore[operator]
            raise BadRequestError(f"parameter {name!r} of {op!r} must be in 1..1000000")
        if kind is float and not 0 < value <= _MAX_BUDGET:  # type: ignore[operator]
            raise BadRequestError(f"parameter {name!r} of {op!r} must be in (0, 86400] seconds")
        if kind is list and not all(isinstance(item, str) for item in value):  # type: ignore[attr-defined]
            raise BadRequestError(f"parameter {name!r} of {op!r} must be a list of names")
        params[name] = value
    return Request(request_id, op, params)  # type: ignore[arg-type]


def make_ok_reply(request_id: str | None, result: Mapping[str, object]) -> OkReply:
    """Return the success reply to a request."""
    return {"id": request_id, "ok": True, "result": result}


def make_error_reply(request_id: str | None, code: ErrorCode, message: str) -> ErrorReply:
    """Return the error reply to a request."""
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message}}


def _finite(value: float) -> float:
    # JSON has no NaN or infinity; a broken clock must not make a reply unparsable.
    return float(value) if math.isfinite(value) else 0.0


def format_commit(commit: Commit) -> CommitJSON:
    """Return the protocol form of a commit."""
    return {
        "id": id_to_hex(commit.id),
        "parent": id_to_hex(commit.parent) if commit.parent else None,
        "execution_count": commit.execution_count,
        "cell_id": commit.cell_id,
        "code": commit.code,
        "time": _finite(commit.time),
        "duration": _finite(commit.duration),
        "status": commit.status,
        "changed": list(commit.changed),
        "bytes_written": int(commit.bytes_written),
        "cells": commit.cells,
    }


def format_checkout(result: CheckoutResult) -> CheckoutReply:
    """Return the protocol form of a checkout's result."""
    return {
        "head": format_commit(result.head),
        "loaded": list(result.loaded),
        "deleted": list(result.deleted),
        "kept": list(result.kept),
        "seconds": _finite(result.seconds),
        "unrestored": dict(result.unrestored),
        "reconnected": list(result.reconnected),
    }


def format_diff(result: DiffResult, *, values: bool = False) -> DiffReply:
    """Return the protocol form of a diff (with ``values`` when they were asked for)."""
    reply: DiffReply = {
        "added": list(result.added),
        "deleted": list(result.deleted),
        "changed": list(result.changed),
    }
    if values:
        reply["values"] = dict(result.values)
    return reply


def format_history(name: str, versions: list[VersionInfo]) -> HistoryReply:
    """Return the protocol form of a name's versions."""
    out: list[VersionJSON] = []
    for version in versions:
        item: VersionJSON = {
            "commit": format_commit(version.commit),
            "covariable": version.covariable,
            "type": version.type,
            "bytes": int(version.bytes),
            "saved": version.saved,
            "members": list(version.members),
            "current": version.current,
        }
        if version.reason is not None:
            item["reason"] = version.reason
        out.append(item)
    return {"name": name, "versions": out}


def format_var(info: VarInfo) -> VarJSON:
    """Return the protocol form of one variable of a commit."""
    var: VarJSON = {
        "name": info.name,
        "type": info.type,
        "bytes": int(info.bytes),
        "covariable": info.covariable,
        "saved": info.saved,
    }
    if info.reason is not None:
        var["reason"] = info.reason
    return var


def format_checkpoint_event(result: CheckpointResult, *, saving: int = 0) -> CheckpointEvent:
    """Return the event announcing a durable checkpoint (``saving``: cells still saving)."""
    return {
        "event": "checkpoint",
        "commit": format_commit(result.commit),
        "unsaved": dict(result.unsaved),
        "seconds": _finite(result.seconds),
        "saving": saving,
    }
