"""Comm protocol v1 messages: the names of ops, events and errors, and the shapes of replies.

Each name and shape is defined once, here or (each op's parameters) in requests.py, as Literals
and TypedDicts; ``Field`` adds what a type cannot say (bounds, a pattern, a meaning). schema.json
(schema.py) and the lab extension's labextension/src/wire.ts (typescript.py) are generated from
these definitions, and tests fail while either file is stale. Within v1 ops, events and fields
are only ever added, never renamed or removed (protocol layer).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal, TypedDict, get_args

from typing_extensions import NotRequired

from timetravel_kernel.ids import id_to_hex
from timetravel_kernel.protocol.shapes import Field

if TYPE_CHECKING:
    from timetravel_kernel.store.objects import Commit
    from timetravel_kernel.timeline.results import (
        CheckoutResult,
        CheckpointResult,
        DiffResult,
        VarInfo,
        VersionInfo,
    )

__all__ = [
    "CHECKOUT_OPS", "COMM_TARGET", "ERROR_CODES", "EVENTS", "OPS", "PROTOCOL_VERSION",
    "CheckoutEvent", "CheckoutOp", "CheckoutReply", "CheckpointEvent", "CommitHex", "CommitJSON",
    "DiffReply", "ErrorCode", "ErrorInfo", "ErrorReply", "EventName", "HistoryReply",
    "KernelEvent", "LogReply", "OkReply", "Op", "OpResult", "RebuildAvailableEvent",
    "RebuildPlanJSON", "RebuildReply", "RebuildStepJSON", "RebuiltEvent", "RemoteStatusJSON",
    "Reply", "RestoreAvailableEvent", "RestoredEvent", "SavingEvent", "StatusReply", "StoreInfo",
    "VarJSON", "VarsReply", "VersionJSON", "WarningEvent", "format_checkout",
    "format_checkpoint_event", "format_commit", "format_diff", "format_history", "format_var",
    "make_error_reply", "make_ok_reply"
]

COMM_TARGET = "timetravel"
PROTOCOL_VERSION: Literal[1] = 1

Op = Literal["status", "log", "checkout", "undo", "redo", "diff", "vars", "restore",
             "history", "get", "rebuild-preview", "rebuild"]
# The ops a ``checkout`` event names: those that move HEAD to a stored state.
CheckoutOp = Literal["checkout", "undo", "redo", "restore", "get"]
EventName = Literal["checkpoint", "saving", "checkout", "restored", "restore-available",
                    "warning", "rebuild-available", "rebuilt"]
ErrorCode = Literal[
    "bad-request", "unknown-op", "unknown-commit", "busy", "nothing-to-undo", "nothing-to-redo",
    "nothing-to-restore", "disabled", "read-only", "store-error", "store-locked", "store-corrupt",
    "store-format", "missing-object", "serialization", "timeline-error", "internal",
    "unknown-name", "covariable", "not-enough-memory"]

OPS: frozenset[str] = frozenset(get_args(Op))
EVENTS: frozenset[str] = frozenset(get_args(EventName))
ERROR_CODES: frozenset[str] = frozenset(get_args(ErrorCode))
# Ops that change the live namespace: refused while a cell runs.
CHECKOUT_OPS: frozenset[str] = frozenset({*get_args(CheckoutOp), "rebuild"})

# Value types used by many shapes.
CommitHex = Annotated[str, Field(pattern="^[0-9a-f]{32}$",
                                 description="a commit id: 32 lowercase hex digits")]
_Count = Annotated[int, Field(minimum=0)]
_Seconds = Annotated[float, Field(minimum=0)]


class CommitJSON(TypedDict):
    """A commit as every reply and event shows it."""

    id: CommitHex
    parent: CommitHex | None
    execution_count: int | None
    cell_id: str | None
    code: str
    time: float
    duration: _Seconds
    status: Literal["ok", "error"]
    changed: list[str]
    bytes_written: _Count
    cells: Annotated[int, Field(
        minimum=1, description="Cells this state records: more than one only when earlier "
                               "cells' states could not be saved.")]


class StoreInfo(TypedDict):
    """Where the history lives, how large it is on disk, and its size budget (null: none)."""

    path: str
    bytes: _Count
    budget: NotRequired[Annotated[int | None, Field(minimum=0)]]


class RemoteStatusJSON(TypedDict):
    """The ``remote`` of ``status``: where pushes go and how many states are not there yet."""

    url: str
    unpushed: _Count
    error: str | None
    last_push: float | None


class StatusReply(TypedDict):
    """Result of ``status``; ``enabled``, ``notice`` and ``remote`` extend the design's fields."""

    protocol: Literal[1]
    head: CommitJSON | None
    commits: _Count
    store: StoreInfo
    restorable: CommitJSON | None
    enabled: Annotated[bool, Field(description="false when time travel could not start")]
    read_only: Annotated[bool, Field(
        description="the history is read-only (moves are refused)")]
    notice: Annotated[str | None, Field(
        description="one sentence about an unusual state (temporary history, off, ...)")]
    saving: Annotated[int, Field(
        minimum=0, description="cells whose states are still being saved (not durable yet)")]
    remote: NotRequired[Annotated[RemoteStatusJSON, Field(
        description="present when the kernel pushes to a remote")]]


class LogReply(TypedDict):
    """Result of ``log``: newest first, all branches."""

    commits: list[CommitJSON]


class CheckoutReply(TypedDict):
    """Result of ``checkout``, ``undo``, ``redo``, ``restore`` and ``get``."""

    head: CommitJSON
    loaded: list[str]
    deleted: list[str]
    kept: list[str]
    seconds: _Seconds
    unrestored: dict[str, str]
    reconnected: Annotated[list[str], Field(
        description="loaded names made again from their descriptions (files, sqlite3 file "
                    "connections, locks, events), no cell run")]


class DiffReply(TypedDict):
    """Result of ``diff``."""

    added: list[str]
    deleted: list[str]
    changed: list[str]
    values: NotRequired[Annotated[dict[str, str], Field(
        description="when asked with `values: true`: what changed inside each changed name")]]


class VarJSON(TypedDict):
    """One name of a commit."""

    name: str
    type: str
    bytes: _Count
    covariable: str
    saved: bool
    reason: NotRequired[str]


class VersionJSON(TypedDict):
    """One version of a name; ``covariable`` is null where the commit deleted the name."""

    commit: CommitJSON
    covariable: str | None
    type: str
    bytes: _Count
    saved: bool
    members: Annotated[list[str], Field(
        description="every name stored with it (they share objects); restored together")]
    current: Annotated[bool, Field(description="HEAD has this very version")]
    reason: NotRequired[str]


class HistoryReply(TypedDict):
    """Result of ``history``: the versions of one name, newest first, all branches."""

    name: str
    versions: list[VersionJSON]


class VarsReply(TypedDict):
    """Result of ``vars``."""

    vars: list[VarJSON]


class RebuildStepJSON(TypedDict):
    """One step of a rebuild: a recorded cell to run again, or values to reconnect."""

    kind: Literal["run", "reconnect"]
    names: list[str]
    commit: CommitHex | None
    execution_count: int | None
    code: str
    seconds: _Seconds


class RebuildPlanJSON(TypedDict):
    """Result of ``rebuild-preview`` (and a ``rebuild-available`` event's ``plan``)."""

    at: CommitJSON
    names: list[str]
    steps: list[RebuildStepJSON]
    seconds: _Seconds
    impossible: dict[str, str]


class RebuildReply(TypedDict):
    """Result of ``rebuild``: the names brought back and why the others were not."""

    rebuilt: list[str]
    failed: dict[str, str]
    cells_run: _Count
    seconds: _Seconds


OpResult = (StatusReply | LogReply | CheckoutReply | DiffReply | VarsReply | RebuildPlanJSON
            | RebuildReply | HistoryReply)


class ErrorInfo(TypedDict):
    """Why a request failed and what to do."""

    code: ErrorCode
    message: str


class OkReply(TypedDict):
    """A successful reply."""

    id: str | None
    ok: Literal[True]
    result: OpResult


class ErrorReply(TypedDict):
    """A failed reply; ``id`` is null only when the request had no usable id."""

    id: str | None
    ok: Literal[False]
    error: ErrorInfo


Reply = OkReply | ErrorReply


class CheckpointEvent(TypedDict):
    """Sent once a cell's state is durable."""

    event: Literal["checkpoint"]
    commit: CommitJSON
    unsaved: dict[str, str]
    seconds: _Seconds
    saving: Annotated[int, Field(minimum=0, description="cells still being saved after this one")]


class SavingEvent(TypedDict):
    """Sent when a cell's state is being saved in the background (not durable yet)."""

    event: Literal["saving"]
    saving: Annotated[int, Field(minimum=1)]
    execution_count: int | None


class CheckoutEvent(CheckoutReply):
    """Sent after any op that moved HEAD, whoever asked for it: the op and its result."""

    event: Literal["checkout"]
    op: CheckoutOp


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
    execution_count: NotRequired[Annotated[int | None, Field(
        description="the cell whose state could not be saved, when the warning is about one")]]


class RebuildAvailableEvent(TypedDict):
    """Sent after a restore left unsaveable values behind that recorded cells can rebuild."""

    event: Literal["rebuild-available"]
    plan: RebuildPlanJSON
    message: str


class RebuiltEvent(RebuildReply):
    """Sent when a rebuild changed the live namespace: the ``rebuild`` result."""

    event: Literal["rebuilt"]


KernelEvent = (CheckpointEvent | SavingEvent | CheckoutEvent | RestoredEvent
               | RestoreAvailableEvent | WarningEvent | RebuildAvailableEvent | RebuiltEvent)


def make_ok_reply(request_id: str | None, result: OpResult) -> OkReply:
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
