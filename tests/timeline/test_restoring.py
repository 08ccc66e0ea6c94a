"""Restoring one variable (timeline/restoring.py): which version, under which names, or no."""

from __future__ import annotations

from pathlib import Path

import pytest

from timetravel_kernel.errors import (
    SerializationError,
    SharedObjectsError,
    TimelineError,
    UnknownNameError,
)
from timetravel_kernel.timeline import CellInfo, Timeline

from ..factories import checkpoint_cell, open_timeline
from ..workloads import fresh_namespace, run_cell


def test_restore_one_variable_keeps_every_other_name(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    one = checkpoint_cell(timeline, ns, "import pandas as pd\n"
                          "df = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})\ny = 1", 1)
    checkpoint_cell(timeline, ns, "df = df.drop(columns='b')", 2)
    checkpoint_cell(timeline, ns, "y = 2\nz = [1]", 3)
    checkpoint_cell(timeline, ns, "z.append(2)\ndf['c'] = 0", 4)
    before = timeline.head
    others = {k: ns[k] for k in ("y", "z", "pd")}
    result = timeline.restore_variable(ns, "df", one.id)
    assert list(ns["df"].columns) == ["a", "b"]
    assert all(ns[k] is v for k, v in others.items()) and ns["z"] == [1, 2]
    assert result.loaded == ("df",) and result.head.parent == before.id
    assert result.head.changed == ("df",) and result.head.code.startswith("%tt get df@")
    timeline.undo(ns)
    assert list(ns["df"].columns) == ["a", "c"] and ns["y"] == 2
    timeline.redo(ns)
    assert list(ns["df"].columns) == ["a", "b"]


def test_restore_as_a_new_name(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    one = checkpoint_cell(timeline, ns, "x = {'k': 1}", 1)
    checkpoint_cell(timeline, ns, "x['k'] = 2", 2)
    result = timeline.restore_variable(ns, "x", one.id, as_name="old_x")
    assert ns["x"] == {"k": 2} and ns["old_x"] == {"k": 1}
    assert result.head.changed == ("old_x",)
    timeline.undo(ns)
    assert "old_x" not in ns
    with pytest.raises(TimelineError, match="not a valid Python name"):
        timeline.restore_variable(ns, "x", one.id, as_name="1x")
    with pytest.raises(UnknownNameError, match="has no value at state"):
        timeline.restore_variable(ns, "y", one.id)


def test_names_sharing_objects_are_restored_together_or_refused(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    one = checkpoint_cell(timeline, ns, "shared = [1]\nholder = {'s': shared}\nw = 0", 1)
    checkpoint_cell(timeline, ns, "shared.append(2)\nw = 1", 2)
    head = timeline.head
    with pytest.raises(SharedObjectsError, match="shares objects with holder") as refused:
        timeline.restore_variable(ns, "shared", one.id)
    assert refused.value.members == ("holder", "shared")
    with pytest.raises(SharedObjectsError, match="cannot be restored under another name"):
        timeline.restore_variable(ns, "shared", one.id, as_name="s2", together=True)
    assert timeline.head == head and ns["shared"] == [1, 2]  # refused: nothing moved
    result = timeline.restore_variable(ns, "shared", one.id, together=True)
    assert result.loaded == ("holder", "shared") and result.head.code.endswith("--together")
    assert ns["shared"] == [1] and ns["holder"]["s"] is ns["shared"] and ns["w"] == 1


def test_unsaved_values_cannot_be_restored(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    one = checkpoint_cell(timeline, ns, "g = (i for i in range(3))", 1)
    with pytest.raises(SerializationError, match="was not saved"):
        timeline.restore_variable(ns, "g", one.id)


def test_a_failed_record_leaves_the_namespace_as_it_was(timeline: Timeline, monkeypatch) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    one = checkpoint_cell(timeline, ns, "x = 1", 1)
    checkpoint_cell(timeline, ns, "x = 2", 2)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    # The store's write is the part that can fail here (a full disk, tested for real in
    # test_timeline); replacing it keeps this test about the rollback.
    monkeypatch.setattr(timeline._store, "transaction", fail)
    with pytest.raises(OSError, match="disk full"):
        timeline.restore_variable(ns, "x", one.id, as_name="y")
    assert ns["x"] == 2 and "y" not in ns


def test_restore_resolves_notebook_classes_against_the_live_namespace(
    timeline: Timeline,
) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    one = checkpoint_cell(timeline, ns, "class P:\n    pass\np = P()\np.v = 1", 1)
    checkpoint_cell(timeline, ns, "p.v = 2", 2)
    timeline.restore_variable(ns, "p", one.id)
    assert ns["p"].v == 1 and isinstance(ns["p"], ns["P"])
    run_cell(ns, "del P")
    timeline.checkpoint(ns, CellInfo(code="del P"))
    with pytest.raises(SerializationError, match="restore P first"):
        timeline.restore_variable(ns, "p", one.id)
    assert ns["p"].v == 1


def test_restoring_under_a_skipped_name_is_refused(tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store", skip_names=("scratch",))
    ns = fresh_namespace()
    timeline.start(ns)
    one = checkpoint_cell(timeline, ns, "x = 1", 1)
    with pytest.raises(TimelineError, match="excluded from the history"):
        timeline.restore_variable(ns, "x", one.id, as_name="scratch")
    assert "scratch" not in ns
    timeline.close()
