"""ProtocolHandler over a real in-memory timeline: every op, every error, one reply each."""

from __future__ import annotations

from timetravel_kernel.protocol import ProtocolHandler, ServedTimeline

from .conftest import check_against


def test_status_describes_head_and_store(session):
    session.run("x = 1")
    reply = session.ask("status")
    assert reply["ok"]
    result = reply["result"]
    check_against("result_status", result)
    assert result["protocol"] == 1
    assert result["commits"] == 2  # root + one cell
    assert result["head"]["code"] == "x = 1"
    assert result["enabled"] is True


def test_log_is_newest_first_and_limited(session):
    session.run("x = 1")
    session.run("y = 2")
    commits = session.ask("log")["result"]["commits"]
    assert [c["code"] for c in commits[:2]] == ["y = 2", "x = 1"]
    assert len(session.ask("log", limit=1)["result"]["commits"]) == 1


def test_undo_redo_move_the_namespace(session):
    session.run("x = 1")
    session.run("x = 2; y = 3")
    reply = session.ask("undo")
    assert reply["ok"], reply
    check_against("result_checkout", reply["result"])
    assert session.user_state() == {"x": 1}
    assert set(reply["result"]["deleted"]) == {"y"}
    assert session.ask("redo")["ok"]
    assert session.user_state() == {"x": 2, "y": 3}


def test_undo_at_root_and_redo_without_undo_are_errors(session):
    assert session.ask("undo")["error"]["code"] == "nothing-to-undo"
    assert session.ask("redo")["error"]["code"] == "nothing-to-redo"


def test_restore_without_previous_session_is_an_error(session):
    assert session.ask("restore")["error"]["code"] == "nothing-to-restore"


def test_a_checkout_that_does_not_fit_in_memory_is_an_error_that_changes_nothing(
        session, monkeypatch):
    from timetravel_kernel.timeline import memory

    session.run("big = bytearray(40_000_000)")
    first = session.ask("log")["result"]["commits"][0]["id"]
    session.run("big = None")
    monkeypatch.setattr(memory, "memory_available", lambda: 10_000_000)  # a /proc mock
    reply = session.ask("checkout", commit=first)
    check_against("reply", reply)
    assert reply["error"]["code"] == "not-enough-memory"
    assert "%tt get big@" not in reply["error"]["message"]  # it does not fit alone either
    assert "%tt get NAME@" in reply["error"]["message"]
    assert session.ns["big"] is None


def test_checkout_by_prefix_and_unknown_commit(session):
    session.run("x = 1")
    first = session.ask("log")["result"]["commits"][0]["id"]
    session.run("x = 2")
    reply = session.ask("checkout", commit=first[:8])
    assert reply["ok"], reply
    assert session.ns["x"] == 1
    assert session.ask("checkout", commit="ffffffff")["error"]["code"] == "unknown-commit"


def test_checkout_events_are_sent_for_moves_only(session):
    session.run("x = 1")
    response = session.handler.handle({"id": "1", "op": "undo"})
    assert response.moved_head
    assert response.events[0]["event"] == "checkout"
    assert response.events[0]["op"] == "undo"
    assert not session.handler.handle({"id": "2", "op": "log"}).events


def test_checkout_is_refused_while_a_cell_runs(session):
    session.run("x = 1")
    session.busy = True
    reply = session.ask("undo")
    assert reply["error"]["code"] == "busy"
    assert session.ns["x"] == 1
    # Queries stay available while busy; a magic in the running cell may move.
    assert session.ask("log")["ok"]
    assert session.handler.handle({"id": "m", "op": "undo"}, from_cell=True).reply["ok"]


def test_diff_and_vars(session):
    session.run("x = 1; y = [1]")
    a = session.ask("log")["result"]["commits"][0]["id"]
    session.run("del x; y.append(2); z = 'new'")
    b = session.ask("log")["result"]["commits"][0]["id"]
    diff = session.ask("diff", a=a, b=b)["result"]
    check_against("result_diff", diff)
    assert diff == {"added": ["z"], "deleted": ["x"], "changed": ["y"]}
    variables = session.ask("vars")["result"]["vars"]
    check_against("result_vars", {"vars": variables})
    assert {v["name"] for v in variables} == {"y", "z"}
    old = session.ask("vars", commit=a)["result"]["vars"]
    assert {v["name"] for v in old} == {"x", "y"}


def test_malformed_requests_get_error_replies_with_their_id(session):
    for data, code in [({"id": "7", "op": "nope"}, "unknown-op"),
                       ({"id": "8", "op": "checkout"}, "bad-request"),
                       ([1, 2], "bad-request"), ({"op": "status"}, "bad-request")]:
        reply = session.handler.handle(data).reply
        check_against("reply", reply)
        assert reply["error"]["code"] == code
        assert reply["id"] == (data.get("id") if isinstance(data, dict) else None)


def test_a_failing_timeline_becomes_an_internal_error_reply(session):
    def explode(limit=None, settle=True):
        raise RuntimeError("disk on fire")

    session.timeline.log = explode  # type: ignore[method-assign]
    reply = session.handler.handle({"id": "1", "op": "log"}).reply
    assert reply["error"]["code"] == "internal"
    assert "disk on fire" in reply["error"]["message"]


def test_disabled_handler_answers_status_and_refuses_the_rest():
    handler = ProtocolHandler(ServedTimeline(None, notice="time travel is off"), {})
    status = handler.handle({"id": "1", "op": "status"}).reply
    check_against("reply", status)
    assert status["result"]["enabled"] is False
    assert status["result"]["notice"] == "time travel is off"
    assert handler.handle({"id": "2", "op": "log"}).reply["error"]["code"] == "disabled"


def test_read_only_handler_refuses_moves(session):
    session.run("x = 1")
    handler = ProtocolHandler(ServedTimeline(session.timeline), session.ns, read_only=True)
    assert handler.handle({"id": "1", "op": "undo"}).reply["error"]["code"] == "read-only"
    assert handler.handle({"id": "2", "op": "log"}).reply["ok"]


def test_rebuild_preview_and_rebuild_after_a_restore_elsewhere(session):
    from timetravel_kernel.timeline import Timeline

    session.run("data = [1, 2]")
    session.run("it = iter(x * 2 for x in data)")
    session.run("next(it)")
    # A second timeline on the same store is a new process: the live objects are gone.
    again = Timeline(session.timeline._store)
    ns: dict = {"__name__": "__main__"}
    again.start(ns)
    handler = ProtocolHandler(ServedTimeline(again), ns)

    def ask(op: str, **params: object) -> dict:
        response = handler.handle({"id": op, "op": op, **params})
        check_against("reply", response.reply)
        for event in response.events:
            check_against("event", event)
        return response.reply  # type: ignore[return-value]

    assert ask("rebuild-preview")["error"]["code"] == "timeline-error"
    assert ask("restore")["result"]["unrestored"].keys() == {"it"}
    preview = ask("rebuild-preview")["result"]
    check_against("result_rebuild_preview", preview)
    assert [s["execution_count"] for s in preview["steps"]] == [2, 3]
    result = ask("rebuild", names=["it"])["result"]
    check_against("result_rebuild", result)
    assert result["rebuilt"] == ["it"] and next(ns["it"]) == 4


def test_history_get_and_value_diffs(session):
    session.run("x = 1\nitems = [1]")
    first = session.timeline.head.id.hex()
    session.run("x = 2\nitems.append(2)")
    history = session.ask("history", name="x")
    assert [v["commit"]["execution_count"] for v in history["result"]["versions"]] == [2, 1]
    assert session.ask("history", name="nope")["error"]["code"] == "unknown-name"
    diff = session.ask("diff", a=first, b=session.timeline.head.id.hex(), values=True)
    assert diff["result"]["values"] == {"items": "list of 1 → 2 items: added 1 at the end",
                                        "x": "1 → 2"}
    assert "values" not in session.ask("diff", a=first, b=first)["result"]
    session.busy = True
    assert session.ask("get", name="x", commit=first)["error"]["code"] == "busy"
    session.busy = False
    response = session.handler.handle({"id": "g", "op": "get", "name": "x", "commit": first[:6],
                                       "as": "x1"})
    assert response.reply["ok"] and response.events[0]["op"] == "get"
    assert session.user_state()["x1"] == 1 and session.user_state()["x"] == 2
    bad = session.ask("get", name="x", commit=first, together="yes")
    assert bad["error"]["code"] == "bad-request"
