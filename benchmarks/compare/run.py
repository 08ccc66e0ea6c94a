"""Run every notebook through the four systems in one run and measure them side by side.

For each notebook the four kernels run at once, and each cell is sent to one system after the
other (the order rotates per notebook), so drift on the shared machine hits all alike.

Per system and notebook:
- added latency per cell: the median over cells of (system - stock) seconds from
  execute_request to execute_reply, and to the idle status (time-travel checkpoints after the
  reply; Kishu and the dill hook before it);
- storage on disk after the last cell (time-travel's store, Kishu's .kishudb, all dill files);
- undo (from the last cell's state to the one before), checkout to the first cell's state and
  then to the last's, timed request to reply from the client;
- the state back after SIGKILL: a fresh kernel started until its state is the last one again
  (kernel start included; the stock kernel's start is shown for reference);
- peak resident memory of the kernel process while running cells and moves (psutil);
- whether each state reached (undo, first, last, after SIGKILL) has exactly the fingerprint
  recorded after that cell (fingerprint.py, computed inside the kernel the same way for all).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import timetravel_kernel
from tests.kernel.harness import install_test_specs
from tests.workloads import WORKLOAD_PATHS

from . import kishu_env, report
from .rows import Row
from .session import Session
from .systems import DillSystem, KishuSystem, StockSystem, System, TimeTravelSystem

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
QUICK = ["frame_edits", "awkward_objects"]
SYSTEMS: list[type[System]] = [StockSystem, TimeTravelSystem, KishuSystem, DillSystem]
# Cells that only make sense on the time-travel kernel (its magics) or that kill the kernel
# on purpose (the benchmark makes its own crash): left out for every system alike.
SYSTEM_SPECIFIC = ("%tt", "%timetravel", "os._exit(")


def notebook_cells(path: Path) -> tuple[list[tuple[str, str]], int]:
    """Return (cell id, code) of a notebook's code cells, and how many were left out."""
    notebook = json.loads(path.read_text())
    cells = [(c.get("id") or f"cell-{i}", "".join(c["source"]))
             for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code"]
    kept = [(i, code) for i, code in cells if not any(s in code for s in SYSTEM_SPECIFIC)]
    return kept, len(cells) - len(kept)


def _listed(names: list[str], limit: int = 8) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def compare(recorded: dict, now: dict) -> tuple[bool, str]:
    """Return whether two fingerprints are equal, and if not, what differs."""
    if recorded["digest"] == now["digest"] and recorded["unsaveable"] == now["unsaveable"]:
        return True, ""
    before = {**recorded["names"], **recorded["unsaveable"]}
    after = {**now["names"], **now["unsaveable"]}
    missing = sorted(set(before) - set(after))
    extra = sorted(set(after) - set(before))
    lost = sorted(n for n in recorded["names"] if n in now["unsaveable"])
    differ = sorted(n for n in recorded["names"]
                    if n in now["names"] and now["names"][n] != recorded["names"][n])
    parts = [f"{what} {_listed(names)}" for what, names in (
        ("missing", missing), ("extra", extra), ("no longer picklable", lost),
        ("different", differ)) if names]
    return False, "; ".join(parts) or "aliasing between names differs"


class NotebookRun:
    """The four systems on one notebook."""

    def __init__(self, path: Path, root: Path, order: list[type[System]]) -> None:
        self.name = path.stem
        self.cells, self.left_out = notebook_cells(path)
        self.systems: list[System] = []
        for kind in order:
            work = root / self.name / kind.name
            work.mkdir(parents=True)
            copy = work / path.name
            shutil.copyfile(path, copy)
            copy.chmod(0o644)
            self.systems.append(kind(work, copy))
        self.rows = {s.name: Row(self.name, s.name, len(self.cells)) for s in self.systems}
        if self.left_out:
            for row in self.rows.values():
                row.notes.append(f"{self.left_out} cells left out (time-travel magics, os._exit)")
        self.sessions: dict[str, Session] = {}
        self.states: dict[str, list[dict]] = {s.name: [] for s in self.systems}

    def run(self) -> list[Row]:
        try:
            for system in self.systems:
                self._guard(system, "start", self._start, system)
            for index, (cell_id, code) in enumerate(self.cells):
                # Rotate who goes first, so no system always runs a cell cold (or warm).
                turn = index % len(self.systems)
                for system in self.systems[turn:] + self.systems[:turn]:
                    if system.name in self.sessions:
                        self._guard(system, "cell", self._cell, system, index, cell_id, code)
            self._stop("stock")
            for system in self.systems:
                if system.restorable and system.name in self.sessions:
                    self._guard(system, "moves", self._moves, system)
        finally:
            for name in list(self.sessions):
                self._stop(name)
        return [self.rows[s.name] for s in self.systems]

    def _guard(self, system: System, what: str, function: object, *args: object) -> None:
        try:
            function(*args)  # type: ignore[operator]
        except Exception as exc:  # one system failing must not stop the others
            self.rows[system.name].notes.append(f"{what} failed: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
            self._stop(system.name, kill=True)

    def _stop(self, name: str, kill: bool = False) -> None:
        session = self.sessions.pop(name, None)
        if session is not None:
            self.rows[name].peak_rss = max(self.rows[name].peak_rss or 0, session.rss.peak)
            session.kill() if kill else session.shutdown()

    def _start(self, system: System) -> None:
        session = system.start()
        self.sessions[system.name] = session
        self.rows[system.name].start_s = session.start_seconds

    def _cell(self, system: System, index: int, cell_id: str, code: str) -> None:
        session = self.sessions[system.name]
        reply, idle, status = session.run_cell(code, cell_id)
        row = self.rows[system.name]
        row.reply_s.append(reply)
        row.idle_s.append(idle)
        if status != "ok":
            row.notes.append(f"cell {index + 1} ended with status {status}")
        if system.restorable:
            system.after_cell(session, index, code)
            self.states[system.name].append(session.fingerprint())

    def _check(self, system: System, what: str, session: Session, index: int) -> None:
        exact, why = compare(self.states[system.name][index], session.fingerprint())
        self.rows[system.name].exact[what] = exact
        if not exact:
            self.rows[system.name].notes.append(f"{what}: not exact ({why})")

    def _moves(self, system: System) -> None:
        session, row = self.sessions[system.name], self.rows[system.name]
        refs = system.refs(session, [code for _, code in self.cells])
        row.storage_bytes = system.storage_bytes()
        last = len(self.cells) - 1
        steps = [("undo", last - 1, lambda: system.undo(session, refs)),
                 ("first", 0, lambda: system.checkout(session, refs[0])),
                 ("last", last, lambda: system.checkout(session, refs[last]))]
        for what, index, move in steps:
            try:
                setattr(row, f"{what}_s", move())
            except Exception as exc:  # a failed move is a result, not a crash
                row.notes.append(f"{what} failed: {type(exc).__name__}: {exc}")
                row.exact[what] = False
                continue
            self._check(system, what, session, index)
        self._stop(system.name, kill=True)  # SIGKILL, as a crash or the OOM killer would
        started = time.perf_counter()
        try:
            restored = system.restore(refs)
        except Exception as exc:  # as above; restore() killed the kernel it started
            row.notes.append(f"restore failed: {type(exc).__name__}: {exc}")
            row.exact["restore"] = False
            return
        row.restore_s = time.perf_counter() - started
        self.sessions[system.name] = restored
        self._check(system, "restore", restored, last)


def machine_info(kishu_dir: Path | None) -> dict[str, str]:
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    info["timetravel-kernel"] = f"{timetravel_kernel.__version__} ({git_head()})"
    for package in ("ipykernel", "jupyter_client", "dill", "numpy",
                    "pandas", "rocksdict"):
        info[package] = version(package)
    if kishu_dir is not None:
        info["kishu"] = kishu_env.installed_version(kishu_dir, "kishu")
    return info


def git_head() -> str:
    done = subprocess.run(["git", "-C", str(EXAMPLES_DIR.parent), "describe", "--always",
                           "--dirty"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "not a git checkout"


def notebooks(only: list[str] | None, quick: bool) -> list[Path]:
    # the shared workloads, the project's own (object_graphs, dated_frame_edits), the examples
    paths = [WORKLOAD_PATHS[n] for n in sorted(WORKLOAD_PATHS)] + sorted(
        EXAMPLES_DIR.glob("*.ipynb"))
    wanted = only or (QUICK if quick else None)
    return [p for p in paths if wanted is None or p.stem in wanted]


def install_specs(root: Path, kishu_python: Path | None) -> None:
    install_test_specs(root)
    if kishu_python is not None:
        spec = root / "kernels" / "kishu"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [str(kishu_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (Kishu venv)", "language": "python"}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"only {', '.join(QUICK)} (a few minutes)")
    parser.add_argument("--only", help="comma-separated notebook names")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    parser.add_argument("--kishu-venv", type=Path, default=kishu_env.default_dir(),
                        help="where Kishu's own environment is built (reused)")
    parser.add_argument("--no-kishu", action="store_true", help="leave Kishu out")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the table and plots from OUT/compare.json, run nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        saved = json.loads((args.out / "compare.json").read_text())
        print(report.write(args.out, saved["info"], [Row(**r) for r in saved["rows"]]))
        return 0

    kishu_python, kishu_problem = None, "left out (--no-kishu)"
    if not args.no_kishu:
        try:
            kishu_python = kishu_env.ensure(args.kishu_venv)
        except (OSError, subprocess.CalledProcessError) as exc:
            # The rest of the comparison stands without it; the report says why.
            kishu_problem = f"could not be installed: {exc} {getattr(exc, 'stderr', '')}"
            print(f"Kishu {kishu_problem}", file=sys.stderr)
    systems = [s for s in SYSTEMS if kishu_python is not None or s is not KishuSystem]
    paths = notebooks(args.only.split(",") if args.only else None, args.quick)
    rows: list[Row] = []
    root = Path(tempfile.mkdtemp(prefix="tt-compare-"))
    old_path = os.environ.get("JUPYTER_PATH")
    try:
        install_specs(root / "jupyter", kishu_python)
        os.environ["JUPYTER_PATH"] = str(root / "jupyter")
        for number, path in enumerate(paths):
            order = systems[number % len(systems):] + systems[:number % len(systems)]
            print(f"running {path.stem} ({', '.join(s.name for s in order)}) ...",
                  file=sys.stderr, flush=True)
            run = NotebookRun(path, root / "work", order)
            rows.extend(run.run())
    finally:
        if old_path is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old_path
        shutil.rmtree(root, ignore_errors=True)
    info = machine_info(args.kishu_venv if kishu_python else None)
    if kishu_python is None:
        info["kishu"] = kishu_problem.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps(
        {"info": info, "rows": [asdict(r) for r in rows]}, indent=1))
    print(report.write(args.out, info, rows))
    return 0

