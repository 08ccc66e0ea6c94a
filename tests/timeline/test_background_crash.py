"""SIGKILL the kernel-like process or its checkpoint snapshot at random instants.

The process checkpoints in a loop with every checkpoint forked; each round kills the snapshot
in flight (when there is one) and then the process itself, each at a random instant. The store
must reopen with HEAD on a complete commit and every reachable object intact.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from timetravel_kernel.timeline.background import can_fork

from ..crashes import check_head_after_kill

pytestmark = pytest.mark.skipif(not can_fork(), reason="fork snapshots are Linux-only")
ROUNDS = 16

CHILD = textwrap.dedent("""
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
        # one write(2) per line: atomic on a pipe
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
        timeline.start_checkpoint(ns, CellInfo(code=f"a; d; big; step {step}"),
                                  on_done=report, background=always)
""")


def _read_lines(output: str, first: str) -> list[tuple[str, str]]:
    return [(kind, ident) for kind, _, ident in
            (line.strip().partition(" ") for line in [first, *output.splitlines()]) if kind]


def test_kills_of_process_and_snapshot_leave_only_complete_commits(tmp_path: Path) -> None:
    path = tmp_path / "store"
    rng = random.Random(4321)
    last_printed: str | None = None
    last_commit: str | None = None
    commits_seen = snapshots_killed = 0
    for round_number in range(ROUNDS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(round_number)],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.startswith("R "), first
        time.sleep(rng.uniform(0.2, 1.0))
        snapshots = psutil.Process(child.pid).children()
        if snapshots:
            snapshots[0].send_signal(signal.SIGKILL)
            snapshots_killed += 1
        time.sleep(rng.uniform(0.0, 0.4))
        orphans = psutil.Process(child.pid).children()
        os.kill(child.pid, signal.SIGKILL)
        output, _ = child.communicate(timeout=60)
        # a snapshot never outlives its process (it could not commit anyway)
        _, alive = psutil.wait_procs(orphans, timeout=10)
        assert not alive
        for kind, ident in _read_lines(output, first):
            if kind in ("R", "C"):
                last_printed = ident
            if kind == "C":
                last_commit = ident
                commits_seen += 1

        last_commit = check_head_after_kill(path, last_commit, last_printed,
                                            f"round {round_number}")
    assert commits_seen >= ROUNDS // 2  # kills landed among commits, not before any
    assert snapshots_killed >= ROUNDS // 2
