"""The value and construct zoos through the engine: all saved, exact under undo, redo, restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from timetravel_kernel.timeline import CellInfo, Timeline, TimelineOptions

from ..kernel.tt_state_probe import describe_namespace
from ..workloads import fresh_namespace, run_cell
from ..zoo import CONSTRUCTS, DTYPES, Zoo

# as the kernel configures it: IPython's ``_`` (the last result) is not state
OPTIONS = TimelineOptions(skip_names=frozenset({"_"}), skip_pattern=r"__.*__|_i\d+|_\d+")


def observe(zoo: Zoo, ns: dict) -> object:
    if not zoo.observe:
        return None
    return json.loads(json.dumps(eval(zoo.observe, ns), default=repr))  # noqa: S307


def snapshot(zoo: Zoo, ns: dict) -> tuple[dict, object]:
    described = json.loads(describe_namespace(ns))
    values = {n: v for n, v in described["values"].items() if n in zoo.names}
    aliases = {n: v for n, v in described["aliases"].items() if n in zoo.names}
    return {"values": values, "aliases": aliases}, observe(zoo, ns)


def assert_same(actual: tuple[dict, object], expected: tuple[dict, object], where: str) -> None:
    for key in ("values", "aliases"):
        got, want = actual[0][key], expected[0][key]
        differing = sorted(n for n in set(got) | set(want) if got.get(n) != want.get(n))
        assert not differing, f"{where}: {key} differ for {differing}"
    assert actual[1] == expected[1], f"{where}: behaviour differs"


@pytest.mark.parametrize("zoo", [DTYPES, CONSTRUCTS], ids=["dtypes", "constructs"])
def test_zoo_is_saved_and_exact_under_undo_redo_and_restart(zoo: Zoo, tmp_path: Path) -> None:
    timeline = Timeline.open(tmp_path / "store", options=OPTIONS)
    ns = fresh_namespace()
    timeline.start(ns)
    run_cell(ns, zoo.setup)
    timeline.checkpoint(ns, CellInfo(code=zoo.setup))
    imported = set(ns)
    states = []
    for code in (zoo.create, zoo.modify):
        run_cell(ns, code)
        result = timeline.checkpoint(ns, CellInfo(code=code))
        assert not result.unsaved, f"refused: {dict(result.unsaved)}"
        states.append(snapshot(zoo, ns))
    assert zoo.names <= set(ns), sorted(zoo.names - set(ns))
    unsaved = {v.name: v.reason for v in timeline.variables() if not v.saved}
    assert not unsaved, unsaved

    timeline.undo(ns)
    assert_same(snapshot(zoo, ns), states[0], "undo")
    timeline.undo(ns)  # past the cell that defined everything
    assert not (zoo.names - imported) & set(ns)
    timeline.redo(ns)
    assert_same(snapshot(zoo, ns), states[0], "redo past the definitions")
    timeline.redo(ns)
    assert_same(snapshot(zoo, ns), states[1], "redo")
    timeline.close()

    reopened = Timeline.open(tmp_path / "store", options=OPTIONS)
    fresh = fresh_namespace()
    reopened.start(fresh)
    result = reopened.restore(fresh)
    assert not result.unrestored, dict(result.unrestored)
    assert_same(snapshot(zoo, fresh), states[1], "restore in a new timeline")
    reopened.close()
