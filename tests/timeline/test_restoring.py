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
from timetravel_kernel.store import MemoryBackend, NamespaceTree, ObjectStore
from timetravel_kernel.timeline import CellInfo, Timeline
from timetravel_kernel.timeline.restoring import load_version, restore_targets, version_at

from ..factories import checkpoint_cell, commit_covars, make_covar, open_timeline
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


SHARED = make_covar(members=("holder", "shared"), types=("dict", "list"), refs=())
ALONE = make_covar(members=("x",), types=("int",), refs=())


@pytest.mark.parametrize(("covar", "name", "as_name", "together", "targets"), [
    (ALONE, "x", None, False, {"x": "x"}),
    (ALONE, "x", "old_x", False, {"x": "old_x"}),
    (SHARED, "shared", None, True, {"holder": "holder", "shared": "shared"}),
])
def test_a_version_is_restored_under_its_name_a_new_one_or_with_its_co_members(
    covar, name, as_name, together, targets,
) -> None:
    assert restore_targets(covar, name, as_name, together=together) == targets


@pytest.mark.parametrize(("as_name", "together", "why"), [
    (None, False, "would be unlinked if restored alone"),
    ("copy", True, "cannot be restored under another name"),
])
def test_names_sharing_objects_are_not_split(as_name, together, why) -> None:
    with pytest.raises(SharedObjectsError, match=why) as refused:
        restore_targets(SHARED, "shared", as_name, together=together)
    assert refused.value.members == ("holder", "shared")
    assert "--together" in str(refused.value)


@pytest.mark.parametrize("bad", ["1x", "class", "a-b"])
def test_a_new_name_must_be_a_python_name(bad) -> None:
    with pytest.raises(TimelineError, match="not a valid Python name"):
        restore_targets(ALONE, "x", bad, together=False)


def test_the_version_at_a_commit_is_its_saved_one_or_says_why_not() -> None:
    store = ObjectStore(MemoryBackend())
    lost = make_covar(members=("g",), serializer="unsaved", types=("generator",), buffers=(),
                      refs=(), reason="it cannot be pickled")
    commit, _ = commit_covars(store, None, NamespaceTree.empty(), {"x": ALONE, "g": lost})
    assert version_at(store, commit, "x") == ALONE
    with pytest.raises(UnknownNameError, match=r"has no value at state .*%tt history y"):
        version_at(store, commit, "y")
    with pytest.raises(SerializationError, match=r"was not saved at state .*it cannot be pickled"):
        version_at(store, commit, "g")


def test_a_version_loads_against_the_live_namespace_without_changing_it(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    one = checkpoint_cell(timeline, ns, "class P:\n    pass\np = P()\np.v = 1", 1)
    checkpoint_cell(timeline, ns, "p.v = 2", 2)
    store = timeline.object_store
    values = load_version(store, version_at(store, one, "p"), ns)
    assert list(values) == ["p"] and values["p"].v == 1 and isinstance(values["p"], ns["P"])
    assert ns["p"].v == 2 and values["p"] is not ns["p"]
    without = {k: v for k, v in ns.items() if k != "P"}
    with pytest.raises(SerializationError, match="restore P first"):
        load_version(store, version_at(store, one, "p"), without)
