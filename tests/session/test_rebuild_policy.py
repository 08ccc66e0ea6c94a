"""After a restart, every route back to a state reconnects what describes itself, under every
rebuild policy; the policy governs only running cells again (in process: a timeline, the
protocol handler and the kernel's ``after_loss``, without Jupyter)."""

from __future__ import annotations

import io
import sqlite3
import threading
from pathlib import Path

import pytest

from timetravel_kernel.protocol import ProtocolHandler, ServedTimeline
from timetravel_kernel.remote import MemoryTransport, Remote, Signer
from timetravel_kernel.session.rebuild_policy import REBUILD_POLICIES, after_loss
from timetravel_kernel.timeline import CellInfo, Timeline

from ..factories import open_timeline
from ..protocol.conftest import check_against
from ..workloads import close_resources, fresh_namespace, run_cell

# Every kind a restore reconnects, each changed by the last cell (so the last two states hold
# different versions of it), and a generator, which only a rebuild (running its cells) brings
# back: its cells are apart from those writing files, which a rebuild never runs twice.
FIRST = """
import sqlite3, threading
log = open(LOG, 'w'); log.write('one\\n')
appended = open(APPENDED, 'a'); appended.write('a')
source = open(SOURCE)
db = sqlite3.connect(FIRST_DB)
lock = threading.Lock()
event = threading.Event()
"""
GEN = ["gen = (i for i in range(5))", "next(gen)"]
SECOND = """
log.write('two\\n'); log.flush()
appended.write('b'); appended.flush()
source.readline()
db = sqlite3.connect(SECOND_DB)
lock.acquire()
event.set()
"""
RECONNECTED = ("appended", "db", "event", "lock", "log", "source")
ROUTES = ("restore", "undo", "redo", "jump", "jump-without-restore", "clone")


def record(tmp_path: Path) -> Path:
    """Run both cells with checkpoints, then die without closing the session."""
    (tmp_path / "source.txt").write_text("first line\nsecond line\n")
    for name in ("first", "second"):
        with sqlite3.connect(tmp_path / f"{name}.sqlite") as made:
            made.execute("create table t(x)")
            made.execute("insert into t values (?)", (name,))
        made.close()
    ns = fresh_namespace()
    ns.update(LOG=str(tmp_path / "log.txt"), APPENDED=str(tmp_path / "appended.txt"),
              SOURCE=str(tmp_path / "source.txt"), FIRST_DB=str(tmp_path / "first.sqlite"),
              SECOND_DB=str(tmp_path / "second.sqlite"))
    timeline = open_timeline(tmp_path / "store")
    timeline.start(ns)
    for count, code in enumerate([FIRST, *GEN, SECOND], start=1):
        run_cell(ns, code)
        timeline.checkpoint(ns, CellInfo(code=code, execution_count=count), duration=0.01)
    close_resources(ns)
    timeline._store.close()  # the process dies: no clean close
    return tmp_path / "store"


def clone(store: Path, tmp_path: Path) -> Path:
    """Push the history to a remote and pull it into a new store, as another machine does."""
    transport, signer = MemoryTransport(), Signer(b"k" * 32)
    source = Timeline.open(store, read_only=True)
    Remote(transport, "nb.ipynb", signer=signer).push(source.object_store)
    source.close()
    landing = Timeline.open(tmp_path / "clone")
    Remote(transport, "nb.ipynb", signer=signer).pull(landing.object_store, move_head=True)
    landing.close()
    return tmp_path / "clone"


def take(handler: ProtocolHandler, op: str, **params: object) -> dict:
    response = handler.handle({"id": op, "op": op, **params})
    assert response.reply["ok"], response.reply
    check_against("reply", response.reply)
    for event in response.events:
        check_against("event", event)
    return response.reply["result"]  # type: ignore[typeddict-item,return-value]


def go(route: str, handler: ProtocolHandler, timeline: Timeline) -> tuple[int, list[str]]:
    """Take a route back after the restart; return 2 if it reached the last state (after
    SECOND), 1 for the one before, and what the last move reconnected."""
    if route == "jump-without-restore":
        before = next(c for c in timeline.log() if c.execution_count == 3)
        return 1, take(handler, "checkout", commit=before.id.hex())["reconnected"]
    reconnected = take(handler, "restore")["reconnected"]
    if route in ("restore", "clone"):
        return 2, reconnected
    if route == "jump":
        before = next(c for c in timeline.log() if c.execution_count == 3)
        return 1, take(handler, "checkout", commit=before.id.hex())["reconnected"]
    moved = take(handler, "undo")["reconnected"]
    if route == "undo":
        return 1, moved
    return 2, take(handler, "redo")["reconnected"]


@pytest.mark.parametrize("policy", REBUILD_POLICIES)
@pytest.mark.parametrize("route", ROUTES)
def test_every_route_back_reconnects_every_kind_under_every_policy(
        tmp_path: Path, route: str, policy: str) -> None:
    store = record(tmp_path)
    if route == "clone":
        store = clone(store, tmp_path)
    timeline = open_timeline(store)
    ns = fresh_namespace()
    timeline.start(ns)
    handler = ProtocolHandler(ServedTimeline(timeline), ns)
    try:
        cell, reconnected = go(route, handler, timeline)
        # Each kind differs between the two states; a redo finds the values the restore
        # reconnected in the live cache, as it finds any live object.
        assert set(reconnected) == (set() if route == "redo" else set(RECONNECTED))
        events, notice = after_loss(handler, policy)
        for name in RECONNECTED:
            assert name in ns, (route, policy, name)
        assert isinstance(ns["log"], io.TextIOWrapper) and isinstance(ns["lock"], type(
            threading.Lock()))
        assert ns["log"].tell() == (8 if cell == 2 else 4)
        assert ns["appended"].mode == "a"
        assert ns["source"].readline() == ("second line\n" if cell == 2 else "first line\n")
        assert ns["db"].execute("select x from t").fetchall() == [
            ("second" if cell == 2 else "first",)]
        assert ns["lock"].locked() is (cell == 2) and ns["event"].is_set() is (cell == 2)
        # The policy decides about running cells again, and only that.
        if policy == "never":
            assert (events, notice) == ([], "") and "gen" not in ns
        elif policy == "ask":
            assert [e["event"] for e in events] == ["rebuild-available"]
            plan = events[0]["plan"]
            check_against("event", events[0])
            assert plan["names"] == ["gen"] and all(s["kind"] == "run" for s in plan["steps"])
            assert "gen" not in ns and "reconnect" not in notice
        else:
            assert [e["event"] for e in events] == ["rebuilt"] and "rebuilt gen" in notice
            assert next(ns["gen"]) == 1
        ns["log"].write("three\n")
        ns["log"].flush()
        # Nothing was truncated: going back to the first state continues where it was.
        assert Path(ns["LOG"]).read_text() == ("one\ntwo\nthree\n" if cell == 2 else
                                               "one\nthree\n")
    finally:
        close_resources(ns)
        # The reconnections a later move replaced are still held, as any live object is
        # (an in-process redo hands them back); the test closes them.
        for values in timeline._live.cache._unsaved.values():
            close_resources(dict(enumerate(values)))  # type: ignore[arg-type]
        timeline.close()
