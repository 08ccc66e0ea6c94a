"""Latency as a client sees it: execute_request -> execute_reply and -> idle, per cell.

Runs every workload notebook on the stock python3 kernel and on the time-travel kernel in the
same run, plus a stream of tiny cells that shows the fixed cost per cell, twice: at a person's
pace (each kernel alone, ``--pace`` seconds after each cell) and as "Run All" (each kernel
alone, every cell sent at once as a frontend does, timed to the last cell's idle; the
time-travel kernel also to "durable": its last state committed). Prints a table;
targets: median added time to execute_reply <= 2 ms, median added time to idle at a person's
pace <= 20 ms, and Run All total time to idle <= 1.2x the stock kernel's.

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
import time
from pathlib import Path

from jupyter_client.manager import KernelManager

from timetravel_kernel.kernel.kernelspec import write_kernel_spec

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


class _Kernel:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.km = KernelManager(kernel_name=name)
        self.km.start_kernel(env={**os.environ, **env})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str, cell_id: str) -> tuple[float, float]:
        """Return seconds to execute_reply and to idle for one cell."""
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
                break
        while True:
            status = self.kc.get_iopub_msg(timeout=600)
            if (status["parent_header"].get("msg_id") == msg_id
                    and status["msg_type"] == "status"
                    and status["content"]["execution_state"] == "idle"):
                return to_reply, time.perf_counter() - start

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
            if (status["parent_header"].get("msg_id") == last
                    and status["msg_type"] == "status"
                    and status["content"]["execution_state"] == "idle"):
                return time.perf_counter() - start

    def settle(self) -> None:
        """Wait until the time-travel kernel has committed every cell run so far."""
        self.kc.execute_interactive("get_ipython().kernel.save_now()", silent=True,
                                    timeout=600)

    def stop(self) -> None:
        """Shut the kernel down and flush what it wrote, so the next run does not share the
        disk and a CPU with its writeback (a 400 MB checkpoint's: Run All of array_patch
        scattered 0.55-1.8 s on the stock kernel run after one)."""
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)
        os.sync()


def _cells(name: str) -> list[tuple[str, str]]:
    if name == "tiny":
        return TINY_CELLS
    notebook = json.loads(WORKLOAD_PATHS[name].read_text())
    return [(c["id"], "".join(c["source"])) for c in notebook["cells"]
            if c["cell_type"] == "code"]


def measure(name: str, reps: int, stores: Path,
            pace: float = 0.0) -> dict[str, list[tuple[float, float]]]:
    """Return per-cell (to reply, to idle) times of both kernels over ``reps`` fresh runs.

    ``pace``: seconds to wait after each cell, as a person reading would. Each kernel runs its
    cells alone (the two take turns by run): with both kernels' cells interleaved, the second
    one's matrix products shared the CPU with the first one's OpenBLAS workers, which spin for a
    while after a product (measured: +30-40 ms on stream_after_expensive's 50-150 ms cells,
    charged to whichever kernel ran second).
    """
    times: dict[str, list[tuple[float, float]]] = {"python3": [], "timetravel": []}
    for rep in range(reps):
        order = ["python3", "timetravel"] if rep % 2 == 0 else ["timetravel", "python3"]
        for kind in order:
            env = {} if kind == "python3" else {
                "TIMETRAVEL_STORE_DIR": str(stores / f"{name}-{rep}")}
            kernel = _Kernel(kind, env)
            try:
                for cell_id, code in _cells(name):
                    times[kind].append(kernel.run(code, cell_id))
                    time.sleep(pace)
            finally:
                kernel.stop()
    return times


def run_all(name: str, reps: int, stores: Path) -> dict[str, list[float]]:
    """Return Run All seconds per fresh run: stock, time-travel to idle, and to durable."""
    runs: dict[str, list[float]] = {"python3": [], "timetravel": [], "durable": []}
    for rep in range(reps):
        order = ["python3", "timetravel"] if rep % 2 == 0 else ["timetravel", "python3"]
        for kind in order:
            env = {} if kind == "python3" else {
                "TIMETRAVEL_STORE_DIR": str(stores / f"{name}-all-{rep}")}
            kernel = _Kernel(kind, env)
            try:
                start = time.perf_counter()
                runs[kind].append(kernel.run_all(_cells(name)))
                if kind == "timetravel":
                    kernel.settle()
                    runs["durable"].append(time.perf_counter() - start)
            finally:
                kernel.stop()
    return runs


def _after_reply(times: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Return (to reply, reply to idle) pairs: the kernel's own work after the reply."""
    return [(reply, idle - reply) for reply, idle in times]


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


def summarize(name: str, reps: int, paced: dict[str, list[tuple[float, float]]],
              all_runs: dict[str, list[float]]) -> dict:
    stock, tt = paced["python3"], paced["timetravel"]
    return {
        "workload": name,
        "cells": len(stock) // reps,
        "reply_ms_stock": 1000 * statistics.median(s[0] for s in stock),
        "reply_ms_tt": 1000 * statistics.median(t[0] for t in tt),
        "added_reply_ms": 1000 * _added(stock, tt, reps, 0),
        "added_idle_ms_paced": 1000 * _added(stock, tt, reps, 1),
        "added_after_reply_ms": 1000 * _added(_after_reply(stock), _after_reply(tt), reps, 1),
        "run_all_s_stock": statistics.median(all_runs["python3"]),
        "run_all_s_tt": statistics.median(all_runs["timetravel"]),
        "durable_s_tt": statistics.median(all_runs["durable"]),
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
            stores = Path(tmp) / "stores"
            rows.append(summarize(name, args.reps, measure(name, args.reps, stores, args.pace),
                                  run_all(name, args.reps, stores)))
    header = (f"{'workload':<18}{'cells':>6}{'reply ms stock':>16}{'reply ms tt':>13}"
              f"{'added ms':>10}{'added idle ms':>15}{'after reply':>13}{'all s stock':>13}"
              f"{'all s tt':>10}"
              f"{'ratio':>7}{'durable s':>11}")
    print(header)
    print("-" * len(header))
    for r in rows:
        stock = r["run_all_s_stock"]
        ratio = r["run_all_s_tt"] / stock if stock else float("nan")
        print(f"{r['workload']:<18}{r['cells']:>6}{r['reply_ms_stock']:>16.2f}"
              f"{r['reply_ms_tt']:>13.2f}{r['added_reply_ms']:>10.2f}"
              f"{r['added_idle_ms_paced']:>15.2f}{r['added_after_reply_ms']:>13.2f}"
              f"{stock:>13.3f}"
              f"{r['run_all_s_tt']:>10.3f}{ratio:>7.2f}{r['durable_s_tt']:>11.3f}")
    print(f"(reply and added: {args.reps} fresh runs at a person's pace, {args.pace:g} s between "
          "cells; reply: median over cells; added: median over cells of the per-cell "
          "difference of medians, to reply and to idle; after reply: the same for the time "
          "from reply to idle (the kernel's own work, without the cell's noise); all s: Run "
          "All (every cell sent at once) to the last idle, median over runs; ratio = "
          "time-travel / stock; durable s: until the time-travel kernel's last state is "
          "committed)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
