from __future__ import annotations

import threading

import numpy as np

from timetravel_kernel.state import TimelineOptions, build_covar, capture

from ..workloads import fresh_namespace, run_cell


def by_members(captured: list) -> dict:
    return {c.members: c for c in captured}


def test_names_sharing_objects_become_one_covariable() -> None:
    ns = fresh_namespace()
    run_cell(ns, "shared = [1, 2]\nholder = {'s': shared}\nalone = [3]\nn = 5")
    groups = by_members(capture(ns, ["shared", "holder", "alone", "n"], TimelineOptions()))
    assert set(groups) == {("holder", "shared"), ("alone",), ("n",)}


def test_one_unsaveable_value_does_not_stop_the_others() -> None:
    ns = fresh_namespace()
    ns["lock"] = threading.Lock()
    ns["data"] = [1, 2, 3]
    groups = by_members(capture(ns, ["lock", "data"], TimelineOptions()))
    assert groups[("lock",)].serialized is None
    assert "lock" in (groups[("lock",)].reason or "")
    assert groups[("data",)].serialized is not None


def test_skip_types_and_size_budget_are_reasons() -> None:
    ns = fresh_namespace()
    ns["big"] = np.zeros(1_000_000)
    ns["small"] = np.zeros(10)
    options = TimelineOptions(skip_types=frozenset({"builtins.dict"}), max_covar_bytes=100_000)
    ns["cfg"] = {"a": 1}
    groups = by_members(capture(ns, ["big", "small", "cfg"], options))
    assert "size budget" in (groups[("big",)].reason or "")
    assert "skipped by configuration" in (groups[("cfg",)].reason or "")
    assert groups[("small",)].serialized is not None


def test_fingerprint_is_stable_and_sees_in_place_edits() -> None:
    ns = fresh_namespace()
    ns["a"] = np.arange(100_000.0)
    options = TimelineOptions(chunk_size=4096, inline_limit=64)

    def covar():
        (captured,) = capture(ns, ["a"], options)
        return build_covar(captured, options, sink=None)

    first = covar()
    assert covar() == first
    ns["a"][500] = -1.0
    edited = covar()
    assert edited != first
    changed = [x != y for x, y in zip(first.buffers[1].chunks, edited.buffers[1].chunks,
                                      strict=True)]
    assert sum(changed) == 1


def test_a_class_that_does_not_load_back_is_refused_at_checkpoint() -> None:
    ns = fresh_namespace()
    run_cell(ns, """
class Once(type):
    made = set()
    def __new__(mcs, name, bases, body):
        if name in mcs.made:
            raise TypeError(f'{name} is defined twice')
        mcs.made.add(name)
        return super().__new__(mcs, name, bases, body)
class Thing(metaclass=Once):
    pass
class Plain:
    pass
""")
    groups = by_members(capture(ns, ["Thing", "Plain"], TimelineOptions()))
    reason = groups[("Thing",)].reason or ""
    assert "loads back" in reason and "defined twice" in reason
    assert groups[("Plain",)].serialized is not None


def test_a_value_holding_another_names_unsaveable_value_is_saved_around_it() -> None:
    """The connection and the generator cannot be saved; what holds them next to saveable
    data is saved, referring to them by name, with its sharing kept (cache and rows are one
    stream). A generator no other name holds still makes its holder unsaved."""
    ns = fresh_namespace()
    run_cell(ns, "import sqlite3\nconn = sqlite3.connect(':memory:')\nrows = [1, 2]\n"
                 "cache = {'conn': conn, 'rows': rows}\ngen = (i for i in range(3))\n"
                 "jobs = [gen, gen, rows]\nloose = [(i for i in range(2)), rows]")
    groups = by_members(capture(ns, ["conn", "rows", "cache", "gen", "jobs", "loose"],
                                TimelineOptions()))
    assert set(groups) == {("cache", "jobs", "rows"), ("conn",), ("gen",), ("loose",)}
    saved = groups[("cache", "jobs", "rows")].serialized
    assert saved is not None and saved.refs == ("conn", "gen")
    assert saved.holes == {"conn": ns["conn"], "gen": ns["gen"]}
    assert groups[("conn",)].serialized is None and groups[("gen",)].serialized is None
    assert "generator" in (groups[("loose",)].reason or "")
    ns["conn"].close()


def test_a_library_refusal_held_by_another_name_is_referred_to() -> None:
    """csv's reader refuses pickling in its own __reduce__ (no reason foreseen by the
    reducer): retried, the holder refers to the name holding the reader."""
    ns = fresh_namespace()
    run_cell(ns, "import csv, io\nreader = csv.reader(io.StringIO('a,b'))\n"
                 "state = {'reader': reader, 'seen': [1]}\nlone = [csv.reader([])]")
    groups = by_members(capture(ns, ["reader", "state", "lone"], TimelineOptions()))
    assert groups[("state",)].serialized is not None
    assert groups[("state",)].serialized.refs == ("reader",)
    assert "cannot be saved" in (groups[("reader",)].reason or "")
    assert "cannot be saved" in (groups[("lone",)].reason or "")
