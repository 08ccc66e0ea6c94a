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
