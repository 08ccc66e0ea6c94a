"""parse_request and the JSON forms of timeline records."""

from __future__ import annotations

import json

import pytest

from timetravel_kernel.errors import BadRequestError, UnknownOpError
from timetravel_kernel.ids import CommitId, TreeId
from timetravel_kernel.protocol.messages import (
    OPS,
    format_checkout,
    format_commit,
    format_var,
    make_error_reply,
    parse_request,
)
from timetravel_kernel.store.objects import Commit
from timetravel_kernel.timeline.results import CheckoutResult, VarInfo


def make_commit(parent: bytes | None = None, **fields: object) -> Commit:
    return Commit(parent=CommitId(parent) if parent else None, tree=TreeId(b"\1" * 16),
                  id=CommitId(b"\2" * 16), **fields)  # type: ignore[arg-type]


def test_parse_request_accepts_every_op_with_its_params():
    params = {"checkout": {"commit": "abcd"}, "diff": {"a": "abcd", "b": "ef01"},
              "history": {"name": "df"}, "get": {"name": "df", "commit": "abcd"}}
    for op in OPS:
        request = parse_request({"id": "1", "op": op, **params.get(op, {})})
        assert request.op == op
        assert dict(request.params) == params.get(op, {})


def test_parse_request_ignores_unknown_fields_for_forward_compatibility():
    assert parse_request({"id": "1", "op": "status", "future": [1, 2]}).op == "status"


def test_parse_request_keeps_optional_params():
    assert parse_request({"id": "1", "op": "log", "limit": 5}).params == {"limit": 5}
    assert parse_request({"id": "1", "op": "vars", "commit": "abcd"}).params == {"commit": "abcd"}
    assert parse_request({"id": "1", "op": "get", "name": "x", "commit": "abcd", "as": "y",
                          "together": False}).params == {"name": "x", "commit": "abcd",
                                                         "as": "y", "together": False}
    assert parse_request({"id": "1", "op": "diff", "a": "ab", "b": "cd", "values": True}
                         ).params["values"] is True


@pytest.mark.parametrize("data", [
    None, [], "status", 3, {"op": "status"}, {"id": 1, "op": "status"}, {"id": "1"},
    {"id": "1", "op": 5}, {"id": "x" * 201, "op": "status"},
    {"id": "1", "op": "checkout"}, {"id": "1", "op": "checkout", "commit": 12},
    {"id": "1", "op": "diff", "a": "abcd"}, {"id": "1", "op": "log", "limit": True},
    {"id": "1", "op": "log", "limit": 0}, {"id": "1", "op": "log", "limit": 1.5},
    {"id": "1", "op": "vars", "commit": ["abcd"]},
])
def test_parse_request_rejects_malformed_requests(data):
    with pytest.raises(BadRequestError):
        parse_request(data)


def test_parse_request_names_unknown_ops():
    with pytest.raises(UnknownOpError, match="unknown op 'explode'"):
        parse_request({"id": "1", "op": "explode"})


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


def test_parse_request_reads_rebuild_names_and_budget():
    request = parse_request({"id": "1", "op": "rebuild", "names": ["gen"], "budget": 3})
    assert request.params == {"names": ["gen"], "budget": 3.0}
    assert parse_request({"id": "1", "op": "rebuild-preview"}).params == {}


@pytest.mark.parametrize("data", [
    {"id": "1", "op": "rebuild", "names": "gen"}, {"id": "1", "op": "rebuild", "names": [1]},
    {"id": "1", "op": "rebuild", "budget": 0}, {"id": "1", "op": "rebuild", "budget": True},
    {"id": "1", "op": "rebuild", "budget": 1e9}, {"id": "1", "op": "rebuild-preview",
                                                   "names": [None]},
])
def test_parse_request_rejects_bad_rebuild_params(data):
    with pytest.raises(BadRequestError):
        parse_request(data)
