"""SIGKILL a process that checkpoints in a loop; the store must always reopen consistent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ..crashes import check_head_after_kill

KILLS = 50

# The child checkpoints a namespace with a 2 MiB array patched in place, a growing list and
# sometimes a fresh random array (so large commits stream chunks through unlogged batches of
# 256 KiB and flush before their durable batch), printing each commit id once it returned.
CHILD = textwrap.dedent("""
    import os
    import sys
    import numpy as np
    from timetravel_kernel.store import ObjectStore, RocksBackend
    from timetravel_kernel.timeline import CellInfo, Timeline, TimelineOptions

    store = ObjectStore(RocksBackend(sys.argv[1]), chunk_batch_bytes=256 * 1024)
    timeline = Timeline(store, options=TimelineOptions(chunk_size=64 * 1024))
    ns = {"__name__": "__main__"}
    rng = np.random.default_rng(int(sys.argv[2]))
    def report(kind, commit):
        # One write(2) per line: atomic on a pipe, so a kill never leaves half a line (print
        # writes each piece separately under PYTHONUNBUFFERED, which CI sets).
        os.write(1, f"{kind} {commit.id.hex()}\\n".encode())

    report("R", timeline.start(ns))
    ns["a"] = rng.random(262_144)
    ns["log"] = []
    step = 0
    while True:
        step += 1
        ns["a"][rng.integers(0, 262_144, 50)] = step
        ns["log"].append(step)
        if step % 3 == 0:
            ns["big"] = rng.random(rng.integers(100_000, 400_000))
        report("C", timeline.checkpoint(ns, CellInfo(code=f"step {step}")).commit)
""")


def test_store_survives_sigkill_at_random_instants(tmp_path: Path) -> None:
    path = tmp_path / "store"
    rng = random.Random(1234)
    last_printed: str | None = None
    last_commit: str | None = None
    total_commits = 0
    for kill in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(kill)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert child.stdout is not None
        first = child.stdout.readline()  # the root: the store is open, the loop begins
        assert first.startswith("R "), first
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        output, _ = child.communicate(timeout=60)
        for line in [first, *output.splitlines()]:
            kind, _, ident = line.strip().partition(" ")
            last_printed = ident
            if kind == "C":
                last_commit = ident
                total_commits += 1

        last_commit = check_head_after_kill(path, last_commit, last_printed, f"kill {kill}")
    assert total_commits >= KILLS  # the kills landed mid-work, not before any checkpoint
