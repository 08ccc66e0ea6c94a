"""Latency as a client sees it: execute_request -> execute_reply and -> idle, per cell.

Runs every workload notebook on the stock python3 kernel and on the time-travel kernel in the
same run, plus a stream of tiny cells that shows the fixed cost per cell, three ways: at a
person's pace (each kernel alone, ``--pace`` seconds after each cell), as "Run All" (every
cell sent at once as a frontend does, timed to the last cell's idle; the time-travel kernel
also to "durable": its last state committed) and with the next cell sent the moment the last
shows idle (nbclient, papermill). The time-travel kernel must keep a state per cell in each
(checked: its number of states). Also per workload: the time from a cell's idle to its
``checkpoint`` event (its state durable) at a person's pace, median and max, and the peak
memory the time-travel kernel and its snapshots held beyond the stock kernel's peak.

Targets: added time to idle at a person's pace <= 20 ms median; Run All <= 1.25x the stock
kernel's total or <= +3 ms per cell, whichever is larger, with every cell its own state.

    python -m benchmarks.kernel_latency [--reps 3] [--pace 1] [--only frame_edits,...]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from jupyter_client.manager import KernelManager

from timetravel_kernel.cli.kernelspec import write_kernel_spec

WORKLOAD_DIR = Path(__file__).resolve().parents[2] / "shared" / "workloads"
PROJECT_WORKLOAD_DIR = Path(__file__).resolve().parent / "workloads"
WORKLOAD_PATHS = {p.stem: p for d in (WORKLOAD_DIR, PROJECT_WORKLOAD_DIR)
                  for p in sorted(d.glob("*.ipynb"))}
TINY_CELLS = [("tiny", "x = 0")] + [(f"tiny-{i}", "x += 1") for i in range(60)]


def _install_specs(root: Path) -> None:
    write_kernel_spec(root / "kernels" / "timetravel", sys.executable)
    stock = root / "kernels" / "python3"
    stock.mkdir(parents=True, exist_ok=True)
    (stock / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))


class _Memory:
    """Samples a kernel's resident memory and its snapshots' private pages every 5 ms."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                total = self._process.memory_info().rss
                for child in self._process.children():
                    total += child.memory_full_info().uss  # what the snapshot does not share
            except psutil.Error:
                total = 0
            self.peak = max(self.peak, total)
            time.sleep(0.005)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


class _Kernel:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.km = KernelManager(kernel_name=name)
        self.km.start_kernel(env={**os.environ, **env})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)
        self.durable: dict[int, float] = {}  # execution count -> when its checkpoint came
        self.memory = _Memory(self.km.provisioner.pid)  # type: ignore[union-attr]
        if name == "timetravel":
            comm = self.kc.session.msg("comm_open", {"comm_id": uuid.uuid4().hex,
                                                      "target_name": "timetravel", "data": {}})
            self.kc.shell_channel.send(comm)

    def _note(self, msg: dict) -> None:
        """Remember when a cell's state was announced durable (its checkpoint event)."""
        if msg["msg_type"] == "comm_msg":
            event = msg["content"]["data"]
            if event.get("event") == "checkpoint":
                count = event["commit"].get("execution_count")
                if isinstance(count, int):
                    self.durable[count] = time.perf_counter()

    def states(self) -> int:
        """Return the number of states in the time-travel kernel's history (all settled)."""
        reply = self.kc.execute_interactive(
            "", silent=True, timeout=600,
            user_expressions={"n": "get_ipython().kernel.timeline.commit_count()"})
        return int(reply["content"]["user_expressions"]["n"]["data"]["text/plain"])

    def run(self, code: str, cell_id: str) -> tuple[float, float, int | None]:
        """Return seconds to execute_reply and to idle for one cell, and its count."""
        msg = self.kc.session.msg("execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": False}, metadata={"cellId": cell_id})
        msg_id = msg["header"]["msg_id"]
        start = time.perf_counter()
        self.kc.shell_channel.send(msg)
        while True:
            reply = self.kc.get_shell_msg(timeout=600)
            if reply["parent_header"].get("msg_id") == msg_id:
                to_reply = time.perf_counter() - start
                count = reply["content"].get("execution_count")
                break
        while True:
            status = self.kc.get_iopub_msg(timeout=600)
            self._note(status)
            if (status["parent_header"].get("msg_id") == msg_id
                    and status["msg_type"] == "status"
                    and status["content"]["execution_state"] == "idle"):
                return to_reply, time.perf_counter() - start, count

    def wait_durable(self, count: int | None, timeout: float) -> None:
        """Read iopub until the cell's checkpoint event came (or ``timeout`` passed)."""
        deadline = time.perf_counter() + timeout
        while count is not None and count not in self.durable:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            try:
                self._note(self.kc.get_iopub_msg(timeout=left))
            except Exception:
                return

    def run_sequential(self, cells: list[tuple[str, str]]) -> float:
        """Send each cell the moment the last one shows idle; return seconds to the last idle."""
        start = time.perf_counter()
        for cell_id, code in cells:
            self.run(code, cell_id)
        return time.perf_counter() - start

    def run_all(self, cells: list[tuple[str, str]]) -> float:
        """Send every cell at once (as "Run All" does); return seconds to the last one's idle."""
        ids = []
        start = time.perf_counter()
        for cell_id, code in cells:
            msg = self.kc.session.msg("execute_request", {
                "code": code, "silent": False, "store_history": True, "user_expressions": {},
                "allow_stdin": False, "stop_on_error": False}, metadata={"cellId": cell_id})
            ids.append(msg["header"]["msg_id"])
            self.kc.shell_channel.send(msg)
        last = ids[-1]
        while True:
            status = self.kc.get_iopub_msg(timeout=600)
            self._note(status)
            if (status["parent_header"].get("msg_id") == last
                    and status["msg_type"] == "status"
                    and status["content"]["execution_state"] == "idle"):
                return time.perf_counter() - start

    def settle(self) -> None:
        """Wait until the time-travel kernel has committed every cell run so far."""
        self.kc.execute_interactive("get_ipython().kernel.save_now()", silent=True,
                                    timeout=600)

    def stop(self) -> int:
        """Shut the kernel down and flush what it wrote, so the next run does not share the
        disk and a CPU with its writeback (a 400 MB checkpoint's: Run All of array_patch
        scattered 0.55-1.8 s on the stock kernel run after one). Returns its peak memory."""
        peak = self.memory.stop()
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)
        os.sync()
        return peak


def _cells(name: str) -> list[tuple[str, str]]:
    if name == "tiny":
        return TINY_CELLS
    notebook = json.loads(WORKLOAD_PATHS[name].read_text())
    return [(c["id"], "".join(c["source"])) for c in notebook["cells"]
            if c["cell_type"] == "code"]


@dataclass
class Measured:
    """One workload's figures, over ``reps`` fresh runs of each kernel."""

    paced: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {"python3": [], "timetravel": []})
    durable_after_idle: list[float] = field(default_factory=list)
    run_all: dict[str, list[float]] = field(
        default_factory=lambda: {"python3": [], "timetravel": [], "durable": []})
    at_idle: dict[str, list[float]] = field(
        default_factory=lambda: {"python3": [], "timetravel": []})
    states: list[int] = field(default_factory=list)  # per time-travel run (+1: the start)
    peak: dict[str, list[int]] = field(default_factory=lambda: {"python3": [], "timetravel": []})


def _kernel(kind: str, stores: Path, label: str) -> _Kernel:
    env = {} if kind == "python3" else {"TIMETRAVEL_STORE_DIR": str(stores / label)}
    return _Kernel(kind, env)


def measure(name: str, reps: int, stores: Path, pace: float) -> Measured:
    """Run a workload ``reps`` times per kernel and rhythm; each kernel runs alone.

    The two kernels take turns by run: with both kernels' cells interleaved, the second
    one's matrix products shared the CPU with the first one's OpenBLAS workers, which spin for a
    while after a product (measured: +30-40 ms on stream_after_expensive's 50-150 ms cells,
    charged to whichever kernel ran second).
    """
    cells = _cells(name)
    out = Measured()
    for rep in range(reps):
        order = ["python3", "timetravel"] if rep % 2 == 0 else ["timetravel", "python3"]
        for kind in order:
            kernel = _kernel(kind, stores, f"{name}-paced-{rep}")
            try:
                for cell_id, code in cells:
                    to_reply, to_idle, count = kernel.run(code, cell_id)
                    idle = time.perf_counter()
                    out.paced[kind].append((to_reply, to_idle))
                    if kind == "timetravel":
                        kernel.wait_durable(count, timeout=600)
                        if count in kernel.durable:
                            out.durable_after_idle.append(max(0.0, kernel.durable[count] - idle))
                    time.sleep(max(0.0, pace - (time.perf_counter() - idle)))
            finally:
                out.peak[kind].append(kernel.stop())
        for kind in order:
            kernel = _kernel(kind, stores, f"{name}-all-{rep}")
            try:
                start = time.perf_counter()
                out.run_all[kind].append(kernel.run_all(cells))
                if kind == "timetravel":
                    kernel.settle()
                    out.run_all["durable"].append(time.perf_counter() - start)
                    out.states.append(kernel.states() - 1)
            finally:
                kernel.stop()
        for kind in order:
            kernel = _kernel(kind, stores, f"{name}-idle-{rep}")
            try:
                out.at_idle[kind].append(kernel.run_sequential(cells))
                if kind == "timetravel":
                    kernel.settle()
                    out.states.append(kernel.states() - 1)
            finally:
                kernel.stop()
    return out


def _added(stock: list[tuple[float, float]], tt: list[tuple[float, float]], reps: int,
           which: int) -> float:
    """Return the median over cells of the per-cell difference of medians over the runs.

    So one slow run of a long cell (noise of seconds-long cells on a shared machine) does not
    dominate. ``which``: 0 for time to reply, 1 for time to idle.
    """
    cells = len(stock) // reps
    return statistics.median(
        statistics.median(tt[i + r * cells][which] for r in range(reps))
        - statistics.median(stock[i + r * cells][which] for r in range(reps))
        for i in range(cells))


def summarize(name: str, reps: int, m: Measured) -> dict:
    stock, tt = m.paced["python3"], m.paced["timetravel"]
    cells = len(stock) // reps
    all_stock = statistics.median(m.run_all["python3"])
    all_tt = statistics.median(m.run_all["timetravel"])
    return {
        "workload": name,
        "cells": cells,
        "added_idle_ms_paced": 1000 * _added(stock, tt, reps, 1),
        "durable_after_idle_ms_median": 1000 * statistics.median(m.durable_after_idle or [0]),
        "durable_after_idle_ms_max": 1000 * max(m.durable_after_idle or [0]),
        "run_all_s_stock": all_stock,
        "run_all_s_tt": all_tt,
        "run_all_added_ms_per_cell": 1000 * (all_tt - all_stock) / cells,
        "durable_s_tt": statistics.median(m.run_all["durable"]),
        "at_idle_s_stock": statistics.median(m.at_idle["python3"]),
        "at_idle_s_tt": statistics.median(m.at_idle["timetravel"]),
        "states_per_cell_ok": all(n == cells for n in m.states),
        "peak_extra_mb": (max(m.peak["timetravel"]) - max(m.peak["python3"])) / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="fresh runs per workload")
    parser.add_argument("--only", help="comma-separated workloads (and/or 'tiny')")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--pace", type=float, default=1.0,
                        help="seconds between cells for the person's-pace run")
    args = parser.parse_args(argv)
    names = ["tiny", *sorted(WORKLOAD_PATHS)]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        _install_specs(Path(tmp) / "jupyter")
        os.environ["JUPYTER_PATH"] = str(Path(tmp) / "jupyter")
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            rows.append(summarize(name, args.reps,
                                  measure(name, args.reps, Path(tmp) / "stores", args.pace)))
    header = (f"{'workload':<23}{'cells':>6}{'idle +ms':>9}{'durable ms med/max':>20}"
              f"{'all s stock':>12}{'all s tt':>9}{'ratio':>7}{'+ms/cell':>9}{'durable s':>10}"
              f"{'at idle stock':>14}{'tt':>7}{'ratio':>7}{'1 state/cell':>13}{'+peak MB':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = r["run_all_s_tt"] / r["run_all_s_stock"]
        idle_ratio = r["at_idle_s_tt"] / r["at_idle_s_stock"]
        durable = f"{r['durable_after_idle_ms_median']:.0f}/{r['durable_after_idle_ms_max']:.0f}"
        print(f"{r['workload']:<23}{r['cells']:>6}{r['added_idle_ms_paced']:>9.1f}{durable:>20}"
              f"{r['run_all_s_stock']:>12.3f}{r['run_all_s_tt']:>9.3f}{ratio:>7.2f}"
              f"{r['run_all_added_ms_per_cell']:>9.1f}{r['durable_s_tt']:>10.3f}"
              f"{r['at_idle_s_stock']:>14.3f}{r['at_idle_s_tt']:>7.3f}{idle_ratio:>7.2f}"
              f"{'yes' if r['states_per_cell_ok'] else 'NO':>13}{r['peak_extra_mb']:>9.0f}")
    print(f"({args.reps} fresh runs of each kernel per rhythm. idle +ms: median over cells of the "
          f"per-cell difference of medians of the time to idle, {args.pace:g} s between cells; "
          "durable ms: from a cell's idle to its checkpoint event at that pace, median/max; "
          "all s: Run All (every cell sent at once) to the last idle, median; ratio = "
          "time-travel / stock; +ms/cell: the Run All difference per cell; durable s: until "
          "the last state is committed; at idle: each cell sent the moment the last showed "
          "idle; 1 state/cell: every time-travel run kept as many states as cells; +peak MB: "
          "the time-travel kernel's peak resident memory plus its snapshots' own pages, less "
          "the stock kernel's peak)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
