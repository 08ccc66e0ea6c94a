"""Background checkpoints through a real kernel: nobody waits, cells fold, nothing is skipped."""

from __future__ import annotations

import time

import pytest

from timetravel_kernel.timeline.background import can_fork

from .harness import check_event, stderr

pytestmark = pytest.mark.skipif(not can_fork(), reason="fork snapshots are Linux-only")

# Pickling this takes about a second: the snapshot is still saving when the next cells end.
SLOW_TO_SAVE = "d = {i: (i, str(i), [i]) for i in range(600_000)}"
BURST = ["y = 1", "y += 1", "z = y * 10"]
# Every cell is checkpointed on its own unless a snapshot is still saving.
EVERY_CELL = {"TIMETRAVEL_CHECKPOINT_BURST_SECONDS": "0"}


def _head(k) -> dict:
    return k.op("log", limit=1)["result"]["commits"][0]


def _run_all(k, cells: list[str]) -> None:
    """Send every cell at once, as a frontend's Run All does; wait for the last one's idle."""
    ids = [k.send_execute(code) for code in cells]
    for msg_id in ids:
        reply = k._shell_reply(msg_id)
        assert reply["content"]["status"] == "ok"
    k.collect_iopub(ids[-1])


def test_run_all_folds_the_cells_behind_a_slow_snapshot_and_catches_up_when_idle(
        start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="auto", **EVERY_CELL)
    k.open_comm()
    _run_all(k, [SLOW_TO_SAVE, *BURST])
    # Idle, and no further cell: the kernel records the folded cells by itself.
    deadline = time.monotonic() + 120
    while (head := _head(k))["code"] != "\n\n".join(BURST):
        assert time.monotonic() < deadline, head
        time.sleep(0.2)
    assert head["cells"] == 3 and set(head["changed"]) == {"y", "z"}
    # Announced like any checkpoint (from the ingest thread): the history panel shows it.
    k.drain_iopub()
    announced = [e for e in k.events
                 if e.get("event") == "checkpoint" and e["commit"]["id"] == head["id"]]
    assert len(announced) == 1
    check_event(announced[0])
    commits = k.op("log")["result"]["commits"]
    assert [c["cells"] for c in commits[:2]] == [3, 1] and commits[1]["code"] == SLOW_TO_SAVE
    # Undo goes back over the folded cells together, to the state the snapshot saw.
    assert k.op("undo")["ok"]
    assert k.value("[len(d), 'y' in dir(), 'z' in dir()]") == [600_000, False, False]
    assert k.op("redo")["ok"] and k.value("[y, z]") == [2, 20]


def test_an_undo_right_after_run_all_records_the_folded_cells_first(start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="auto", **EVERY_CELL)
    k.open_comm()
    _run_all(k, [SLOW_TO_SAVE, *BURST])
    # The undo arrives while the snapshot is saving and the burst is folded: it waits, records
    # the burst as one state, and undoes that state (nothing that ran is skipped).
    assert k.op("undo")["ok"]
    assert k.value("'y' in dir()") is False and k.value("len(d)") == 600_000
    assert k.op("redo")["ok"] and k.value("z") == 20


def test_sigkill_after_the_checkpoints_settle_restores_the_folded_state(start_kernel, tmp_path):
    notebook = str(tmp_path / "nb.ipynb")
    k = start_kernel(notebook=notebook, TIMETRAVEL_CHECKPOINT_MODE="auto")
    _run_all(k, [SLOW_TO_SAVE, *BURST])
    k.kill()  # after save_now: every cell committed
    k2 = start_kernel(notebook=notebook)
    assert k2.value("[len(d), y, z]") == [600_000, 2, 20]


def test_sync_mode_keeps_one_state_per_cell(start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="sync")
    k.open_comm()
    _run_all(k, [SLOW_TO_SAVE, *BURST])
    commits = k.op("log")["result"]["commits"]
    assert [c["code"] for c in commits[:4]] == [*reversed(BURST), SLOW_TO_SAVE]
    assert all(c["cells"] == 1 for c in commits)


def test_a_burst_of_quick_cells_is_recorded_with_the_next_slow_cell(start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_BURST_SECONDS="0.5")
    k.open_comm()
    # The first cell waits a little, so the whole burst is queued behind it.
    quick = ["import time\ntime.sleep(0.2)", "a = 1", "a += 1", "b = [a, a]"]
    slow = "time.sleep(0.6)\nc = 3"
    _run_all(k, [*quick, slow, "a += 10", "a += 100"])
    k.wait_saved()
    commits = k.op("log")["result"]["commits"]
    # The quick cells (0.2 s together) are recorded with the slow one, which is a checkpoint
    # of its own; the last two cells are too (the last of a burst always checkpoints).
    assert [c["cells"] for c in commits[:3]] == [2, 5, 1], commits[:3]
    assert commits[1]["code"] == "\n\n".join([*quick, slow])
    assert commits[2]["parent"] is None
    assert k.op("undo")["ok"] and k.value("[a, b, c]") == [2, [2, 2], 3]
    assert k.op("undo")["ok"] and k.value("'a' in dir()") is False


def test_without_bursts_every_cell_of_run_all_is_a_state(start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="auto", **EVERY_CELL)
    k.open_comm()
    _run_all(k, ["a = 1", "a += 1", "b = [a, a]"])
    k.wait_saved()
    commits = k.op("log")["result"]["commits"]
    assert [c["code"] for c in commits[:3]] == ["b = [a, a]", "a += 1", "a = 1"]


def _iopub_until_checkpoint(k) -> list[dict]:
    """Return iopub messages up to and including the next checkpoint event."""
    messages = []
    deadline = time.monotonic() + 60
    while True:
        msg = k.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        messages.append(msg)
        if msg["msg_type"] == "comm_msg":
            k.events.append(msg["content"]["data"])
            if msg["content"]["data"].get("event") == "checkpoint":
                return messages


def _is_idle_of(msg: dict, msg_id: str) -> bool:
    return (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
            and msg["parent_header"].get("msg_id") == msg_id)


def test_run_all_shows_done_before_its_burst_is_recorded(start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="auto")
    k.open_comm()
    cells = ["import time\ntime.sleep(0.2)\ny = 1", "y += 1", "z = y * 10"]
    ids = [k.send_execute(code) for code in cells]
    messages = _iopub_until_checkpoint(k)
    # The last cell of the burst is folded too: the kernel goes idle, then records the burst.
    idle = next(i for i, m in enumerate(messages) if _is_idle_of(m, ids[-1]))
    assert idle < len(messages) - 1
    commit = k.events[-1]["commit"]
    assert commit["cells"] == 3 and commit["code"] == "\n\n".join(cells)
    assert k.op("undo")["ok"] and k.value("'y' in dir()") is False


def test_a_notice_of_a_burst_recorded_once_idle_appears_under_the_next_cell(start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="auto")
    k.open_comm()
    ids = [k.send_execute(code) for code in ["import time\ntime.sleep(0.2)",
                                             "g = (i * i for i in range(3))"]]
    for msg_id in ids:
        assert k._shell_reply(msg_id)["content"]["status"] == "ok"
    _iopub_until_checkpoint(k)  # recorded after the last cell's idle: its output is closed
    _, outputs = k.execute("n = 1")
    told = stderr(outputs)
    assert "not saved" in told and "g (" in told, told
    _, outputs = k.execute("n += 1")
    assert "not saved" not in stderr(outputs)  # told once


def test_an_idle_kernel_does_not_wait_for_a_snapshot_to_record_a_burst(start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="auto")
    # Slow to run (so it is checkpointed on its own, in a snapshot) and slower to save.
    slow = "import time\nd = {i: (i, str(i), [i]) for i in range(1_200_000)}\ntime.sleep(0.6)"
    _run_all(k, [slow, *BURST])
    time.sleep(0.2)  # the burst's catch-up is due; the snapshot is still saving
    # The catch-up waits for the snapshot without holding the kernel: this runs meanwhile.
    assert k.value("get_ipython().kernel.timeline.background_pid is not None") is True
    k.open_comm()
    deadline = time.monotonic() + 120
    while (head := _head(k))["code"] != "\n\n".join(BURST):
        assert time.monotonic() < deadline, head
        time.sleep(0.2)
    assert head["cells"] == 3 and k.value("[y, z, len(d)]") == [2, 20, 1_200_000]


def test_cells_before_a_time_travel_magic_in_run_all_keep_a_state_each(start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="auto")
    # Without the magic these three quick cells would be one state (a burst).
    ids = [k.send_execute(code) for code in ["import time\ntime.sleep(0.2)\na = 1", "a += 1",
                                             "a += 10", "%tt undo\nprint(a)"]]
    for msg_id in ids:
        assert k._shell_reply(msg_id)["content"]["status"] == "ok"
    outputs = k.collect_iopub(ids[-1])
    assert "2" in [o["content"].get("text", "").strip() for o in outputs]  # one cell undone
    assert k.op("undo")["ok"] and k.value("a") == 1


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
