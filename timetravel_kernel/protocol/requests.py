"""Requests: each op's parameters and the check of a comm message against them (protocol layer).

An op's parameters are a TypedDict, paired with its result in ``OP_SHAPES``; ``parse_request``
reads its checks from them (a parameter's type, whether it is required, a list's items, the
numeric bounds of its ``Field``), and schema.json and the lab extension's types are generated
from the same shapes, so a parameter is added by writing it here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, NamedTuple, TypedDict, get_args, get_origin

from typing_extensions import NotRequired

from timetravel_kernel.errors import BadRequestError, UnknownOpError
from timetravel_kernel.protocol.messages import (
    OPS,
    CheckoutReply,
    DiffReply,
    HistoryReply,
    LogReply,
    RebuildPlanJSON,
    RebuildReply,
    StatusReply,
    VarsReply,
)
from timetravel_kernel.protocol.shapes import Field, members_of, unwrap

if TYPE_CHECKING:
    from collections.abc import Mapping

    from timetravel_kernel.protocol.messages import Op
    from timetravel_kernel.protocol.shapes import Member

__all__ = [
    "MAX_ID_LENGTH", "OP_SHAPES", "CheckoutParams", "DiffParams", "GetParams", "HistoryParams",
    "LogParams", "NoParams", "OpShape", "RebuildParams", "RebuildPreviewParams", "Request",
    "RequestId", "StatusParams", "VarsParams", "parse_request"
]

MAX_ID_LENGTH = 200
RequestId = Annotated[str, Field(
    max_length=MAX_ID_LENGTH, description="chosen by the client; its reply carries it back")]
_WAIT = Field(description="false: answer at once from the states already durable (default true: "
                          "first wait until every finished cell's state is)")
_NAMES = Field(description="the lost names to rebuild (default: all of them)")


class StatusParams(TypedDict):
    """Parameters of ``status``."""

    wait: NotRequired[Annotated[bool, _WAIT]]


class LogParams(TypedDict):
    """Parameters of ``log``."""

    limit: NotRequired[Annotated[int, Field(
        minimum=1, maximum=1_000_000, description="at most this many commits, newest first")]]
    wait: NotRequired[Annotated[bool, _WAIT]]


class NoParams(TypedDict):
    """Parameters of an op that has none."""


class CheckoutParams(TypedDict):
    """Parameters of ``checkout``."""

    commit: str


class DiffParams(TypedDict):
    """Parameters of ``diff``."""

    a: str
    b: str
    values: NotRequired[bool]


class VarsParams(TypedDict):
    """Parameters of ``vars``."""

    commit: NotRequired[str]


class HistoryParams(TypedDict):
    """Parameters of ``history``."""

    name: str


# Written as a call because ``as`` is a Python keyword.
GetParams = TypedDict("GetParams", {
    "name": str, "commit": str, "as": NotRequired[str], "together": NotRequired[bool]})
GetParams.__doc__ = "Parameters of ``get``."


class RebuildPreviewParams(TypedDict):
    """Parameters of ``rebuild-preview``."""

    names: NotRequired[Annotated[list[str], _NAMES]]


class RebuildParams(TypedDict):
    """Parameters of ``rebuild``."""

    names: NotRequired[Annotated[list[str], _NAMES]]
    budget: NotRequired[Annotated[float, Field(
        exclusive_minimum=0, maximum=86_400,
        description="seconds the rebuild may run (default: the kernel's rebuild_budget)")]]


class OpShape(NamedTuple):
    """An op's parameters (beside ``id`` and ``op``) and the result of its ok reply."""

    params: type
    result: type


# Unknown extra fields of a request are ignored, so a newer frontend can talk to an older kernel.
OP_SHAPES: dict[Op, OpShape] = {
    "status": OpShape(StatusParams, StatusReply),
    "log": OpShape(LogParams, LogReply),
    "checkout": OpShape(CheckoutParams, CheckoutReply),
    "undo": OpShape(NoParams, CheckoutReply),
    "redo": OpShape(NoParams, CheckoutReply),
    "diff": OpShape(DiffParams, DiffReply),
    "vars": OpShape(VarsParams, VarsReply),
    "restore": OpShape(NoParams, CheckoutReply),
    "history": OpShape(HistoryParams, HistoryReply),
    "get": OpShape(GetParams, CheckoutReply),
    "rebuild-preview": OpShape(RebuildPreviewParams, RebuildPlanJSON),
    "rebuild": OpShape(RebuildParams, RebuildReply),
}


@dataclass(frozen=True, slots=True)
class Request:
    """A validated request: its id, op and the op's parameters."""

    id: str
    op: Op
    params: Mapping[str, object] = field(default_factory=dict)


def parse_request(data: object) -> Request:
    """Return the request in a comm message's data.

    Unknown extra fields are ignored, so a newer frontend can talk to an older kernel; a
    parameter sent as null counts as absent.

    Raises:
        BadRequestError: not an object, no string ``id``, missing or ill-typed parameters.
        UnknownOpError: ``op`` is not an op of protocol v1.
    """
    if not isinstance(data, dict):
        raise BadRequestError(f"a request is a JSON object, got {type(data).__name__}")
    request_id = data.get("id")
    if not isinstance(request_id, str) or len(request_id) > MAX_ID_LENGTH:
        raise BadRequestError(f"a request needs an 'id' string of at most {MAX_ID_LENGTH} chars")
    op = data.get("op")
    if not isinstance(op, str):
        raise BadRequestError("a request needs an 'op' string")
    if op not in OPS:
        raise UnknownOpError(f"unknown op {op[:50]!r}; protocol v1 has {', '.join(sorted(OPS))}")
    params: dict[str, object] = {}
    for member in members_of(OP_SHAPES[op].params):  # type: ignore[index]
        value = data.get(member.name)
        if value is None:
            if member.required:
                raise BadRequestError(f"op {op!r} needs the parameter {member.name!r}")
            continue
        params[member.name] = _check_param(op, member, value)
    return Request(request_id, op, params)  # type: ignore[arg-type]


def _check_param(op: str, member: Member, value: object) -> object:
    """Return a parameter's value as the op reads it, or raise ``BadRequestError``."""
    hint, bounds = unwrap(member.hint)
    kind: type = get_origin(hint) or hint  # type: ignore[assignment]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # JSON has one number type
    # bool is an int subclass: a JSON true is not a limit.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise BadRequestError(f"parameter {member.name!r} of {op!r} must be a {kind.__name__}")
    if isinstance(value, list):
        (item,) = get_args(hint)
        if not all(isinstance(entry, item) for entry in value):
            raise BadRequestError(f"parameter {member.name!r} of {op!r} must be a list of names")
    elif isinstance(value, (int, float)) and not _within(value, bounds):
        raise BadRequestError(
            f"parameter {member.name!r} of {op!r} must be in {_describe_bounds(bounds)}")
    return value


def _within(value: float, bounds: Field) -> bool:
    return ((bounds.minimum is None or value >= bounds.minimum)
            and (bounds.exclusive_minimum is None or value > bounds.exclusive_minimum)
            and (bounds.maximum is None or value <= bounds.maximum))


def _describe_bounds(bounds: Field) -> str:
    # "1..1000000" for inclusive bounds, "(0, 86400]" for an exclusive minimum.
    if bounds.exclusive_minimum is not None:
        return f"({bounds.exclusive_minimum}, {bounds.maximum}]"
    return f"{bounds.minimum}..{bounds.maximum}"
