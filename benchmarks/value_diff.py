"""Benchmark of one variable's history and value diffs on a 400 MB array and a large frame.

    python -m benchmarks.value_diff [--mb 400]

For a float64 array of the given size with k scattered elements edited between two commits:
the time to read what any diff must read (both manifests and the k changed chunks of both
versions) and the time of ``Timeline.diff(values=True)``; then the diff of a 1 M-row frame
after a dropped column and a few cell edits (loaded whole), and ``history`` of a name over
200 commits. Times are CPU times of the process (blosc's threads included), medians of 7
runs; the ratio is the median of paired runs (a read, then a diff, under the same load), so
other work on a shared machine moves the figures less than wall times would.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tests.workloads import fresh_namespace
from timetravel_kernel.timeline import CellInfo, Timeline


def cpu_seconds(run: Callable[[], object]) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


def median_ms(run: Callable[[], object], repeat: int = 7) -> float:
    return statistics.median(cpu_seconds(run) for _ in range(repeat)) * 1e3


def commit(timeline: Timeline, ns: dict, names: str) -> bytes:
    return timeline.checkpoint(ns, CellInfo(code=names, source=names)).commit.id


def array_rows(timeline: Timeline, size_mb: int) -> list[str]:
    ns = fresh_namespace()
    timeline.start(ns)
    ns["arr"] = np.arange(size_mb * 125_000, dtype=np.float64)
    rows = []
    store = timeline._store
    for edits in (1, 10, 100, 1000):
        a = commit(timeline, ns, "arr")
        where = np.linspace(0, ns["arr"].size - 1, edits).astype(np.int64)
        ns["arr"][where] += 1.0
        b = commit(timeline, ns, "arr")
        trees = [timeline.commit(c).tree for c in (a, b)]

        def read(trees: list = trees) -> None:
            old, new = (store.load_covar(store.lookup_name(t, "arr")) for t in trees)
            for x, y in zip(old.buffers[1].chunks, new.buffers[1].chunks, strict=True):
                if x != y:
                    pair = (store.load_chunk(x), store.load_chunk(y))
                    del pair

        reads, diffs = [], []
        for _ in range(7):
            reads.append(cpu_seconds(read))
            diffs.append(cpu_seconds(lambda a=a, b=b: timeline.diff(a, b, values=True)))
        ratio = statistics.median(d / r for d, r in zip(diffs, reads, strict=True))
        rows.append(f"| {size_mb} MB array, {edits} elements edited | "
                    f"{statistics.median(reads) * 1e3:.1f} | "
                    f"{statistics.median(diffs) * 1e3:.1f} | {ratio:.2f}x |")
    return rows


def frame_row(timeline: Timeline) -> str:
    ns = fresh_namespace()
    timeline.start(ns)
    ns["df"] = pd.DataFrame({c: np.arange(1_000_000) * i for i, c in enumerate("abcd")})
    a = commit(timeline, ns, "df")
    ns["df"] = ns["df"].drop(columns="b")
    ns["df"].loc[[5, 500_000], "a"] = -1
    b = commit(timeline, ns, "df")
    diff_ms = median_ms(lambda: timeline.diff(a, b, values=True))
    text = timeline.diff(a, b, values=True).values["df"]
    return f"| 1 M-row frame (32 MB), dropped column + 2 cells | - | {diff_ms:.1f} | `{text}` |"


def history_row(timeline: Timeline) -> str:
    ns = fresh_namespace()
    timeline.start(ns)
    for i in range(200):
        ns["x"] = i
        ns[f"other{i % 20}"] = [i]
        commit(timeline, ns, f"x other{i % 20}")
    took = median_ms(lambda: timeline.history("x"))
    return f"| history of a name over 200 commits | - | {took:.1f} | |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=400, help="array size in MB")
    args = parser.parse_args()
    print(f"CPU ms, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| case | read changed chunks + manifests (ms) | diff (ms) | ratio / result |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, run in (("array", lambda t: array_rows(t, args.mb)),
                          ("frame", lambda t: [frame_row(t)]),
                          ("history", lambda t: [history_row(t)])):
            timeline = Timeline.open(Path(folder) / name)
            try:
                for row in run(timeline):
                    print(row, flush=True)
            finally:
                timeline.close()


if __name__ == "__main__":
    main()
