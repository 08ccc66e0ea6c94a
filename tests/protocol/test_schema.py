"""schema.json is generated from the shapes, is valid and matches what the handler sends."""

from __future__ import annotations

from importlib.resources import files

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from timetravel_kernel.protocol.messages import ERROR_CODES, EVENTS, OPS
from timetravel_kernel.protocol.schema import render_schema

from .conftest import SCHEMA, Session, check_against

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12)
REQUESTS = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=10), JSON),
     "op": st.one_of(st.sampled_from(sorted(OPS)), JSON)},
    optional={"limit": JSON, "commit": JSON, "a": JSON, "b": JSON, "name": JSON,
              "values": JSON, "together": JSON})


def test_committed_schema_is_the_one_generated_from_the_shapes():
    committed = files("timetravel_kernel.protocol").joinpath("schema.json").read_text()
    assert committed == render_schema(), (
        "schema.json differs from the shapes in protocol/messages.py and requests.py: run "
        "python -m timetravel_kernel.protocol.schema > timetravel_kernel/protocol/schema.json")


def test_schema_is_valid_and_lists_every_op_code_and_event():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    codes = SCHEMA["$defs"]["error_reply"]["properties"]["error"]["properties"]["code"]["enum"]
    assert set(codes) == ERROR_CODES
    ops = [r["properties"]["op"]["const"] for r in SCHEMA["$defs"]["request"]["anyOf"]]
    assert sorted(ops) == sorted(OPS)
    events = [e["properties"]["event"]["const"] for e in SCHEMA["$defs"]["event"]["anyOf"]]
    assert sorted(events) == sorted(EVENTS)


def test_valid_requests_match_the_request_schema():
    for request in [{"id": "1", "op": "status"}, {"id": "1", "op": "log", "limit": 3},
                    {"id": "1", "op": "checkout", "commit": "abcd"},
                    {"id": "1", "op": "diff", "a": "abcd", "b": "ef01"},
                    {"id": "1", "op": "diff", "a": "abcd", "b": "ef01", "values": True},
                    {"id": "1", "op": "history", "name": "df"},
                    {"id": "1", "op": "get", "name": "df", "commit": "abcd", "as": "old",
                     "together": True}]:
        check_against("request", request)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(JSON, REQUESTS))
def test_fuzzed_requests_get_one_schema_valid_reply_and_change_nothing(data):
    session = _shared_session()
    before = dict(session.ns)
    head = session.timeline.head
    response = session.handler.handle(data)
    check_against("reply", response.reply)
    moved = isinstance(data, dict) and data.get("op") in ("undo",) and response.reply["ok"]
    if moved:  # a well-formed undo is not malformed: put the state back
        session.handler.handle({"id": "r", "op": "redo"})
    assert dict(session.ns) == before
    assert session.timeline.head == head


_SESSIONS: list[Session] = []


def _shared_session() -> Session:
    # One session for all examples: hypothesis runs examples many times per test call.
    if not _SESSIONS:
        session = Session()
        session.run("x = 1")
        _SESSIONS.append(session)
    return _SESSIONS[0]


def test_status_with_a_remote_matches_the_schema(session):
    remote = {"url": "s3://bucket/team/nb.ipynb", "unpushed": 2, "error": None,
              "last_push": 1_700_000_000.5}
    session.handler._remote_status = lambda: remote
    reply = session.ask("status")
    assert reply["result"]["remote"] == remote
    session.handler._remote_status = lambda: {**remote, "error": "the server went away"}
    assert session.ask("status")["result"]["remote"]["error"] == "the server went away"
