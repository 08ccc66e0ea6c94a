"""parse_request: the checks read from each op's parameter shape, and schema.json agrees."""

from __future__ import annotations

import functools

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timetravel_kernel.errors import BadRequestError, UnknownOpError
from timetravel_kernel.protocol.messages import OPS
from timetravel_kernel.protocol.requests import OP_SHAPES, parse_request
from timetravel_kernel.protocol.shapes import Member, members_of

from .conftest import SCHEMA


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


# A valid value of every parameter name any op has.
_VALID = {"wait": False, "limit": 3, "commit": "abcd", "a": "ab", "b": "cd", "values": True,
          "name": "df", "as": "old", "together": True, "names": ["gen"], "budget": 2.5}
_ANY = st.none() | st.booleans() | st.integers(-2, 2_000_000) | st.floats(-1, 100_000) | st.text(
    max_size=4) | st.lists(st.text(max_size=3) | st.integers(), max_size=2)


def test_every_required_parameter_is_required_and_every_parameter_typed():
    for op, shape in OP_SHAPES.items():
        members = members_of(shape.params)
        valid = {m.name: _VALID[m.name] for m in members if m.required}
        assert parse_request({"id": "1", "op": op, **valid}).params == valid
        for member in members:
            if member.required:
                missing = {k: v for k, v in valid.items() if k != member.name}
                with pytest.raises(BadRequestError, match="needs the parameter"):
                    parse_request({"id": "1", "op": op, **missing})
            with pytest.raises(BadRequestError, match=f"parameter '{member.name}' of"):
                parse_request({"id": "1", "op": op, **valid, member.name: {"a": 1}})


@functools.cache
def _request_validator() -> jsonschema.Draft202012Validator:
    schema = {key: value for key, value in SCHEMA.items() if key != "oneOf"}
    return jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/request"})


def _values(member: Member) -> st.SearchStrategy[object]:
    # A valid value, any JSON value, and the values on and beside each bound.
    field = member.field
    bounds = [b for b in (field.minimum, field.exclusive_minimum, field.maximum) if b is not None]
    edges = [edge for b in bounds for edge in (b - 1, b, b + 1, b + 0.5)]
    return st.just(_VALID[member.name]) | _ANY | (st.sampled_from(edges) if edges else _ANY)


@settings(max_examples=400, deadline=None)
@given(op=st.sampled_from(sorted(OPS)), data=st.data())
def test_a_request_passes_parse_request_exactly_when_it_matches_the_schema(op, data):
    request = {"id": data.draw(st.sampled_from(["r", "i" * 200, "i" * 201])), "op": op}
    members = members_of(OP_SHAPES[op].params)
    for member in members:
        value = data.draw(st.none() | _values(member))
        # Two known differences: a null parameter counts as absent, and JSON Schema calls 3.0
        # an integer where Python's check wants an int.
        if value is not None and not (isinstance(value, float) and value.is_integer()):
            request[member.name] = value
    others = sorted(_VALID.keys() - {member.name for member in members})  # other ops' params
    request.update(data.draw(st.dictionaries(st.sampled_from(others), _ANY, max_size=2)))
    try:
        parse_request(request)
        parsed = True
    except BadRequestError:
        parsed = False
    assert parsed == _request_validator().is_valid(request), request
