"""One state per cell through a real kernel, whatever the client does between cells.

The family the promise "undo takes back exactly one cell" rests on: every shared workload run
the ways clients run notebooks - Run All (every cell sent at once), the next cell sent the
moment the last shows idle (nbclient, papermill, a quick person), a variable inspector
querying between cells (VS Code, JupyterLab's debugger), and Run All with a ``%tt undo`` cell
in the middle - must leave exactly the history the same cells leave in ``sync`` mode (one
state per cell, the kernel busy until each is saved): as many states, and every undo step
back from the end landing on the same state.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from timetravel_kernel.timeline.background import can_fork

from ..workloads import SMALL_GRAPHS, WORKLOADS, load_notebook_cells
from .harness import Kernel, check_event, stderr
from .test_workloads import describe, saved_names

pytestmark = pytest.mark.skipif(not can_fork(), reason="fork snapshots are Linux-only")

PROBE = {"PYTHONPATH": str(Path(__file__).resolve().parent)}
RHYTHMS = ["run-all", "at-idle", "inspector", "run-all-with-undo"]
UNDO_CELL = ("tt-undo", "%tt undo")


def _cells(workload: str, rhythm: str) -> list[tuple[str, str]]:
    if workload == "object_graphs":
        cells = load_notebook_cells("object_graphs")
        first_id, first = cells[0]
        cells[0] = (first_id, first.replace("N = 1_000_000", f"N = {SMALL_GRAPHS}"))
    else:
        cells = load_notebook_cells(workload)
    if rhythm == "run-all-with-undo":
        # the middle cell, undone by a %tt cell and run again (the cells after may need it)
        middle = len(cells) // 2
        cells = [*cells[: middle + 1], UNDO_CELL, *cells[middle:]]
    return cells


def _walk_back(k: Kernel) -> list[tuple[dict, set[str]]]:
    """Undo to the session's start; return each state met (described) with its saved names."""
    states = [(describe(k), saved_names(k))]
    while (reply := k.op("undo"))["ok"]:
        states.append((describe(k), saved_names(k)))
    assert reply["error"]["code"] == "nothing-to-undo", reply
    return states


def _run(k: Kernel, cells: list[tuple[str, str]], rhythm: str) -> None:
    if rhythm.startswith("run-all"):
        ids = [k.send_execute(code, cell_id=cell_id) for cell_id, code in cells]
        for msg_id in ids:
            assert k._shell_reply(msg_id)["content"]["status"] == "ok"
        k.collect_iopub(ids[-1])
        return
    for cell_id, code in cells:
        reply, _ = k.execute(code, cell_id=cell_id)
        assert reply["status"] == "ok"
        if rhythm == "inspector":
            describe(k)  # reads every name, silently: never a state of its own
            assert k.op("status", wait=False)["ok"]


@functools.cache
def _reference(workload: str, with_undo: bool) -> tuple[int, list]:
    """The history the same cells leave in sync mode: its states count and its undo walk."""
    store_dir = tempfile.mkdtemp(prefix="reference-")
    k = Kernel(env={"TIMETRAVEL_STORE_DIR": store_dir, "TIMETRAVEL_CHECKPOINT_MODE": "sync",
                    **PROBE})
    try:
        rhythm = "run-all-with-undo" if with_undo else "at-idle"
        for cell_id, code in _cells(workload, rhythm):
            reply, _ = k.execute(code, cell_id=cell_id)
            assert reply["status"] == "ok", (workload, cell_id)
        states = len(k.op("log")["result"]["commits"])
        return states, _walk_back(k)
    finally:
        k.shutdown()
        shutil.rmtree(store_dir, ignore_errors=True)


def _unstable(got: dict, want: dict) -> set[str]:
    """Names whose values differ between two runs of the same cells (a temporary dir's name)."""
    return {n for n, v in got["values"].items() if want["values"].get(n, v) != v}


def _same(actual: tuple[dict, set[str]], expected: tuple[dict, set[str]], where: str,
          unstable: set[str]) -> None:
    (got, got_saved), (want, want_saved) = actual, expected
    assert got_saved == want_saved, f"{where}: saved names differ"
    assert set(got["values"]) == set(want["values"]), f"{where}: names differ"
    compared = want_saved - unstable
    for key in ("values", "aliases"):
        mine = {n: v for n, v in got[key].items() if n in compared}
        theirs = {n: v for n, v in want[key].items() if n in compared}
        assert mine == theirs, f"{where}: {key} differ for {sorted(set(mine) ^ set(theirs))}"


@pytest.mark.slow
@pytest.mark.parametrize("rhythm", RHYTHMS)
@pytest.mark.parametrize("workload", [*WORKLOADS, "object_graphs"])
def test_every_cell_gets_its_own_state_whatever_the_client_does(workload, rhythm, start_kernel):
    cells = _cells(workload, rhythm)
    states, walk = _reference(workload, rhythm == "run-all-with-undo")
    k = start_kernel(**PROBE)
    k.open_comm()
    _run(k, cells, rhythm)
    # right after the last idle, the history already lists every cell run, saved or not
    commits = k.op("log")["result"]["commits"]
    assert len(commits) == states, f"{workload}/{rhythm}: {len(commits)} states, not {states}"
    assert all(c["cells"] == 1 for c in commits)
    got = _walk_back(k)
    assert len(got) == len(walk), f"{workload}/{rhythm}: undo steps differ"
    # what differs already before any undo is not the history's doing (tmpdir's random name)
    unstable = _unstable(got[0][0], walk[0][0])
    assert len(unstable) <= 3, unstable
    for step, (actual, expected) in enumerate(zip(got, walk, strict=True)):
        _same(actual, expected, f"{workload}/{rhythm}: {step} undo steps back", unstable)


# Pickling this takes about a second in a snapshot: the next cells end while it is saving.
SLOW_TO_SAVE = "d = {i: (i, str(i), [i]) for i in range(600_000)}"


def test_a_state_is_announced_once_durable_and_the_kernel_says_it_is_saving(start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="background")
    k.open_comm()
    reply, _ = k.execute(SLOW_TO_SAVE)
    count = reply["execution_count"]
    status = k.op("status", wait=False)["result"]
    # not durable yet: saying so is the frontend's "saving" (the status bar)
    assert status["saving"] == 1 and status["head"]["execution_count"] != count
    assert all(c["execution_count"] != count
               for c in k.op("log", wait=False)["result"]["commits"])
    saving = [e for e in k.events if e.get("event") == "saving"]
    assert saving and saving[-1]["execution_count"] == count
    # a plain request waits until every finished cell's state is durable
    assert k.op("log")["result"]["commits"][0]["execution_count"] == count
    assert k.op("status")["result"]["saving"] == 0
    k.drain_iopub()
    announced = [e for e in k.events if e.get("event") == "checkpoint"]
    assert announced[-1]["commit"]["execution_count"] == count and announced[-1]["saving"] == 0
    for event in [*saving, announced[-1]]:
        check_event(event)


def test_run_all_behind_a_slow_snapshot_keeps_a_state_per_cell_and_undoes_one(start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="auto")
    k.open_comm()
    cells = [SLOW_TO_SAVE, "y = 1", "y += 1", "z = y * 10"]
    ids = [k.send_execute(code) for code in cells]
    for msg_id in ids:
        assert k._shell_reply(msg_id)["content"]["status"] == "ok"
    k.collect_iopub(ids[-1])
    assert k.op("undo")["ok"]  # waits for the states being saved, then one cell back
    assert k.value("[y, 'z' in dir(), len(d)]") == [2, False, 600_000]
    assert k.op("undo")["ok"] and k.value("y") == 1
    assert k.op("redo")["ok"] and k.op("redo")["ok"] and k.value("z") == 20


def test_a_snapshot_is_taken_once_the_idle_status_is_out_and_before_the_next_request(
        start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="background")
    # Each fork of the kernel takes a second from now on (the real fork, after a sleep).
    k.execute("import os, time\n_fork = os.fork\n"
              "def _slow_fork(_fork=_fork):\n    time.sleep(1.0)\n    return _fork()\n"
              "os.fork = _slow_fork\ndel _slow_fork", silent=True)
    sent = time.monotonic()
    first = k.send_execute("a = list(range(10))")
    k._shell_reply(first)
    k.collect_iopub(first)
    assert time.monotonic() - sent < 1.0  # idle came before the fork
    # Sent the moment the cell shows done: it runs after the snapshot, which saw the state
    # of the first cell alone.
    k.execute("a.append(10)")
    assert time.monotonic() - sent >= 1.0
    commits = k.op("log")["result"]["commits"]
    assert [(c["code"], c["cells"]) for c in commits[:2]] == [("a.append(10)", 1),
                                                             ("a = list(range(10))", 1)]
    assert k.op("undo")["ok"] and k.value("len(a)") == 10


def test_an_unsaveable_value_saved_in_the_background_is_named_under_the_next_cell(
        start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="background")
    k.execute("g = (i * i for i in range(3))")
    k.op("log")  # its snapshot is committed by now; the notice waits for the next cell
    _, outputs = k.execute("n = 1")
    told = stderr(outputs)
    assert "not saved" in told and "g (" in told, told
    _, outputs = k.execute("n += 1")
    assert "not saved" not in stderr(outputs)  # told once
