from __future__ import annotations

import os
import socket
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from timetravel_kernel.errors import SerializationError
from timetravel_kernel.state import dump_values, load_values

from ..workloads import fresh_namespace, run_cell


class Resolver:
    def __init__(self, ns: dict, staged: dict | None = None) -> None:
        self.ns = ns
        self.staged = staged or {}

    def value(self, name: str) -> object:
        return self.staged[name] if name in self.staged else self.ns[name]

    def namespace(self) -> dict:
        return self.ns


def round_trip(ns: dict, *names: str) -> tuple:
    serialized = dump_values(tuple(ns[n] for n in names), ns, names)
    buffers = [bytearray(b) for b in serialized.buffers]
    return load_values(serialized.serializer, serialized.stream, buffers, Resolver(ns))


def test_array_buffers_go_out_of_band_without_copies() -> None:
    ns = fresh_namespace()
    ns["a"] = np.arange(100_000, dtype=np.float64)
    serialized = dump_values((ns["a"],), ns, ("a",))
    assert len(serialized.stream) < 1000
    assert [len(b) for b in serialized.buffers] == [800_000]
    assert serialized.itemsizes == (8,)
    assert np.shares_memory(np.frombuffer(serialized.buffers[0], np.float64), ns["a"])


def test_views_come_back_as_views_of_their_base() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import numpy as np\na = np.arange(20.0).reshape(4, 5)\nb = a[::2, 1:]\n"
                 "c = a.T\nd = a[1]\ne = np.zeros(10)\nf = e[2:]")
    a, b, c, d, e, f = round_trip(ns, "a", "b", "c", "d", "e", "f")
    # numpy points every view at the array owning the memory; the restore keeps that shape.
    assert ns["b"].base is ns["a"].base and ns["f"].base is ns["e"]
    assert b.base is a.base and c.base is a.base and d.base is a.base and f.base is e
    np.testing.assert_array_equal(b, ns["b"])
    np.testing.assert_array_equal(c, ns["c"])
    b[0, 0] = -1.0
    assert a[0, 1] == -1.0


def test_fortran_and_structured_and_object_arrays_round_trip() -> None:
    ns = fresh_namespace()
    ns["f"] = np.asfortranarray(np.arange(12).reshape(3, 4))
    ns["s"] = np.array([(1, 2.0), (3, 4.0)], dtype=[("i", "i4"), ("x", "f8")])
    ns["o"] = np.array([{"k": 1}, None, "text"], dtype=object)
    ns["z"] = np.array(3.5)
    f, s, o, z = round_trip(ns, "f", "s", "o", "z")
    assert f.flags.f_contiguous
    np.testing.assert_array_equal(f, ns["f"])
    assert s.dtype == ns["s"].dtype and (s == ns["s"]).all()
    assert list(o) == list(ns["o"])
    assert z.shape == () and z == 3.5


def test_dataframe_round_trips_exactly() -> None:
    ns = fresh_namespace()
    ns["df"] = pd.DataFrame({"a": np.arange(5), "b": list("vwxyz"), "c": np.linspace(0, 1, 5)})
    (df,) = round_trip(ns, "df")
    pd.testing.assert_frame_equal(df, ns["df"])


def test_notebook_class_is_referred_to_by_name() -> None:
    ns = fresh_namespace()
    run_cell(ns, "class Point:\n    def __init__(self, x):\n        self.x = x\np = Point(3)")
    serialized = dump_values((ns["p"],), ns, ("p",))
    assert serialized.refs == ("Point",)
    (p,) = round_trip(ns, "p")
    assert isinstance(p, ns["Point"]) and p.x == 3


def test_notebook_functions_keep_the_live_namespace_as_globals() -> None:
    ns = fresh_namespace()
    run_cell(ns, "k = 10\nsquare = lambda v: v * v + k\n"
                 "def make():\n    n = [0]\n    def inc():\n        n[0] += 1\n"
                 "        return n[0]\n    return inc\ncount = make()\ncount()")
    square, count = round_trip(ns, "square", "count")
    assert square.__globals__ is ns
    assert square(2) == 14
    ns["k"] = 0
    assert square(2) == 4
    assert count() == 2


def test_modules_are_saved_by_reference() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import json\njs = json")
    serialized = dump_values((ns["js"],), ns, ("js",))
    assert len(serialized.stream) < 100
    (js,) = round_trip(ns, "js")
    assert js is ns["json"]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: (i for i in range(3)), "generator"),
        (lambda tmp: threading.Lock(), "lock"),
        (lambda tmp: threading.Event(), "lock"),
        (lambda tmp: socket.socket(), "socket"),
        (lambda tmp: sqlite3.connect(":memory:"), "database connection"),
        (lambda tmp: open(os.path.join(tmp, "w.txt"), "w"), "open file"),  # noqa: SIM115
    ],
    ids=["generator", "lock", "event", "socket", "sqlite", "file"],
)
def test_unsaveable_values_are_refused_with_a_reason(
    make: object, words: str, tmp_path: Path
) -> None:
    ns = fresh_namespace()
    value = make(str(tmp_path))  # type: ignore[operator]
    try:
        with pytest.raises(SerializationError) as info:
            dump_values((value,), ns, ("v",))
        assert words in info.value.reason
        assert "re-run" in info.value.reason or "truncate" in info.value.reason
    finally:
        if hasattr(value, "close"):
            value.close()


def test_file_open_for_writing_is_never_truncated(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    handle = path.open("w")
    handle.write("hello\n")
    handle.flush()
    with pytest.raises(SerializationError):
        dump_values(({"log": handle},), fresh_namespace(), ("holder",))
    handle.close()
    assert path.read_text() == "hello\n"


def test_failing_reduce_and_deep_nesting_become_reasons() -> None:
    class Hostile:
        def __reduce__(self) -> tuple:
            raise RuntimeError("no thanks")

    with pytest.raises(SerializationError, match="no thanks"):
        dump_values((Hostile(),), fresh_namespace(), ("h",))
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(SerializationError):
        dump_values((deep,), fresh_namespace(), ("deep",))


def test_sharing_ignores_dtypes_and_atoms_but_sees_containers() -> None:
    ns = fresh_namespace()
    shared = [1, 2]
    a = dump_values(({"s": shared, "t": "text"}, np.zeros(3)), ns, ("a",), track_sharing=True)
    b = dump_values(([shared, "text"], np.ones(3)), ns, ("b",), track_sharing=True)
    common = a.shared.keys() & b.shared.keys()
    assert common == {id(shared)}
