"""The message shapes hold together, and the JSON forms of timeline records follow them."""

from __future__ import annotations

import json
from typing import get_args

from timetravel_kernel.ids import CommitId, TreeId
from timetravel_kernel.protocol.messages import (
    EVENTS,
    OPS,
    CheckoutEvent,
    CheckoutReply,
    KernelEvent,
    OpResult,
    RebuildReply,
    RebuiltEvent,
    format_checkout,
    format_commit,
    format_var,
    make_error_reply,
)
from timetravel_kernel.protocol.requests import OP_SHAPES
from timetravel_kernel.protocol.shapes import members_of
from timetravel_kernel.store.objects import Commit
from timetravel_kernel.timeline.results import CheckoutResult, VarInfo


def keys(shape: type) -> list[str]:
    return [member.name for member in members_of(shape)]


def test_every_op_has_a_shape_whose_result_is_an_op_result():
    assert set(OP_SHAPES) == OPS
    assert {shape.result for shape in OP_SHAPES.values()} == set(get_args(OpResult))


def test_every_event_name_has_exactly_one_event_shape():
    names = []
    for event_shape in get_args(KernelEvent):
        (hint,) = [member.hint for member in members_of(event_shape) if member.name == "event"]
        names += get_args(hint)
    assert sorted(names) == sorted(EVENTS)


def test_events_that_carry_a_result_are_built_from_its_shape():
    assert keys(CheckoutEvent) == [*keys(CheckoutReply), "event", "op"]
    assert keys(RebuiltEvent) == [*keys(RebuildReply), "event"]


def make_commit(parent: bytes | None = None, **fields: object) -> Commit:
    return Commit(parent=CommitId(parent) if parent else None, tree=TreeId(b"\1" * 16),
                  id=CommitId(b"\2" * 16), **fields)  # type: ignore[arg-type]


def test_format_commit_uses_hex_ids_and_plain_json():
    commit = make_commit(b"\3" * 16, code="x = 1", execution_count=4, changed=("x",),
                         time=float("nan"))
    data = format_commit(commit)
    assert data["id"] == "02" * 16
    assert data["parent"] == "03" * 16
    assert data["changed"] == ["x"]
    assert data["time"] == 0.0  # JSON has no NaN
    json.dumps(data, allow_nan=False)


def test_format_checkout_and_var_are_json():
    result = CheckoutResult(head=make_commit(), loaded=("a",), deleted=(), kept=("b",),
                            seconds=0.5, unrestored={"g": "generators cannot be saved"})
    data = format_checkout(result)
    assert data["unrestored"] == {"g": "generators cannot be saved"}
    json.dumps(data, allow_nan=False)
    var = format_var(VarInfo(name="a", type="int", bytes=28, covariable="ab", saved=True))
    assert "reason" not in var


def test_error_reply_shape():
    assert make_error_reply(None, "bad-request", "no") == {
        "id": None, "ok": False, "error": {"code": "bad-request", "message": "no"}}
