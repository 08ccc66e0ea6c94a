"""Background checkpoints and content-defined chunks, measured on the workload notebooks.

    python -m benchmarks.background [--workloads object_graphs frame_edits array_patch]

For each cell: the time the kernel's thread is held (forking a snapshot, against a checkpoint
done inline in the same run on a second timeline), the time until the snapshot's commit is
durable, the bytes written, and the peak extra memory while the snapshot runs (the child's
private pages, copied on write or new, plus the parent's growth), against the state's size.
Targets: bytes of a one-key delete, insert and lengthened value in the 1M-entry dict <= 64 KiB;
peak extra memory on frame_edits and array_patch <= 10% of the state + 64 MB.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.state_engine import MB, rss_bytes, state_size
from tests.workloads import fresh_namespace, load_cells, run_cell
from timetravel_kernel.timeline import BackgroundOptions, CellInfo, Timeline

DEFAULT_WORKLOADS = ["object_graphs", "frame_edits", "array_patch"]
ALWAYS = BackgroundOptions(mode="background")


def private_bytes(pid: int) -> int:
    """Return a process's private resident bytes (pages it does not share), 0 if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            fields = dict(line.split(":", 1) for line in rollup if ":" in line)
    except (OSError, ValueError):
        return 0
    return sum(int(fields.get(k, "0 kB").split()[0]) * 1024
               for k in ("Private_Clean", "Private_Dirty"))


class SnapshotMemory:
    """Samples the snapshot child's private memory and the parent's growth every 2 ms."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.base = rss_bytes()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            child = sum(private_bytes(pid) for pid in self.timeline.recorder.snapshot_pids)
            self.peak = max(self.peak, child + max(0, rss_bytes() - self.base))
            time.sleep(0.002)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Row:
    code: str
    inline_ms: float
    held_ms: float
    durable_ms: float
    written: int
    inline_written: int
    peak_extra: int
    state: int


def run_workload(name: str, root: Path) -> list[Row]:
    inline = Timeline.open(root / f"{name}-inline")
    forked = Timeline.open(root / f"{name}-forked")
    ns_inline, ns = fresh_namespace(), fresh_namespace()
    inline.start(ns_inline)
    forked.start(ns)
    rows = []
    for code in load_cells(name):
        run_cell(ns_inline, code)
        started = time.perf_counter()
        expected = inline.checkpoint(ns_inline, CellInfo(code=code))
        inline_ms = (time.perf_counter() - started) * 1e3
        run_cell(ns, code)
        outcome: list[object] = []
        memory = SnapshotMemory(forked)
        started = time.perf_counter()
        forked.recorder.record(
            ns, CellInfo(code=code), background=ALWAYS,
            on_done=lambda result, error, out=outcome: out.append(result or error))
        held_ms = (time.perf_counter() - started) * 1e3
        forked.settle()
        durable_ms = (time.perf_counter() - started) * 1e3
        peak = memory.stop()
        result = outcome[0]
        written = getattr(getattr(result, "commit", None), "bytes_written", -1)
        rows.append(Row(code, inline_ms, held_ms, durable_ms, written,
                        expected.commit.bytes_written, peak, state_size(ns)))
    inline.close()
    forked.close()
    return rows


def print_rows(name: str, rows: list[Row]) -> None:
    print(f"\n### {name}\n")
    print("| cell | inline checkpoint ms | kernel held ms (fork) | durable after ms | written "
          "| peak extra memory | state | budget (10% + 64 MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for index, row in enumerate(rows, start=1):
        code = row.code.splitlines()[-1][:40].replace("|", "\\|")
        budget = row.state / 10 + 64 * MB
        print(f"| {index} `{code}` | {row.inline_ms:.1f} | {row.held_ms:.1f} | "
              f"{row.durable_ms:.1f} | {row.written / 1024:.1f} KiB | "
              f"{row.peak_extra / MB:.1f} MB | {row.state / MB:.1f} MB | {budget / MB:.0f} MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=DEFAULT_WORKLOADS)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tt-bench-bg-"))
    try:
        print("# Background checkpoints: kernel held vs inline, bytes, memory")
        for name in args.workloads:
            print_rows(name, run_workload(name, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
