"""Benchmark: moving a session to another machine through S3-compatible object storage.

    python -m benchmarks.migrate [--workloads frame_edits expensive_cells] [--repeat 3]
        [--markdown benchmarks/results/migrate.md]

Starts its own SeaweedFS (the tests' server, on free 127.0.0.1 ports). For each workload, one
"machine" runs the notebook with a checkpoint after every cell and pushes the history; then:

- push: bytes sent, requests and time of the full push; then the incremental push after a
  small cell (``tt_counter += 1``), which should be at most 10 KB and 4 requests;
- new machine: a fresh Python process with an empty store pulls what the latest state needs,
  opens it and restores it (what a kernel does before its first cell; the rest of the history
  follows in its background thread);
- re-run: a fresh process runs the notebook's cells from the top;
- dill: ``dill.dump_module`` of the namespace (``dump_session``'s engine) + upload, then in a
  fresh process download + ``dill.load_module``;
- the floor of a move: a fresh process importing what the restored state needs (the modules
  of its values), plus the bytes the new machine fetched divided by the link's throughput
  (the raw client's best get of 16 MiB objects, measured on the same server in the same run).

``expensive_cells`` (benchmarks/workloads/expensive/) is a session worth moving: a model
trained for ~30 s and a frame made by a slow aggregation. Targets there: state back >= 5x
faster than re-running, and within 1.5x of the floor. Each fresh process is timed from its
first line, imports included, median of ``--repeat``. Results go to stdout (and to
``--markdown``'s file).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

_STARTED = time.perf_counter()

MB = 1e6
DEFAULT_WORKLOADS = ["frame_edits", "ml_sklearn", "array_patch", "many_small",
                     "awkward_objects", "expensive_cells"]
KEY = b"benchmark-signing-key-0123456789"
EXPENSIVE = Path(__file__).resolve().parent / "workloads" / "expensive"


def load_workload(name: str) -> list[str]:
    """Return a workload's code cells (the shared notebooks, or the expensive ones here)."""
    path = EXPENSIVE / f"{name}.ipynb"
    if path.exists():
        notebook = json.loads(path.read_text())
        return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    from tests.workloads import load_cells

    return load_cells(name)


def _remote(server_env: dict[str, str], url: str, notebook: str):
    from timetravel_kernel.remote import Remote, Signer, open_transport
    from timetravel_kernel.session.remotes import s3_options_from_env

    transport = open_transport(url, s3_options_from_env(server_env))
    return Remote(transport, notebook, signer=Signer(KEY))


# -- the fresh processes ------------------------------------------------------------------

def child_restore(args: argparse.Namespace) -> dict:
    from timetravel_kernel.timeline import Timeline

    env = dict(os.environ)
    # As a kernel does before its first cell: open the (new) store, fetch only what the latest
    # state needs (the history follows later), start the session and restore.
    timeline = Timeline.open(args.store)
    pulled = _remote(env, args.url, args.workload).pull(timeline.object_store, only_head=True)
    timeline.reload_history()
    ns: dict = {"__name__": "__main__"}
    timeline.start(ns)
    timeline.restore(ns)
    timeline.close()
    seconds = time.perf_counter() - _STARTED
    modules = {v.__name__ for v in ns.values() if isinstance(v, types.ModuleType)}
    modules |= {type(v).__module__ for v in ns.values()}
    return {"seconds": seconds, "bytes": pulled.bytes_received,
            "modules": sorted(modules - {"builtins", "__main__"})}


def child_imports(args: argparse.Namespace) -> float:
    """The floor's process: import what the restored state needs, nothing else."""
    for name in filter(None, args.modules.split(",")):
        importlib.import_module(name)
    return time.perf_counter() - _STARTED


def child_rerun(args: argparse.Namespace) -> float:
    from tests.workloads import close_resources, fresh_namespace, run_cell

    ns = fresh_namespace()
    for code in load_workload(args.workload):
        run_cell(ns, code)
    elapsed = time.perf_counter() - _STARTED
    close_resources(ns)
    return elapsed


def child_dill(args: argparse.Namespace) -> float:
    import dill

    env = dict(os.environ)
    remote = _remote(env, args.url, args.workload)
    found = remote.transport.get(f"dill/{args.workload}.pkl")
    assert found is not None
    Path(args.store).write_bytes(found.data)
    dill.load_module(args.store)
    return time.perf_counter() - _STARTED


CHILDREN = {"restore": child_restore, "rerun": child_rerun, "dill": child_dill,
            "imports": child_imports}


def fresh_process(mode: str, workload: str, store: Path, url: str, env: dict[str, str],
                  modules: str = "") -> float | dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.migrate", "--child", mode, "--workload", workload,
         "--store", str(store), "--url", url, "--modules", modules],
        capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, **env})  # credentials by environment, never on a command line
    if out.returncode != 0:
        raise RuntimeError(f"{mode} {workload} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def link_throughput(url: str, env: dict[str, str]) -> float:
    """Return MB/s of the raw client's best get of 16 MiB objects (one, or four at once)."""
    from concurrent.futures import ThreadPoolExecutor

    from timetravel_kernel.remote import open_transport
    from timetravel_kernel.session.remotes import s3_options_from_env

    transport = open_transport(url, s3_options_from_env(env))
    paths = [f"link/{i}" for i in range(8)]
    for path in paths:
        transport.put_if_absent(path, os.urandom(16 << 20))
    best = 0.0
    for workers in (1, 4, 1, 4):
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(transport.get, paths))
        best = max(best, len(paths) * (16 << 20) / MB / (time.perf_counter() - started))
    transport.close()
    return best


# -- one workload -------------------------------------------------------------------------

def run_workload(name: str, url: str, env: dict[str, str], folder: Path, repeat: int,
                 link: float) -> dict:
    import dill

    from tests.workloads import close_resources, fresh_namespace, run_cell
    from timetravel_kernel.timeline import CellInfo, Timeline

    timeline = Timeline.open(folder / "machine-a")
    ns = fresh_namespace()
    timeline.start(ns)
    for number, code in enumerate(load_workload(name), start=1):
        run_cell(ns, code)
        timeline.checkpoint(ns, CellInfo(code=code, execution_count=number))
    remote = _remote(env, url, name)
    started = time.perf_counter()
    full = remote.push(timeline.object_store)
    push_s = time.perf_counter() - started
    run_cell(ns, "tt_counter = 0")
    timeline.checkpoint(ns, CellInfo(code="tt_counter = 0"))
    remote.push(timeline.object_store)
    run_cell(ns, "tt_counter += 1")
    timeline.checkpoint(ns, CellInfo(code="tt_counter += 1"))
    small = remote.push(timeline.object_store)
    timeline.close()

    dill_note = ""
    dill_send_s = 0.0
    module = types.ModuleType("__main__")
    module.__dict__.update(ns)
    started = time.perf_counter()
    try:
        path = folder / "session.pkl"
        dill.dump_module(str(path), module=module)
        remote.transport.put_if_tag(f"dill/{name}.pkl", path.read_bytes(),
                                    (remote.transport.get(f"dill/{name}.pkl") or
                                     types.SimpleNamespace(tag=None)).tag)
        dill_send_s = time.perf_counter() - started
    except Exception as exc:  # dill fails on some workloads; the table says which and why
        dill_note = f"fails: {type(exc).__name__}"
    close_resources(ns)

    restore_s, rerun_s, dill_load_s, floor_s = [], [], [], []
    for attempt in range(repeat):
        store = folder / f"machine-b-{attempt}"
        moved = fresh_process("restore", name, store, url, env)
        assert isinstance(moved, dict)
        restore_s.append(moved["seconds"])
        shutil.rmtree(store, ignore_errors=True)
        imports = fresh_process("imports", name, store, url, env, ",".join(moved["modules"]))
        floor_s.append(float(imports) + moved["bytes"] / MB / link)  # type: ignore[arg-type]
        rerun_s.append(fresh_process("rerun", name, store, url, env))
        if not dill_note:
            try:
                dill_load_s.append(fresh_process("dill", name, folder / "load.pkl", url, env))
            except RuntimeError as exc:
                dill_note = "load fails: " + str(exc).strip().splitlines()[-1][:40]
    restore, rerun = statistics.median(restore_s), statistics.median(rerun_s)
    floor = statistics.median(floor_s)
    return {
        "workload": name, "states": full.commits, "push_mb": full.bytes_sent / MB,
        "push_s": push_s, "push_requests": full.requests, "small_bytes": small.bytes_sent,
        "small_requests": small.requests, "restore_s": restore, "rerun_s": rerun,
        "speedup": rerun / restore, "floor_s": floor, "over_floor": restore / floor,
        "dill": dill_note or f"{dill_send_s + statistics.median(dill_load_s):.2f} s",
    }


def table(rows: list[dict]) -> str:
    head = ("| workload | states | push MB | push s | push requests | small cell: bytes | "
            "small cell: requests | floor of a move s | new machine: state back s | state "
            "back / floor | re-run s | re-run / state back | dill dump+copy+load |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['states']} | {r['push_mb']:.2f} | {r['push_s']:.2f} | "
            f"{r['push_requests']} | {r['small_bytes']} | {r['small_requests']} | "
            f"{r['floor_s']:.2f} | {r['restore_s']:.2f} | {r['over_floor']:.2f}x | "
            f"{r['rerun_s']:.2f} | {r['speedup']:.1f}x | {r['dill']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="*", default=DEFAULT_WORKLOADS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--workload")
    parser.add_argument("--store")
    parser.add_argument("--url")
    parser.add_argument("--modules", default="")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return

    from tests.seaweed import SeaweedServer

    folder = Path(tempfile.mkdtemp(prefix="tt-migrate-"))
    server = SeaweedServer(folder / "server")
    server.start()
    rows = []
    try:
        link = link_throughput(f"s3://timetravel-tests/link-{time.time_ns()}", server.env())
        for name in args.workloads:
            url = f"s3://timetravel-tests/bench-{time.time_ns()}"
            rows.append(run_workload(name, url, server.env(), folder / name, args.repeat,
                                     link))
            print(f"{name}: done", file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    text = table(rows)
    print(text)
    if not args.markdown:
        return
    Path(args.markdown).write_text(
        "# Moving a session: `python -m benchmarks.migrate`\n\n"
        "SeaweedFS on loopback (127.0.0.1), 2-core VM; times of fresh processes include "
        f"Python start and imports; median of {args.repeat}; the link's throughput (the raw "
        f"client's best get) was {link:.0f} MB/s.\n\n{text}\n")


if __name__ == "__main__":
    main()
