"""Rebuilding unsaveable values after a crash vs re-running the notebook from the top.

For each workload: run every cell with a checkpoint after each (recorded durations), drop the
process state as a crash would, then in a new timeline restore and rebuild what could not be
saved. Compared with what a kernel without the history does: run all cells again. Prints a
table of medians (seconds) and the ratio.

    python -m benchmarks.rebuild [--reps 3] [--markdown benchmarks/results/rebuild.md]
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from timetravel_kernel.timeline import CellInfo, Timeline

WORKLOADS = {
    "awkward_objects": Path(__file__).resolve().parents[2] / "shared" / "workloads",
    "stream_after_expensive": Path(__file__).resolve().parent / "workloads",
}


def _cells(name: str) -> list[str]:
    notebook = json.loads((WORKLOADS[name] / f"{name}.ipynb").read_text())
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def _close(ns: dict[str, object]) -> None:
    for value in list(ns.values()):
        if isinstance(value, (io.IOBase, socket.socket, sqlite3.Connection)):
            value.close()


def _run_all(cells: list[str]) -> tuple[dict[str, object], list[float]]:
    ns: dict[str, object] = {"__name__": "__main__"}
    durations = []
    for code in cells:
        started = time.perf_counter()
        exec(compile(code, "<cell>", "exec"), ns)  # the workload's own cells
        durations.append(time.perf_counter() - started)
    return ns, durations


def measure(name: str, store: Path) -> dict[str, float]:
    """Return the seconds of one crash-and-rebuild round and of one run from the top."""
    cells = _cells(name)
    timeline = Timeline.open(store)
    ns: dict[str, object] = {"__name__": "__main__"}
    timeline.start(ns)
    for count, code in enumerate(cells, start=1):
        started = time.perf_counter()
        exec(compile(code, "<cell>", "exec"), ns)  # the workload's own cells
        timeline.checkpoint(ns, CellInfo(code=code, execution_count=count),
                            duration=time.perf_counter() - started)
    _close(ns)
    timeline._store.close()  # a crash: the session is never closed
    fresh: dict[str, object] = {"__name__": "__main__"}
    again = Timeline.open(store)
    again.start(fresh)
    started = time.perf_counter()
    restored = again.restore(fresh)
    restore_seconds = time.perf_counter() - started
    result = again.rebuild(fresh)
    assert not result.failed, result.failed
    assert set(result.values) == set(restored.unrestored), (result.values, restored.unrestored)
    _close(fresh)
    again.close()
    rerun_ns, durations = _run_all(cells)
    _close(rerun_ns)
    return {"restore": restore_seconds, "rebuild": result.seconds,
            "cells_run": float(result.cells_run), "names": float(len(result.values)),
            "run_all": sum(durations), "cells": float(len(cells))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="fresh rounds per workload")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args(argv)
    header = ("| workload | names rebuilt | cells re-run / all | restore s | rebuild s | "
              "restore+rebuild s | run all from the top s | ratio |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for name in WORKLOADS:
        rounds = []
        for _ in range(args.reps):
            with tempfile.TemporaryDirectory() as tmp:
                rounds.append(measure(name, Path(tmp) / "store"))
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        total = med["restore"] + med["rebuild"]
        lines.append(
            f"| {name} | {med['names']:.0f} | {med['cells_run']:.0f} / {med['cells']:.0f} | "
            f"{med['restore']:.4f} | {med['rebuild']:.4f} | {total:.4f} | {med['run_all']:.4f} | "
            f"{total / med['run_all']:.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(
            f"# Rebuild after a crash vs re-running from the top (medians of {args.reps})\n\n"
            f"Python {sys.version.split()[0]}; `python -m benchmarks.rebuild`.\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
