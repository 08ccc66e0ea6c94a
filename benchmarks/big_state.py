"""Benchmark: multi-GB states, side by side with the stock kernel (and the floor) in one run.

    python -m benchmarks.big_state [--sizes 2 4 10] [--mix 0.6,0.2,0.2] [--pace 1]
        [--markdown benchmarks/results/big_state.md]

For each size S (GB) the state is an array ``a`` (mix[0] of S, random floats), a frame ``df``
made from its first values (mix[1]) and a dict ``parts`` of 16 arrays (mix[2]). The stock
python3 kernel and the time-travel kernel each run the same cells alone, at a person's pace
(``--pace`` seconds after each): imports, the three values, then small edits. Measured:

- first checkpoint: each value's cell, time to idle against the stock kernel's, and the time
  until its state is durable (``save_now``) after the idle;
- later cells: added time to idle (median and most);
- time to durable after the last cell, the store's size on disk;
- peak memory while the cells run (the kernel's resident memory plus its snapshot children's
  private pages) against the stock kernel's peak;
- the state back after SIGKILL: a new kernel from its start to ready with the state (exact:
  digests compared), against the floor: the stock kernel's start with the same imports plus
  reading every file of the store; its peak memory meanwhile, and its resident memory after,
  against the stock kernel holding the same values;
- the restore in one process (GB/s of the state's buffers), after the kernel is shut down.

Machine-wide memory: about 1.2 x S at most (one kernel or restoring process at a time; the
store's files add page cache, which the system reclaims). Results go to stdout (and to
``--markdown``'s file).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks.background import private_bytes
from benchmarks.kernel_latency import _install_specs, _Kernel

GB = 1e9
NOTEBOOK = "big_state.ipynb"
EDITS = ["a[:1_000_000] += 1.0", "df.iloc[:1000, 0] = 0.0", "x = 1",
         "parts['p0'][:10] = -1.0", "total = float(a[:1_000_000].sum())", "x += 1"]
DIGEST = ("__import__('json').dumps([__import__('xxhash').xxh3_64_hexdigest(a.data), "
          "[__import__('xxhash').xxh3_64_hexdigest(__import__('numpy').ascontiguousarray("
          "df[c].to_numpy()).data) for c in df], "
          "sorted((k, __import__('xxhash').xxh3_64_hexdigest(v.data)) "
          "for k, v in parts.items()), x, total])")


def cells(size_gb: float, mix: tuple[float, float, float]) -> list[tuple[str, str]]:
    """Return (label, code) of the cells that make the state, then the edits."""
    n_a = int(size_gb * GB * mix[0] / 8)
    n_df = int(size_gb * GB * mix[1] / 8) // 8 * 8
    n_part = max(1, int(size_gb * GB * mix[2] / 8 / 16))
    return [
        ("imports", "import numpy as np\nimport pandas as pd\nrng = np.random.default_rng(1)"),
        ("array", f"a = rng.random({max(n_a, n_df)})"),
        ("frame", f"df = pd.DataFrame(a[:{n_df}].reshape(-1, 8), columns=list('abcdefgh'))"),
        ("dict of arrays", f"parts = {{f'p{{i}}': rng.random({n_part}) for i in range(16)}}"),
        *((f"edit {i + 1}", code) for i, code in enumerate(EDITS)),
    ]


class Sampler:
    """Samples a process's memory every 20 ms: resident, plus its children's private pages."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        try:
            used = self.process.memory_info().rss
            return used + sum(private_bytes(c.pid) for c in self.process.children())
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Run:
    idle: dict[str, float] = field(default_factory=dict)
    durable: dict[str, float] = field(default_factory=dict)
    peak: int = 0
    resident: int = 0
    digest: str = ""


def _resident(kernel: _Kernel) -> int:
    """Return the kernel's resident memory once its garbage is collected."""
    kernel.kc.execute_interactive("import gc as _gc; _gc.collect()", silent=True, timeout=600)
    return psutil.Process(kernel.km.provisioner.pid).memory_info().rss


def run_cells(kind: str, env: dict[str, str], steps: list[tuple[str, str]], pace: float
              ) -> tuple[Run, _Kernel]:
    """Run the cells in a fresh kernel; return what was measured and the kernel (running)."""
    kernel = _Kernel(kind, env)
    sampler = Sampler(kernel.km.provisioner.pid)
    run = Run()
    for label, code in steps:
        _, idle, _ = kernel.run(code, label)
        run.idle[label] = idle
        if kind == "timetravel":
            started = time.perf_counter()
            kernel.settle()
            run.durable[label] = time.perf_counter() - started
        time.sleep(pace)
    run.peak = sampler.stop()
    run.resident = _resident(kernel)
    run.digest = _digest(kernel)
    return run, kernel


def _digest(kernel: _Kernel) -> str:
    reply = kernel.kc.execute_interactive("", silent=True, user_expressions={"d": DIGEST},
                                          timeout=600)
    return reply["content"]["user_expressions"]["d"]["data"]["text/plain"]


def state_back(env: dict[str, str]) -> tuple[float, int, int, str, _Kernel]:
    """Start a kernel on the killed one's store; return seconds to ready, peak and resident
    memory, the state's digest, and the kernel."""
    started = time.perf_counter()
    holder: dict[str, _Kernel] = {}
    thread = threading.Thread(target=lambda: holder.setdefault("k", _Kernel("timetravel", env)))
    thread.start()
    peak = 0
    while thread.is_alive():
        for proc in psutil.Process().children(recursive=True):
            try:
                if "timetravel_kernel" in " ".join(proc.cmdline()):
                    peak = max(peak, proc.memory_info().rss)
            except psutil.Error:
                pass
        time.sleep(0.02)
    thread.join()
    seconds = time.perf_counter() - started
    kernel = holder["k"]
    return seconds, peak, _resident(kernel), _digest(kernel), kernel


def floor(store: Path) -> tuple[float, float]:
    """Return the stock kernel's start with the imports, and the time to read the store."""
    started = time.perf_counter()
    stock = _Kernel("python3", {})
    stock.run("import numpy as np\nimport pandas as pd", "imports")
    start = time.perf_counter() - started
    stock.stop()
    started = time.perf_counter()
    for path in store.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                while handle.read(16 << 20):
                    pass
    return start, time.perf_counter() - started


IN_PROCESS = """
import sys, time, json
import numpy, pandas
from timetravel_kernel.timeline import Timeline
timeline = Timeline.open(sys.argv[1])
ns = {"__name__": "__main__"}
timeline.start(ns)
commit = timeline.restorable
size = sum(b.size for _, c in timeline._store.load_tree(commit.tree).items()
           for b in timeline._store.load_covar(c).buffers)
started = time.perf_counter()
timeline.restore(ns)
seconds = time.perf_counter() - started
timeline.close()
print(json.dumps({"seconds": seconds, "bytes": size}))
"""


def in_process(store: Path) -> tuple[float, float]:
    """Return (seconds, GB) of a restore in a fresh process (imports done before timing)."""
    done = subprocess.run([sys.executable, "-c", IN_PROCESS, str(store)], capture_output=True,
                          text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["seconds"], result["bytes"] / GB


def measure(size: float, mix: tuple[float, float, float], pace: float, root: Path) -> dict:
    steps = cells(size, mix)
    stock, kernel = run_cells("python3", {}, steps, pace)
    kernel.stop()
    stores = root / f"stores-{size:g}"
    env = {"TIMETRAVEL_STORE_DIR": str(stores), "JPY_SESSION_NAME": str(root / NOTEBOOK)}
    tt, kernel = run_cells("timetravel", env, steps, pace)
    store = next(p.parent for p in stores.rglob("CURRENT"))
    store_bytes = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    kernel.kc.stop_channels()
    kernel.km.signal_kernel(9)  # SIGKILL, as the OOM killer does
    while kernel.km.is_alive():
        time.sleep(0.05)
    kernel.km.cleanup_resources()
    back_s, back_peak, back_resident, back_digest, kernel = state_back(env)
    kernel.stop()
    start_s, read_s = floor(store)
    restore_s, restore_gb = in_process(store)
    return {"size": size, "stock": stock, "tt": tt, "store_bytes": store_bytes,
            "back_s": back_s, "back_peak": back_peak, "back_resident": back_resident,
            "exact": back_digest == tt.digest == stock.digest, "floor_start_s": start_s,
            "floor_read_s": read_s, "restore_s": restore_s, "restore_gb": restore_gb}


def report(row: dict) -> str:
    stock, tt = row["stock"], row["tt"]
    made = ["array", "frame", "dict of arrays"]
    later = [label for label in tt.idle if label.startswith("edit")]
    added = [1000 * (tt.idle[k] - stock.idle[k]) for k in later]
    floor_s = row["floor_start_s"] + row["floor_read_s"]
    lines = [f"### {row['size']:g} GB state (exact after SIGKILL: {row['exact']})", "",
             "| measure | stock kernel / floor | time-travel | ratio or difference |",
             "|---|---:|---:|---:|"]
    for label in made:
        lines.append(f"| first checkpoint: `{label}` cell, time to idle | "
                     f"{stock.idle[label]:.2f} s | {tt.idle[label]:.2f} s (durable "
                     f"{tt.durable[label]:.2f} s after) | "
                     f"{1000 * (tt.idle[label] - stock.idle[label]):+.0f} ms |")
    lines += [
        f"| later cells: added time to idle, median / most | | | {statistics.median(added):+.0f}"
        f" / {max(added):+.0f} ms |",
        f"| time to durable after the last cell | | {tt.durable[later[-1]]:.2f} s | |",
        f"| store on disk | | {row['store_bytes'] / GB:.2f} GB | |",
        f"| peak memory while the cells run | {stock.peak / GB:.2f} GB | {tt.peak / GB:.2f} GB |"
        f" {tt.peak / stock.peak:.2f}x |",
        f"| state back after SIGKILL (start to ready) | {floor_s:.2f} s (start + imports "
        f"{row['floor_start_s']:.2f} s, reading the store {row['floor_read_s']:.2f} s) | "
        f"{row['back_s']:.2f} s | {row['back_s'] / floor_s:.2f}x |",
        f"| peak memory while restoring | {stock.resident / GB:.2f} GB (stock holding it) | "
        f"{row['back_peak'] / GB:.2f} GB | {row['back_peak'] / stock.resident:.2f}x |",
        f"| resident memory after the restore | {stock.resident / GB:.2f} GB | "
        f"{row['back_resident'] / GB:.2f} GB | {row['back_resident'] / stock.resident:.2f}x |",
        f"| restore in one process | | {row['restore_s']:.2f} s for {row['restore_gb']:.2f} GB"
        f" | {row['restore_gb'] / row['restore_s']:.2f} GB/s |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[2.0, 4.0, 10.0])
    parser.add_argument("--mix", default="0.6,0.2,0.2",
                        help="fractions of the size in the array, the frame, the dict")
    parser.add_argument("--pace", type=float, default=1.0)
    parser.add_argument("--markdown", help="also write the tables to this file")
    args = parser.parse_args()
    mix = tuple(float(f) for f in args.mix.split(","))
    assert len(mix) == 3
    root = Path(tempfile.mkdtemp(prefix="tt-big-"))
    try:
        _install_specs(root / "jupyter")
        os.environ["JUPYTER_PATH"] = str(root / "jupyter")
        sections = []
        for size in args.sizes:
            print(f"{size:g} GB ...", file=sys.stderr, flush=True)
            sections.append(report(measure(size, mix, args.pace, root)))  # type: ignore[arg-type]
            print(sections[-1], flush=True)
            shutil.rmtree(root / f"stores-{size:g}", ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not args.markdown:
        return
    Path(args.markdown).write_text(
        "# Multi-GB states: `python -m benchmarks.big_state --sizes "
        f"{' '.join(f'{s:g}' for s in args.sizes)} --mix {args.mix}`\n\n"
        f"Each kernel runs alone, {args.pace:g} s between cells; one run.\n\n"
        + "\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
