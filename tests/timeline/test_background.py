"""Checkpoints in forked copy-on-write snapshots: same commits as inline ones, one per cell."""

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
from timetravel_kernel.timeline.background import can_fork, should_fork

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
    return timeline.recorder.record(ns, CellInfo(code=code), on_done=outcomes, **kw)


def _started(path: Path, **values: object) -> tuple[Timeline, dict, Outcomes]:
    """Open a timeline on ``path`` and start it on a fresh namespace holding ``values``."""
    timeline = Timeline.open(path)
    ns = fresh_namespace()
    ns.update(values)
    timeline.start(ns)
    return timeline, ns, Outcomes()


def _walk_back(timeline: Timeline, ns: dict, digests: list[str], label: str) -> None:
    """Undo to the root, checking each state against the digest taken after its cell."""
    for index in reversed(range(len(digests) - 1)):
        timeline.undo(ns)
        assert state_digest(ns) == digests[index], f"{label}: undo to state {index}"


@pytest.mark.parametrize("rhythm", ["each-saved-first", "all-pending"])
@pytest.mark.parametrize("workload", ["awkward_objects", "object_graphs", "frame_edits"])
def test_background_commits_equal_inline_ones_and_check_out_exactly(
    workload: str, rhythm: str, tmp_path: Path
) -> None:
    # "all-pending": every cell's snapshot is taken before any is saved (as in Run All), so
    # all but the first learn what to examine when their turn comes.
    inline = Timeline.open(tmp_path / "inline")
    forked = Timeline.open(tmp_path / "forked")
    ns_inline, ns_forked = fresh_namespace(), fresh_namespace()
    inline.start(ns_inline)
    commits = [forked.start(ns_forked).id]
    digests = [state_digest(ns_forked)]
    outcomes = Outcomes()
    cells = load_small_graph_cells() if workload == "object_graphs" else load_cells(workload)
    expected = []
    for code in cells:
        run_cell(ns_inline, code)
        expected.append(inline.checkpoint(ns_inline, CellInfo(code=code)).commit)
        assert _run(forked, ns_forked, code, outcomes, background=ALWAYS) == "saving"
        digests.append(state_digest(ns_forked))
        if rhythm == "each-saved-first":
            forked.settle()
    forked.settle()
    assert not outcomes.errors
    assert len(outcomes.results) == len(cells)
    for got, want in zip((r.commit for r in outcomes.results), expected, strict=True):
        # (trees differ only in the tokens naming unsaveable live objects, which differ here)
        assert got.changed == want.changed, want.code
        assert (got.code, got.cells) == (want.code, 1)
        commits.append(got.id)
    assert [c.id for c in forked.log()] == list(reversed(commits))
    assert set(outcomes.threads) == {"timetravel-commit"}
    for index in [*reversed(range(len(commits) - 1)), *range(1, len(commits))]:
        forked.checkout(ns_forked, commits[index])
        assert state_digest(ns_forked) == digests[index], f"{workload}: commit {index}"
    close_resources(ns_inline)
    close_resources(ns_forked)
    inline.close()
    forked.close()


class SlowToSave:
    """Takes a second to pickle in a snapshot: the cells after it are taken before it is saved."""

    def __init__(self) -> None:
        self.parent = os.getpid()

    def __reduce__(self) -> tuple[object, ...]:
        if os.getpid() != self.parent:
            time.sleep(1.0)
        return (SlowToSave, ())


SLOW_CELL = "slow = SlowToSave()"
"""A cell whose snapshot takes a while to save, so the next cells' snapshots wait (run in a
namespace that holds ``SlowToSave``)."""


def test_a_plan_made_at_its_turn_sees_what_the_snapshots_before_it_tied_together(
    tmp_path: Path,
) -> None:
    timeline, ns, outcomes = _started(tmp_path / "store", SlowToSave=SlowToSave)
    cells = [SLOW_CELL, "y = [1]\nt = [y]", "t[0].append(2)", "z = 5"]
    digests = [state_digest(ns)]
    for code in cells:
        assert _run(timeline, ns, code, outcomes, background=ALWAYS) == "saving"
        digests.append(state_digest(ns))
    # "t[0].append(2)" changed y through t: only y's tie to t (made two cells before, not
    # yet saved when that cell ended) says y must be saved with it.
    timeline.settle()
    assert [r.commit.code for r in outcomes.results] == cells
    assert set(outcomes.results[2].commit.changed) == {"t", "y"}
    assert set(outcomes.results[3].commit.changed) == {"z"}
    _walk_back(timeline, ns, digests, "ties")
    timeline.close()


def test_a_class_redefined_while_an_instance_is_saving_keeps_the_old_class_in_its_state(
    tmp_path: Path,
) -> None:
    timeline, ns, outcomes = _started(tmp_path / "store", SlowToSave=SlowToSave)
    define = "class Point:\n    def __init__(self, x):\n        self.x = x"
    for code in [define, SLOW_CELL, "p = Point(3)",
                 "class Point:\n    def __init__(self, x):\n        self.x = -x"]:
        assert _run(timeline, ns, code, outcomes, background=ALWAYS) == "saving"
    timeline.settle()
    assert not outcomes.errors
    last = outcomes.results[-1].commit
    assert set(last.changed) == {"Point", "p"}  # p refers to the class it was made with
    timeline.close()
    reopened = Timeline.open(tmp_path / "store")
    fresh = fresh_namespace()
    reopened.start(fresh)
    reopened.restore(fresh)
    assert fresh["p"].x == 3 and not isinstance(fresh["p"], fresh["Point"])
    assert fresh["Point"](3).x == -3
    reopened.close()


def test_back_pressure_waits_for_a_free_place_instead_of_merging_cells(tmp_path: Path) -> None:
    timeline, ns, outcomes = _started(tmp_path / "store", SlowToSave=SlowToSave)
    options = BackgroundOptions(mode="background", max_pending=2)
    cells = [SLOW_CELL, "a = 1", "a += 1", "a += 1", "b = [a]"]
    digests = [state_digest(ns)]
    for index, code in enumerate(cells):
        assert _run(timeline, ns, code, outcomes, background=options) == "saving"
        assert len(timeline.recorder.saving) <= 2
        if index == 1:
            assert len(timeline.recorder.saving) == 2 and not outcomes.results
        digests.append(state_digest(ns))
    timeline.settle()
    assert [r.commit.code for r in outcomes.results] == cells
    _walk_back(timeline, ns, digests, "back-pressure")
    timeline.close()


def test_small_checkpoints_stay_inline_in_auto_mode(tmp_path: Path) -> None:
    timeline, ns, outcomes = _started(tmp_path / "store", np=np)
    assert _run(timeline, ns, "x = 1", outcomes, background=BackgroundOptions()) == "saved"
    assert outcomes.threads == [threading.current_thread().name]
    assert _run(timeline, ns, "a = np.zeros(400_000)", outcomes,
                background=BackgroundOptions()) == "saving"
    timeline.settle()
    assert outcomes.threads[-1] == "timetravel-commit"
    timeline.close()


def test_a_snapshot_left_due_is_taken_later_or_before_the_namespace_moves(
    tmp_path: Path,
) -> None:
    timeline, ns, outcomes = _started(tmp_path / "store", np=np)
    auto = BackgroundOptions()
    # inline work is never left due: its notices belong under its cell
    assert _run(timeline, ns, "x = 1", outcomes, background=auto, later=True) == "saved"
    assert _run(timeline, ns, "a = np.zeros(400_000)", outcomes, background=auto,
                later=True) == "due"
    assert [c.code for c in timeline.recorder.saving] == ["a = np.zeros(400_000)"]
    assert not timeline.recorder.snapshot_pids  # not taken yet
    timeline.undo(ns)  # takes and commits the due snapshot first, then goes back before it
    assert [c.code for c in timeline.log()[:2]] == ["a = np.zeros(400_000)", "x = 1"]
    assert "a" not in ns and ns["x"] == 1 and not timeline.recorder.saving
    timeline.redo(ns)
    assert ns["a"].shape == (400_000,)
    assert _run(timeline, ns, "a[0] = 1", outcomes, background=auto, later=True) == "due"
    timeline.recorder.take_due_snapshot()
    assert timeline.recorder.snapshot_pids or not timeline.recorder.saving
    timeline.settle()
    assert outcomes.results[-1].commit.code == "a[0] = 1"
    timeline.close()


def test_a_fork_that_fails_checkpoints_inline_and_leaves_no_thread_or_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeline, ns, outcomes = _started(tmp_path / "store")
    fds = len(os.listdir("/proc/self/fd"))

    def no_fork() -> int:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert _run(timeline, ns, "a = list(range(1000))", outcomes, background=ALWAYS) == "saved"
    assert outcomes.threads == [threading.current_thread().name] and not outcomes.errors
    monkeypatch.undo()
    assert len(os.listdir("/proc/self/fd")) == fds  # no pipe left behind
    assert _run(timeline, ns, "a.append(1)", outcomes, background=ALWAYS) == "saving"
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
    assert should_fork({"v": value}, {"v"}, BackgroundOptions()) is forked
    assert should_fork({"v": value}, {"v"}, ALWAYS) is True
    assert should_fork({"v": value}, {"v"}, BackgroundOptions(mode="sync")) is False


def test_auto_mode_forks_for_many_names() -> None:
    many = {f"n{i}": i for i in range(100)}
    assert should_fork(many, set(many), BackgroundOptions()) is True
    few = {f"n{i}": i for i in range(10)}
    assert should_fork(few, set(few), BackgroundOptions()) is False


def test_sync_mode_never_forks(tmp_path: Path) -> None:
    timeline, ns, outcomes = _started(tmp_path / "store", np=np)
    assert _run(timeline, ns, "a = np.zeros(400_000)", outcomes,
                background=BackgroundOptions(mode="sync")) == "saved"
    assert outcomes.results and not timeline.recorder.saving and not timeline.recorder.snapshot_pids
    timeline.close()


@pytest.mark.parametrize("operation", ["undo", "checkout", "close", "log"])
def test_every_cell_is_committed_before_the_namespace_moves_or_the_history_is_read(
    operation: str, tmp_path: Path
) -> None:
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    ns["np"] = np
    root = timeline.start(ns)
    outcomes = Outcomes()
    _run(timeline, ns, "a = np.arange(3_000_000)", outcomes, background=ALWAYS)
    assert _run(timeline, ns, "a[1] = 7", outcomes, background=ALWAYS) == "saving"
    if operation == "log":
        assert [c.code for c in timeline.log()[:2]] == ["a[1] = 7", "a = np.arange(3_000_000)"]
    elif operation == "close":
        timeline.close()
        timeline = Timeline.open(tmp_path / "store")
        ns = fresh_namespace()
        timeline.start(ns)
        timeline.restore(ns)
        assert ns["a"][1] == 7
    else:
        if operation == "undo":
            timeline.undo(ns)  # the last cell is the state undone
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
    timeline, ns, outcomes = _started(tmp_path / "store")
    head = timeline.head
    # a value that takes a while to save, so the kill lands mid-work
    assert _run(timeline, ns, "d = {i: str(i) for i in range(300_000)}", outcomes,
                background=ALWAYS) == "saving"
    (pid,) = timeline.recorder.snapshot_pids
    os.kill(pid, signal.SIGKILL)
    timeline.settle()
    assert len(outcomes.errors) == 1 and not outcomes.results
    assert isinstance(outcomes.errors[0], CheckpointProcessError)
    assert timeline.head == head  # nothing committed
    assert _run(timeline, ns, "x = 1", outcomes, background=ALWAYS) == "saving"
    timeline.settle()
    assert len(outcomes.errors) == 1
    caught_up = outcomes.results[-1].commit
    assert set(caught_up.changed) == {"d", "x"} and caught_up.cells == 2
    assert caught_up.code == "d = {i: str(i) for i in range(300_000)}\n\nx = 1"
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
    timeline, ns, outcomes = _started(tmp_path / "store")
    ns["slow"] = SlowOnce(str(flag), 30)
    started = time.monotonic()
    assert timeline.recorder.record(ns, CellInfo(code="slow = ..."), on_done=outcomes,
                           background=BackgroundOptions(mode="background",
                                                        hang_seconds=0.5)) == "saving"
    timeline.settle()
    assert time.monotonic() - started < 10
    assert len(outcomes.errors) == 1 and "sent nothing" in str(outcomes.errors[0])
    flag.unlink()
    assert _run(timeline, ns, "y = 2", outcomes, background=ALWAYS) == "saving"
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
    timeline, ns, outcomes = _started(tmp_path / "store")
    ns["model"] = Blocked(str(flag))
    options = BackgroundOptions(mode="background", stall_seconds=1.0)
    started = time.monotonic()
    assert timeline.recorder.record(ns, CellInfo(code="model = ..."), on_done=outcomes,
                           background=options) == "saving"
    timeline.settle()
    assert time.monotonic() - started < 10  # not the 300 s of a silent, busy child
    assert len(outcomes.errors) == 1 and "blocked" in str(outcomes.errors[0])
    # The next checkpoint saves what it missed, in the kernel, where pickling it works; and
    # so does every later one that includes the name.
    assert _run(timeline, ns, "y = 2", outcomes, background=options) == "saved"
    assert set(outcomes.results[-1].commit.changed) == {"model", "y"}
    assert _run(timeline, ns, "model.note = 1", outcomes, background=options) == "saved"
    assert _run(timeline, ns, "z = 3", outcomes, background=options) == "saving"
    timeline.settle()
    assert len(outcomes.errors) == 1
    timeline.close()
