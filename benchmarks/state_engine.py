"""Benchmark of the state engine on the workload notebooks, against dill after every cell.

    python -m benchmarks.state_engine [--workloads frame_edits array_patch many_small]

For each workload: per-cell checkpoint time, bytes written, peak extra resident memory during
the checkpoint, and in the same run a full ``dill.dump`` of the namespace after the cell (the
baseline); then the store size and checkout times (undo of the last cell, back to the first
commit, forward to the last, and a restore of the final state into an empty namespace compared
with reading its bytes from the store).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dill

from tests.workloads import fresh_namespace, load_cells, run_cell
from timetravel_kernel.timeline import CellInfo, Timeline

DEFAULT_WORKLOADS = [
    "frame_edits", "dated_frame_edits", "array_patch", "many_small", "object_graphs"]
MB = 1e6


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Samples resident memory every millisecond while active; reports the peak increase."""

    def __enter__(self) -> PeakMemory:
        self.base = rss_bytes()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def extra(self) -> int:
        return self.peak - self.base


@dataclass
class CellRow:
    code: str
    checkpoint_ms: float
    written: int
    peak_extra: int
    state_bytes: int
    dill_ms: float
    dill_bytes: int


@dataclass
class WorkloadResult:
    name: str
    rows: list[CellRow] = field(default_factory=list)
    store_bytes: int = 0
    undo_ms: float = 0.0
    to_first_ms: float = 0.0
    to_last_ms: float = 0.0
    restore_ms: float = 0.0
    read_ms: float = 0.0


def state_size(ns: dict) -> int:
    """Return the bytes of the distinct array buffers the namespace holds (views counted once)."""
    from timetravel_kernel.state import dump_values

    names = [n for n in ns if not n.startswith("__")]
    try:
        serialized = dump_values(tuple(dict.__getitem__(ns, n) for n in names), ns, names)
    except Exception:
        return 0
    return len(serialized.stream) + sum(len(b) for b in serialized.buffers)


def dill_dump(ns: dict, path: Path) -> tuple[float, int]:
    names = {k: v for k, v in dict.items(ns) if not k.startswith("__")}
    started = time.perf_counter()
    with path.open("wb") as out:
        dill.dump(names, out)
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    path.unlink()
    return seconds, size


def timed(function: object, *args: object) -> float:
    started = time.perf_counter()
    function(*args)  # type: ignore[operator]
    return (time.perf_counter() - started) * 1e3


def run_workload(name: str, root: Path, repeat: int) -> WorkloadResult:
    result = WorkloadResult(name)
    timeline = Timeline.open(root / name)
    ns = fresh_namespace()
    commits = [timeline.start(ns).id]
    for code in load_cells(name):
        run_cell(ns, code)
        with PeakMemory() as memory:
            started = time.perf_counter()
            checkpoint = timeline.checkpoint(ns, CellInfo(code=code))
            checkpoint_ms = (time.perf_counter() - started) * 1e3
        commits.append(checkpoint.commit.id)
        dill_seconds, dill_bytes = dill_dump(ns, root / "baseline.pkl")
        result.rows.append(CellRow(code, checkpoint_ms, checkpoint.commit.bytes_written,
                                   memory.extra, state_size(ns), dill_seconds * 1e3, dill_bytes))
    undo_times = []
    for _ in range(repeat):
        undo_times.append(timed(timeline.undo, ns))
        timeline.redo(ns)
    result.undo_ms = statistics.median(undo_times)
    result.to_first_ms = timed(timeline.checkout, ns, commits[1])
    result.to_last_ms = timed(timeline.checkout, ns, commits[-1])
    timeline.close()
    result.store_bytes = sum(f.stat().st_size for f in (root / name).iterdir())

    # The store reopened (as a new kernel would) restoring the final state into an empty
    # namespace, against reading the same records from the store.
    reopened = Timeline.open(root / name)
    fresh = fresh_namespace()
    reopened.start(fresh)
    result.restore_ms = timed(reopened.restore, fresh)
    store = reopened._store
    started = time.perf_counter()
    for _, covar_id in store.load_tree(store.load_commit(commits[-1]).tree).items():
        for buffer in store.load_covar(covar_id).buffers:
            for chunk_id in buffer.chunks:
                store.backend.get(b"c" + chunk_id)
    result.read_ms = (time.perf_counter() - started) * 1e3
    reopened.close()
    return result


def print_result(result: WorkloadResult) -> None:
    print(f"\n### {result.name}\n")
    print("| cell | checkpoint ms | written | peak extra RSS | state size | dill ms | dill bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for index, row in enumerate(result.rows, start=1):
        code = row.code.splitlines()[0][:38].replace("|", "\\|")
        print(f"| {index} `{code}` | {row.checkpoint_ms:.1f} | {row.written / MB:.3f} MB | "
              f"{row.peak_extra / MB:.1f} MB | {row.state_bytes / MB:.1f} MB | "
              f"{row.dill_ms:.1f} | {row.dill_bytes / MB:.1f} MB |")
    dill_total = sum(r.dill_bytes for r in result.rows)
    ckpt = [r.checkpoint_ms for r in result.rows]
    dill_ms = [r.dill_ms for r in result.rows]
    print(f"\n- store after the last cell: **{result.store_bytes / MB:.1f} MB**; dill after every "
          f"cell: {dill_total / MB:.1f} MB (**{dill_total / result.store_bytes:.1f}x** larger)")
    print(f"- checkpoint median {statistics.median(ckpt):.1f} ms vs dill median "
          f"{statistics.median(dill_ms):.1f} ms "
          f"(**{statistics.median(dill_ms) / statistics.median(ckpt):.1f}x**)")
    print(f"- undo of the last cell (median): {result.undo_ms:.1f} ms; back to the first commit: "
          f"{result.to_first_ms:.1f} ms; forward to the last: {result.to_last_ms:.1f} ms")
    print(f"- restore of the final state into an empty namespace: {result.restore_ms:.1f} ms; "
          f"reading its bytes from the store: {result.read_ms:.1f} ms "
          f"(**{result.restore_ms / max(result.read_ms, 1e-6):.1f}x**)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=DEFAULT_WORKLOADS)
    parser.add_argument("--repeat", type=int, default=9, help="undo/redo pairs to time")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tt-bench-"))
    try:
        print("# State engine: time-travel checkpoints vs dill after every cell")
        for name in args.workloads:
            print_result(run_workload(name, root, args.repeat))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
