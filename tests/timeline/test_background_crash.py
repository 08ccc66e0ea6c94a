"""SIGKILL a kernel-like process, or its snapshots, at random instants.

The process records a cell per step, each in a forked snapshot, several of them waiting to
be saved at any time. Killing the process alone must lose no step whose snapshot was taken:
the snapshots finish on their own (spool files) and the next open commits them, each step its
own state, exact. Killing snapshots too must leave the store whole, HEAD on a complete commit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest

from timetravel_kernel.timeline import Timeline
from timetravel_kernel.timeline.background import can_fork

from ..crashes import check_head_after_kill

pytestmark = pytest.mark.skipif(not can_fork(), reason="fork snapshots are Linux-only")
ROUNDS = 12

CHILD = textwrap.dedent("""
    import os
    import sys
    from timetravel_kernel.store import ObjectStore, RocksBackend
    from timetravel_kernel.timeline import BackgroundOptions, CellInfo, Timeline, TimelineOptions
    from tests.timeline.test_background_crash import step

    store = ObjectStore(RocksBackend(sys.argv[1]), chunk_batch_bytes=256 * 1024)
    timeline = Timeline(store, options=TimelineOptions(chunk_size=64 * 1024))
    always = BackgroundOptions(mode="background")
    ns = {"__name__": "__main__"}
    seed = int(sys.argv[2])

    def report(result, error):
        # one write(2) per line: atomic on a pipe
        line = f"C {result.commit.id.hex()}" if result is not None else "E"
        os.write(1, f"{line}\\n".encode())

    os.write(1, f"R {timeline.start(ns).id.hex()}\\n".encode())
    number = 0
    while True:
        number += 1
        step(ns, seed, number)
        timeline.recorder.record(ns, CellInfo(code=f"step {number}"), on_done=report,
                                 background=always)
        os.write(1, f"S {number}\\n".encode())  # its snapshot is taken
""")


@contextlib.contextmanager
def _running(script: str, path: Path, seed: int) -> Iterator[subprocess.Popen[str]]:
    """Run a kernel-like process; whatever the test finds, it and its snapshots end with it."""
    child = subprocess.Popen([sys.executable, "-c", script, str(path), str(seed)],
                             stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        yield child
    finally:
        if child.returncode is None:  # the test failed before it killed the process itself
            with contextlib.suppress(psutil.Error):
                for process in psutil.Process(child.pid).children():
                    process.kill()
            child.kill()
            child.communicate()


def step(ns: dict, seed: int, number: int) -> None:
    """Change the state as step ``number`` of a run does (the same every time it is asked)."""
    rng = np.random.default_rng([seed, number])
    if number == 1:
        ns["a"] = np.zeros(262_144)
        ns["d"] = {i: str(i) for i in range(60_000)}
    ns["a"][rng.integers(0, 262_144, 50)] = number
    ns["d"][int(rng.integers(0, 60_000))] = "x" * number
    if number % 3 == 0:
        ns["big"] = rng.random(int(rng.integers(100_000, 400_000)))
    ns["b"] = [ns["a"], number]  # shares the array with a


def _replayed(seed: int, number: int) -> dict:
    ns: dict = {}
    for each in range(1, number + 1):
        step(ns, seed, each)
    return ns


def _reopen_and_read(path: Path) -> tuple[list[tuple[str, int]], int, dict | None]:
    """Open the killed process's store (committing its snapshots' spools); return its steps.

    Returns each commit's (code, cells) along HEAD's chain, the number of spools committed,
    and the state HEAD restores to (None at the root).
    """
    timeline = Timeline.open(path, spool_wait=120)
    try:
        chain = []
        commit = timeline.restorable
        while commit is not None and commit.parent is not None:
            chain.append((commit.code, commit.cells))
            commit = timeline.commit(commit.parent)
        ns: dict = {"__name__": "__main__"}
        timeline.start(ns)
        state = None
        if timeline.restorable is not None:
            timeline.restore(ns)
            state = {name: ns.get(name) for name in ("a", "d", "big", "b")}
        return chain, sum(1 for r in timeline.recovered if r.commit is not None), state
    finally:
        timeline.close()


def test_a_killed_process_loses_no_step_whose_snapshot_was_taken(tmp_path: Path) -> None:
    rng = random.Random(2468)
    spooled = 0
    for round_number in range(ROUNDS):
        path = tmp_path / f"store-{round_number}"
        with _running(CHILD, path, round_number) as child:
            assert child.stdout is not None
            assert child.stdout.readline().startswith("R ")
            time.sleep(rng.uniform(0.3, 1.5))
            os.kill(child.pid, signal.SIGKILL)  # the snapshots are not touched: they finish
            output, _ = child.communicate(timeout=60)
        taken = [int(line.split()[1]) for line in output.splitlines() if line.startswith("S ")]
        committed = sum(line.startswith("C ") for line in output.splitlines())
        assert taken, f"round {round_number}: no snapshot taken"
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            chain, recovered, state = pool.submit(_reopen_and_read, path).result()
        label = f"round {round_number}"
        # every step whose snapshot was taken has its own state, newest first
        steps = [int(code.split()[1]) for code, _ in chain]
        assert steps == list(range(steps[0], 0, -1)), label
        assert steps[0] >= taken[-1], label  # the last snapshot taken is not lost
        assert all(cells == 1 for _, cells in chain), label
        assert len(chain) >= committed, label  # nothing the process reported saved is lost
        spooled += recovered
        expected = _replayed(round_number, steps[0])
        assert state is not None
        for name in ("a", "d", "big"):
            assert np.array_equal(state[name], expected[name]) if name != "d" else (
                state[name] == expected[name]), f"{label}: {name}"
        assert state["b"][0] is state["a"] and state["b"][1] == steps[0], label
    assert spooled >= ROUNDS // 2  # kills landed while snapshots were still saving


CHURN = textwrap.dedent("""
    import os
    import sys
    import numpy as np
    from timetravel_kernel.store import ObjectStore, RocksBackend
    from timetravel_kernel.timeline import BackgroundOptions, CellInfo, Timeline, TimelineOptions

    store = ObjectStore(RocksBackend(sys.argv[1]), chunk_batch_bytes=256 * 1024)
    timeline = Timeline(store, options=TimelineOptions(chunk_size=64 * 1024))
    always = BackgroundOptions(mode="background")
    ns = {"__name__": "__main__"}
    rng = np.random.default_rng(int(sys.argv[2]))

    def report(result, error):
        line = f"C {result.commit.id.hex()}" if result is not None else "E"
        os.write(1, f"{line}\\n".encode())

    os.write(1, f"R {timeline.start(ns).id.hex()}\\n".encode())
    ns["a"] = rng.random(262_144)
    ns["d"] = {i: str(i) for i in range(80_000)}
    step = 0
    while True:
        step += 1
        ns["a"][rng.integers(0, 262_144, 50)] = step
        ns["d"][int(rng.integers(0, 80_000))] = "x" * step
        if step % 3 == 0:
            ns["big"] = rng.random(rng.integers(100_000, 400_000))
        timeline.recorder.record(ns, CellInfo(code=f"a; d; big; step {step}"), on_done=report,
                        background=always)
""")


def _read_lines(output: str, first: str) -> list[tuple[str, str]]:
    return [(kind, ident) for kind, _, ident in
            (line.strip().partition(" ") for line in [first, *output.splitlines()]) if kind]


def test_kills_of_process_and_snapshots_leave_only_complete_commits(tmp_path: Path) -> None:
    path = tmp_path / "store"
    rng = random.Random(4321)
    last_printed: str | None = None
    last_commit: str | None = None
    commits_seen = snapshots_killed = 0
    for round_number in range(ROUNDS):
        with _running(CHURN, path, round_number) as child:
            assert child.stdout is not None
            first = child.stdout.readline()
            assert first.startswith("R "), first
            time.sleep(rng.uniform(0.2, 1.0))
            snapshots = psutil.Process(child.pid).children()
            for snapshot in snapshots[: rng.randint(1, 3)]:
                snapshot.send_signal(signal.SIGKILL)
                snapshots_killed += 1
            time.sleep(rng.uniform(0.0, 0.4))
            survivors = psutil.Process(child.pid).children()
            os.kill(child.pid, signal.SIGKILL)
            output, _ = child.communicate(timeout=60)
        # the snapshots left finish (a spool each) or give up; none lingers
        _, alive = psutil.wait_procs(survivors, timeout=120)
        assert not alive
        for kind, ident in _read_lines(output, first):
            if kind in ("R", "C"):
                last_printed = ident
            if kind == "C":
                last_commit = ident
                commits_seen += 1
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            pool.submit(_reopen_and_read, path).result()  # commits what was spooled
        last_commit = check_head_after_kill(path, last_commit, last_printed,
                                            f"round {round_number}", spooled=True)
    assert commits_seen >= ROUNDS // 2  # kills landed among commits, not before any
    assert snapshots_killed >= ROUNDS // 2
