"""The shared workload notebooks, and an exact digest of a namespace's state for comparisons."""

from __future__ import annotations

import io
import json
import pickle
import socket
import sqlite3
import types
from pathlib import Path

import xxhash

from timetravel_kernel.errors import SerializationError
from timetravel_kernel.state import dump_values
from timetravel_kernel.state.serializers import _DillPickler

WORKLOAD_DIR = Path(__file__).resolve().parents[2] / "shared" / "workloads"
# Variants of our own (the shared notebooks are not edited): a frame with date columns.
PROJECT_WORKLOAD_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "workloads"
WORKLOAD_PATHS = {p.stem: p for d in (WORKLOAD_DIR, PROJECT_WORKLOAD_DIR)
                  for p in sorted(d.glob("*.ipynb"))}
# object_graphs (a 1M-entry dict, ...) is sized for the benchmarks: digesting its state through
# the pure-Python pickler takes ~15 s here, so the exactness tests run it scaled down to
# SMALL_GRAPHS entries (tests/timeline/test_background.py), which still exceeds the size at
# which big dicts are saved in groups.
BENCHMARK_ONLY = frozenset({"object_graphs"})
WORKLOADS = sorted(set(WORKLOAD_PATHS) - BENCHMARK_ONLY)
SMALL_GRAPHS = 100_000
HIDDEN = {"__builtins__", "__name__"}


def load_notebook_cells(name: str) -> list[tuple[str, str]]:
    """Return (cell id, code) of a workload notebook's code cells."""
    notebook = json.loads(WORKLOAD_PATHS[name].read_text())
    return [(c.get("id", ""), "".join(c["source"])) for c in notebook["cells"]
            if c["cell_type"] == "code"]


def load_cells(name: str) -> list[str]:
    """Return the code cells of a workload notebook."""
    return [code for _, code in load_notebook_cells(name)]


def load_small_graph_cells() -> list[str]:
    """Return object_graphs' cells with N = SMALL_GRAPHS instead of a million."""
    cells = load_cells("object_graphs")
    cells[0] = cells[0].replace("N = 1_000_000", f"N = {SMALL_GRAPHS}")
    assert f"N = {SMALL_GRAPHS}" in cells[0]
    return cells


def fresh_namespace() -> dict:
    """Return a namespace like the kernel's ``__main__``."""
    return {"__name__": "__main__"}


def run_cell(ns: dict, code: str, label: str = "<cell>") -> None:
    """Execute one cell in ``ns`` as the kernel does (module-level code, ns as globals)."""
    exec(compile(code, label, "exec"), ns)


def close_resources(ns: dict) -> None:
    """Close the files, sockets and connections a workload opened (no ResourceWarning)."""
    for value in list(dict.values(ns)):
        if isinstance(value, (io.IOBase, socket.socket, sqlite3.Connection)):
            value.close()


class _DigestPickler(_DillPickler):
    """The serializer's pickler, but blind to the identity of immutable atoms.

    Whether two names hold the same ``str``, ``tuple`` or code object is not part of a state
    (and a restore does not preserve it); whether they hold the same list, dict, array or
    instance is.
    """

    def memoize(self, obj: object) -> None:
        if type(obj) not in (str, bytes, tuple, frozenset, types.CodeType):
            super().memoize(obj)


def _rendered(value: object) -> str | None:
    """Return a hash of the rendering of a matplotlib figure or axes, else None.

    Pickling a figure advances counters inside it (matplotlib's CallbackRegistry calls
    ``next`` in ``__getstate__``), so its pickle cannot be compared; what it draws can.
    """
    figure = getattr(value, "figure", value)
    canvas = getattr(figure, "canvas", None)
    if canvas is None or type(figure).__module__ != "matplotlib.figure":
        return None
    canvas.draw()
    return xxhash.xxh3_128_hexdigest(bytes(canvas.buffer_rgba()))


def state_digest(ns: dict) -> tuple[str, dict[str, object]]:
    """Return an exact fingerprint of the namespace's state.

    All saveable names are pickled together in ONE stream, so the digest covers their values,
    dtypes, and every identity relation between them (aliases, shared members, cycles, views of
    a base, instances of notebook classes bound by name). Unsaveable names are compared by the
    identity of the live object; figures by what they draw.
    """
    names = sorted(n for n in ns if n not in HIDDEN)
    saveable, live = [], {}
    for name in names:
        rendered = _rendered(dict.__getitem__(ns, name))
        if rendered is not None:
            live[name] = rendered
            continue
        try:
            dump_values((dict.__getitem__(ns, name),), ns, (name,))
            saveable.append(name)
        except SerializationError:
            live[name] = id(dict.__getitem__(ns, name))
    out = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    pickler = _DigestPickler(out, protocol=5, buffer_callback=buffers.append)
    pickler._setup(ns, saveable)
    pickler.dump(tuple(dict.__getitem__(ns, n) for n in saveable))
    digest = xxhash.xxh3_128()
    digest.update(repr(saveable).encode())
    digest.update(out.getvalue())
    for buffer in buffers:
        digest.update(buffer.raw())
    return digest.hexdigest(), live
