from __future__ import annotations

from timetravel_kernel.state import NameIdentities, TrackingNamespace, touched_names

from ..workloads import run_cell


def test_reads_writes_and_deletes_are_recorded() -> None:
    ns = TrackingNamespace(__name__="__main__", a=1, b=2, c=3, unused=4)
    ns.forget_accessed(ns.peek_accessed())
    run_cell(ns, "x = a + 1\ndel b\nc.bit_length()\nlen([])")
    assert ns.peek_accessed() == {"a", "b", "c", "x"}


def test_functions_defined_in_cells_report_global_reads() -> None:
    ns = TrackingNamespace(__name__="__main__")
    run_cell(ns, "data = []\ndef add():\n    data.append(1)")
    ns.forget_accessed(ns.peek_accessed())
    run_cell(ns, "add()")
    assert ns.peek_accessed() == {"add", "data"}


def test_writes_behind_the_namespace_are_caught_by_identity() -> None:
    ns = TrackingNamespace(__name__="__main__", v=1, w=2)
    identities = NameIdentities()
    identities.record(ns)
    run_cell(ns, "def f():\n    global v\n    v = 100\n")
    ns.forget_accessed(ns.peek_accessed())
    identities.record(ns)
    run_cell(ns, "f()\nglobals().update(z=5)")
    assert touched_names(ns, identities) >= {"v", "z", "f"}
    assert "w" not in touched_names(ns, identities)


def test_exec_inside_a_cell_is_tracked() -> None:
    ns = TrackingNamespace(__name__="__main__")
    run_cell(ns, "exec('v13 = [1, 2, 3]')")
    assert "v13" in ns.peek_accessed()


def test_plain_dict_makes_every_name_a_candidate() -> None:
    ns = {"a": 1, "b": 2}
    identities = NameIdentities()
    identities.record(ns)
    assert touched_names(ns, identities) == {"a", "b"}


def test_partial_record_updates_only_named_entries() -> None:
    ns = {"a": [1], "b": [2]}
    identities = NameIdentities()
    identities.record(ns)
    ns["a"] = [3]
    ns["b"] = [4]
    identities.record(ns, ["a"])
    assert identities.changed(ns) == {"b"}
    del ns["a"]
    identities.record(ns, ["a"])
    assert identities.changed(ns) == {"b"}
