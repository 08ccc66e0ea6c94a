"""The durability contract through real kernels killed at random instants.

A state the kernel announced (its ``checkpoint`` event) is never lost, every cell that
finished has a state of its own, and the state a new kernel brings back is exact: the kernel
is SIGKILLed (as the OOM killer does) at random instants, in the middle of a cell or between
cells, while the states of the cells before are still being saved.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import threading
import time

import pytest

from timetravel_kernel.timeline.background import can_fork

from .harness import Kernel

pytestmark = pytest.mark.skipif(not can_fork(), reason="fork snapshots are Linux-only")
ROUNDS = 8
SIZE = 2_000_000  # 16 MB: every cell's state is saved by a snapshot


def _cell(step: int, rng: random.Random) -> str:
    pause = rng.choice([0.0, 0.0, 0.05, 0.3])
    return (f"a[{step}] = -{step}\nx = {step}\n"
            + (f"time.sleep({pause})\n" if pause else ""))


def _step_of(code: str) -> int:
    return int(code.split()[0][2:-1])


def _run_until_killed(k: Kernel, first: int, rng: random.Random,
                      published: dict[int, str]) -> None:
    """Run cells one after another until a timer kills the kernel; note the states announced."""
    pid = k.km.provisioner.pid  # the kernel alone, as the OOM killer picks one process
    killer = threading.Timer(rng.uniform(0.3, 2.5), os.kill, (pid, signal.SIGKILL))
    killer.start()
    step = first
    try:
        while True:
            msg_id = k.send_execute(_cell(step, rng))
            while True:  # until this cell's idle, or the kernel's death
                try:
                    msg = k.kc.get_iopub_msg(timeout=0.1)
                except (queue.Empty, RuntimeError, OSError):
                    if not k.km.is_alive():
                        return
                    continue
                if msg["msg_type"] == "comm_msg":
                    event = msg["content"]["data"]
                    code = event.get("commit", {}).get("code", "")
                    if event.get("event") == "checkpoint" and code.startswith("a["):
                        published[_step_of(code)] = event["commit"]["id"]
                if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                        and msg["content"]["execution_state"] == "idle"):
                    break
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0.0, 0.2))  # a person's pause, or none (nbclient)
            step += 1
    finally:
        killer.join()
        k.kill(saved=False)


def _restored_chain(k: Kernel) -> list[dict]:
    """The commits from HEAD back to the first cell's, on the restored kernel."""
    commits = {c["id"]: c for c in k.op("log")["result"]["commits"]}
    chain, commit = [], k.op("status")["result"]["head"]
    while commit is not None and commit["parent"] is not None:
        chain.append(commit)
        commit = commits.get(commit["parent"])
    return chain


@pytest.mark.slow
def test_announced_states_survive_random_kills_and_each_cell_keeps_its_own(
        start_kernel, tmp_path):
    rng = random.Random(1357)
    notebook = str(tmp_path / "nb.ipynb")
    published: dict[int, str] = {}
    step = 1
    for round_number in range(ROUNDS):
        k = start_kernel(notebook=notebook, TIMETRAVEL_CHECKPOINT_MODE="auto")
        k.open_comm()
        if round_number == 0:
            k.execute(f"import time\nimport numpy as np\na = np.arange({SIZE}.0)\nx = 0")
        else:
            label = f"round {round_number}"
            chain = _restored_chain(k)
            # each finished cell has its own state, without gaps, newest first
            steps = [_step_of(c["code"]) for c in chain if c["code"].startswith("a[")]
            assert steps == list(range(steps[0], 0, -1)) if steps else True, label
            assert all(c["cells"] == 1 for c in chain), label
            ids = {c["id"] for c in chain}
            lost = {s: i for s, i in published.items() if i not in ids}
            assert not lost, f"{label}: announced states lost: {sorted(lost)}"
            head = steps[0] if steps else 0
            assert k.value("x") == head, label
            assert k.value(f"[float(a[i]) for i in range({head + 2})]") == [
                0.0, *(-float(i) for i in range(1, head + 1)), float(head + 1)], label
            step = head + 1
            # what was run after HEAD and never restored is run again from here
            published = {s: i for s, i in published.items() if s <= head}
        _run_until_killed(k, step, rng, published)
    assert len(published) >= ROUNDS  # kills landed after states were announced
