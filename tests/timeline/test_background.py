"""Checkpoints in a forked copy-on-write snapshot: same commits as inline ones, off the path."""

from __future__ import annotations

import errno
import os
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from timetravel_kernel.errors import CheckpointProcessError
from timetravel_kernel.timeline import (
    BackgroundOptions,
    CellInfo,
    CheckpointResult,
    Timeline,
)
from timetravel_kernel.timeline.background import CheckpointWork, can_fork, should_fork

from ..workloads import (
    close_resources,
    fresh_namespace,
    load_cells,
    load_small_graph_cells,
    run_cell,
    state_digest,
)

pytestmark = pytest.mark.skipif(not can_fork(), reason="fork snapshots are Linux-only")
ALWAYS = BackgroundOptions(mode="background")


class Outcomes:
    """Collects what ``on_done`` reports, and from which thread."""

    def __init__(self) -> None:
        self.results: list[CheckpointResult] = []
        self.errors: list[BaseException] = []
        self.threads: list[str] = []

    def __call__(self, result: CheckpointResult | None, error: BaseException | None) -> None:
        self.threads.append(threading.current_thread().name)
        if result is not None:
            self.results.append(result)
        if error is not None:
            self.errors.append(error)


def _run(timeline: Timeline, ns: dict, code: str, outcomes: Outcomes, **kw: object) -> str:
    run_cell(ns, code)
    return timeline.start_checkpoint(ns, CellInfo(code=code), on_done=outcomes, **kw)


@pytest.mark.parametrize("deferred", [False, True], ids=["forked-at-once", "deferred"])
@pytest.mark.parametrize("workload", ["awkward_objects", "object_graphs"])
def test_background_commits_equal_inline_ones_and_check_out_exactly(
    workload: str, deferred: bool, tmp_path: Path
) -> None:
    inline = Timeline.open(tmp_path / "inline")
    forked = Timeline.open(tmp_path / "forked")
    ns_inline, ns_forked = fresh_namespace(), fresh_namespace()
    inline.start(ns_inline)
    commits = [forked.start(ns_forked).id]
    digests = [state_digest(ns_forked)]
    outcomes = Outcomes()
    cells = load_small_graph_cells() if workload == "object_graphs" else load_cells(workload)
    for code in cells:
        run_cell(ns_inline, code)
        expected = inline.checkpoint(ns_inline, CellInfo(code=code)).commit
        if deferred:  # held until catch_up forks (the kernel: once its idle status is out)
            head = forked.head
            assert _run(forked, ns_forked, code, outcomes, background=ALWAYS,
                        defer_fork=True) == "deferred"
            assert forked.head == head and forked.folded_cells == 1
            assert forked.background_pid is None
            assert forked.catch_up(ns_forked, on_done=outcomes, background=ALWAYS) == "forked"
        else:
            assert _run(forked, ns_forked, code, outcomes, background=ALWAYS) == "forked"
        forked.settle()
        assert not outcomes.errors
        got = outcomes.results[-1].commit
        # (trees differ only in the tokens naming unsaveable live objects, which differ here)
        assert got.changed == expected.changed
        assert (got.code, got.cells) == (expected.code, expected.cells)
        commits.append(got.id)
        digests.append(state_digest(ns_forked))
    assert set(outcomes.threads) == {"timetravel-ingest"}
    for index in [*reversed(range(len(commits) - 1)), *range(1, len(commits))]:
        forked.checkout(ns_forked, commits[index])
        assert state_digest(ns_forked) == digests[index], f"{workload}: commit {index}"
    close_resources(ns_inline)
    close_resources(ns_forked)
    inline.close()
    forked.close()


def test_small_checkpoints_stay_inline_in_auto_mode(tmp_path: Path) -> None:
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    ns["np"] = np
    timeline.start(ns)
    outcomes = Outcomes()
    assert _run(timeline, ns, "x = 1", outcomes, background=BackgroundOptions()) == "inline"
    assert outcomes.threads == [threading.current_thread().name]
    assert _run(timeline, ns, "a = np.zeros(400_000)", outcomes,
                background=BackgroundOptions()) == "forked"
    timeline.settle()
    assert outcomes.threads[-1] == "timetravel-ingest"
    timeline.close()


def test_a_deferred_snapshot_holds_its_cell_until_caught_up_or_the_namespace_moves(
    tmp_path: Path,
) -> None:
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    ns["np"] = np
    timeline.start(ns)
    outcomes = Outcomes()
    auto = BackgroundOptions()
    # inline work is never deferred: its notices belong under its cell
    assert _run(timeline, ns, "x = 1", outcomes, background=auto, defer_fork=True) == "inline"
    assert _run(timeline, ns, "a = np.zeros(400_000)", outcomes, background=auto,
                defer_fork=True) == "deferred"
    assert timeline.log()[0].code == "x = 1" and timeline.folded_cells == 1
    timeline.undo(ns)  # records the held cell first, then goes back before it
    assert [c.code for c in timeline.log()[:2]] == ["a = np.zeros(400_000)", "x = 1"]
    assert "a" not in ns and ns["x"] == 1 and timeline.folded_cells == 0
    timeline.redo(ns)
    assert ns["a"].shape == (400_000,)
    assert timeline.catch_up(ns, on_done=outcomes) is None  # nothing left
    timeline.close()


def test_a_fork_that_fails_checkpoints_inline_and_leaves_no_thread_or_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    outcomes = Outcomes()
    fds = len(os.listdir("/proc/self/fd"))

    def no_fork() -> int:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert _run(timeline, ns, "a = list(range(1000))", outcomes, background=ALWAYS) == "inline"
    assert outcomes.threads == [threading.current_thread().name] and not outcomes.errors
    monkeypatch.undo()
    for thread in threading.enumerate():  # the ingest thread started for it has left
        if thread.name == "timetravel-ingest":
            thread.join(5)
    assert not any(t.name == "timetravel-ingest" for t in threading.enumerate())
    assert len(os.listdir("/proc/self/fd")) == fds
    assert _run(timeline, ns, "a.append(1)", outcomes, background=ALWAYS) == "forked"
    timeline.settle()
    assert [c.code for c in timeline.log()[:2]] == ["a.append(1)", "a = list(range(1000))"]
    assert not outcomes.errors
    timeline.close()


class _Point:
    def __init__(self, x: int) -> None:
        self.x = x
        self.tags = ["a", "b"]


class _Slotted:
    __slots__ = ("x",)


def _cycle() -> list[object]:
    shared = [1, 2]
    cycle: list[object] = [shared, {"s": shared}]
    cycle.append(cycle)
    return cycle


def _work(names: set[str]) -> CheckpointWork:
    return CheckpointWork(candidates=names, deleted=set(), touched=names, base=None,
                          cell=CellInfo(), status="ok", duration=0.0, at=0.0, previous={},
                          started=0.0)


@pytest.mark.parametrize(("value", "forked"), [
    (1, False), ("short text", False), ([1, 2.5, {"a": (3, None)}], False),
    (np.zeros(10), False), (np.float64(2.0), False), (_Point(3), False), (np, False),
    ((i for i in range(3)), False), (threading.Lock(), False), (threading.Event(), False),
    (_cycle(), False), (socket.socket(), False), (sqlite3.connect(":memory:"), False),
    (np.zeros(400_000), True), ("x" * 100_000, True), (list(range(10_000)), True),
    (_Slotted(), True), (np.array([None, 1]), True), ({i: [i] for i in range(2000)}, True),
    # small tables save inline faster than a fork; big ones, and what has no buffers, fork
    (pd.DataFrame({"item": list("abc"), "price": [1.0, 2.0, 3.0]}), False),
    (pd.Series(np.arange(100.0)), False), (pd.Index(["a", "b"]), False),
    (pd.DataFrame({"a": np.arange(5000.0)}), True), (pd.DataFrame(np.zeros((900, 10))), True),
    (pd.DataFrame({"k": [1, 1, 2]}).groupby("k"), True),
])
def test_auto_mode_forks_unless_the_values_are_few_plain_and_small(value, forked) -> None:
    assert should_fork({"v": value}, _work({"v"}), BackgroundOptions()) is forked
    assert should_fork({"v": value}, _work({"v"}), ALWAYS) is True
    assert should_fork({"v": value}, _work({"v"}), BackgroundOptions(mode="sync")) is False


def test_auto_mode_forks_for_many_names() -> None:
    many = {f"n{i}": i for i in range(100)}
    assert should_fork(many, _work(set(many)), BackgroundOptions()) is True
    few = {f"n{i}": i for i in range(10)}
    assert should_fork(few, _work(set(few)), BackgroundOptions()) is False


def test_sync_mode_never_forks(tmp_path: Path) -> None:
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    ns["np"] = np
    timeline.start(ns)
    outcomes = Outcomes()
    assert _run(timeline, ns, "a = np.zeros(400_000)", outcomes,
                background=BackgroundOptions(mode="sync")) == "inline"
    assert outcomes.results and timeline.background_pid is None
    timeline.close()


def test_cells_run_while_a_snapshot_saves_are_folded_into_the_next_checkpoint(
    tmp_path: Path,
) -> None:
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    ns["np"] = np
    timeline.start(ns)
    outcomes = Outcomes()
    assert _run(timeline, ns, "a = np.arange(3_000_000)", outcomes, background=ALWAYS) == "forked"
    # the user's next cells change it while the snapshot is being saved: nobody waits
    assert _run(timeline, ns, "a[0] = -1", outcomes, background=ALWAYS) == "folded"
    assert _run(timeline, ns, "b = a[:10].copy()", outcomes, background=ALWAYS) == "folded"
    assert timeline.folded_cells == 2
    first = timeline.log()[0]  # waits for the snapshot only
    assert [r.commit.id for r in outcomes.results] == [first.id]
    assert timeline.catch_up(ns, on_done=outcomes, background=ALWAYS) == "forked"
    timeline.settle()
    folded = outcomes.results[-1].commit
    assert folded.parent == first.id and folded.cells == 2
    assert folded.code == "a[0] = -1\n\nb = a[:10].copy()"
    assert set(folded.changed) == {"a", "b"}
    assert timeline.catch_up(ns, on_done=outcomes) is None  # nothing left
    timeline.undo(ns)  # back to the state the first snapshot saw
    assert ns["a"][0] == 0 and "b" not in ns
    timeline.redo(ns)
    assert ns["a"][0] == -1 and ns["b"][0] == -1
    timeline.close()


@pytest.mark.parametrize("operation", ["undo", "checkout", "close"])
def test_folded_cells_are_recorded_before_the_namespace_moves(
    operation: str, tmp_path: Path
) -> None:
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    ns["np"] = np
    root = timeline.start(ns)
    outcomes = Outcomes()
    _run(timeline, ns, "a = np.arange(3_000_000)", outcomes, background=ALWAYS)
    assert _run(timeline, ns, "a[1] = 7", outcomes, background=ALWAYS) == "folded"
    if operation == "close":
        timeline.catch_up(ns, on_done=outcomes, background=BackgroundOptions(mode="sync"))
        timeline.close()
        timeline = Timeline.open(tmp_path / "store")
        ns = fresh_namespace()
        timeline.start(ns)
        timeline.restore(ns)
        assert ns["a"][1] == 7
    else:
        if operation == "undo":
            timeline.undo(ns)  # the folded cell is the state undone
            assert ns["a"][1] == 1
        else:
            timeline.checkout(ns, root.id)
            assert "a" not in ns
        timeline.redo(ns) if operation == "undo" else timeline.checkout(
            ns, timeline.log()[0].id)
        assert ns["a"][1] == 7
    timeline.close()


def test_a_killed_snapshot_is_reported_once_and_the_next_checkpoint_catches_up(
    tmp_path: Path,
) -> None:
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    outcomes = Outcomes()
    head = timeline.head
    # a value that takes a while to save, so the kill lands mid-work
    assert _run(timeline, ns, "d = {i: str(i) for i in range(300_000)}", outcomes,
                background=ALWAYS) == "forked"
    pid = timeline.background_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    timeline.settle()
    assert len(outcomes.errors) == 1 and not outcomes.results
    assert isinstance(outcomes.errors[0], CheckpointProcessError)
    assert timeline.head == head  # nothing committed
    assert _run(timeline, ns, "x = 1", outcomes, background=ALWAYS) == "forked"
    timeline.settle()
    assert len(outcomes.errors) == 1
    assert set(outcomes.results[-1].commit.changed) == {"d", "x"}
    timeline.close()
    reopened = Timeline.open(tmp_path / "store")
    fresh = fresh_namespace()
    reopened.start(fresh)
    reopened.restore(fresh)
    assert fresh["d"] == ns["d"] and fresh["x"] == 1
    reopened.close()


class SlowOnce:
    """Takes ``delay`` seconds to pickle while ``flag`` exists (a hung snapshot)."""

    def __init__(self, flag: str, delay: float) -> None:
        self.flag = flag
        self.delay = delay

    def __reduce__(self) -> tuple[object, ...]:
        if os.path.exists(self.flag):
            time.sleep(self.delay)
        return (SlowOnce, (self.flag, self.delay))


def test_a_hung_snapshot_is_stopped_reported_and_caught_up(tmp_path: Path) -> None:
    flag = tmp_path / "hang"
    flag.touch()
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    outcomes = Outcomes()
    ns["slow"] = SlowOnce(str(flag), 30)
    started = time.monotonic()
    assert timeline.start_checkpoint(ns, CellInfo(code="slow = ..."), on_done=outcomes,
                                     background=BackgroundOptions(mode="background",
                                                                  hang_seconds=0.5)) == "forked"
    timeline.settle()
    assert time.monotonic() - started < 10
    assert len(outcomes.errors) == 1 and "sent nothing" in str(outcomes.errors[0])
    flag.unlink()
    assert _run(timeline, ns, "y = 2", outcomes, background=ALWAYS) == "forked"
    timeline.settle()
    assert set(outcomes.results[-1].commit.changed) == {"slow", "y"}
    timeline.close()


class Blocked:
    """Blocks forever when pickled in a forked child while ``flag`` exists (a lock or thread
    pool a library cannot use after fork, as OpenMP's after xgboost trained)."""

    def __init__(self, flag: str) -> None:
        self.flag = flag
        self.parent = os.getpid()

    def __reduce__(self) -> tuple[object, ...]:
        if os.getpid() != self.parent and os.path.exists(self.flag):
            threading.Event().wait()  # no CPU, no output: blocked, not slow
        return (Blocked, (self.flag,))


def test_a_blocked_snapshot_is_stopped_soon_and_its_names_are_saved_inline_after(
    tmp_path: Path,
) -> None:
    flag = tmp_path / "block"
    flag.touch()
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    outcomes = Outcomes()
    ns["model"] = Blocked(str(flag))
    options = BackgroundOptions(mode="background", stall_seconds=1.0)
    started = time.monotonic()
    assert timeline.start_checkpoint(ns, CellInfo(code="model = ..."), on_done=outcomes,
                                     background=options) == "forked"
    timeline.settle()
    assert time.monotonic() - started < 10  # not the 300 s of a silent, busy child
    assert len(outcomes.errors) == 1 and "blocked" in str(outcomes.errors[0])
    # The next checkpoint saves what it missed, in the kernel, where pickling it works; and
    # so does every later one that includes the name.
    assert _run(timeline, ns, "y = 2", outcomes, background=options) == "inline"
    assert set(outcomes.results[-1].commit.changed) == {"model", "y"}
    assert _run(timeline, ns, "model.note = 1", outcomes, background=options) == "inline"
    assert _run(timeline, ns, "z = 3", outcomes, background=options) == "forked"
    timeline.settle()
    assert len(outcomes.errors) == 1
    timeline.close()
