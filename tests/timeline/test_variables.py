"""One variable from the past: its versions, restoring one value, and value diffs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from timetravel_kernel.errors import (
    SerializationError,
    SharedObjectsError,
    TimelineError,
    UnknownNameError,
)
from timetravel_kernel.timeline import CellInfo, Timeline, TimelineOptions
from timetravel_kernel.timeline.valuediff import DiffLimits

from ..factories import open_timeline
from ..workloads import fresh_namespace, run_cell


@pytest.fixture
def timeline(tmp_path: Path):
    timeline = open_timeline(tmp_path / "store")
    yield timeline
    timeline.close()


def step(timeline: Timeline, ns: dict, code: str, count: int | None = None):
    run_cell(ns, code)
    return timeline.checkpoint(ns, CellInfo(code=code, execution_count=count)).commit


def test_restore_one_variable_keeps_every_other_name(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    one = step(timeline, ns, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})"
               "\ny = 1", 1)
    step(timeline, ns, "df = df.drop(columns='b')", 2)
    step(timeline, ns, "y = 2\nz = [1]", 3)
    step(timeline, ns, "z.append(2)\ndf['c'] = 0", 4)
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
    one = step(timeline, ns, "x = {'k': 1}", 1)
    step(timeline, ns, "x['k'] = 2", 2)
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
    one = step(timeline, ns, "shared = [1]\nholder = {'s': shared}\nw = 0", 1)
    step(timeline, ns, "shared.append(2)\nw = 1", 2)
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
    one = step(timeline, ns, "g = (i for i in range(3))", 1)
    with pytest.raises(SerializationError, match="was not saved"):
        timeline.restore_variable(ns, "g", one.id)


def test_a_failed_record_leaves_the_namespace_as_it_was(timeline: Timeline, monkeypatch) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    one = step(timeline, ns, "x = 1", 1)
    step(timeline, ns, "x = 2", 2)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    # The store's write is the part that can fail here (a full disk, tested for real in
    # test_timeline); replacing it keeps this test about the rollback.
    monkeypatch.setattr(timeline._store, "transaction", fail)
    with pytest.raises(OSError, match="disk full"):
        timeline.restore_variable(ns, "x", one.id, as_name="y")
    assert ns["x"] == 2 and "y" not in ns


def test_diff_describes_values(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    a = step(timeline, ns, "n = 1\ns = {1, 2}\nkeep = 'k'\nd = {'a': 1}\ngone = 0", 1)
    b = step(timeline, ns, "n = 2\ns.add(3)\nd['b'] = 2\ndel gone\nnew = 5", 2)
    result = timeline.diff(a.id, b.id, values=True)
    assert result.added == ("new",) and result.deleted == ("gone",)
    assert dict(result.values) == {
        "n": "1 → 2",
        "s": "set of 2 → 3 items: added 3",
        "d": "dict of 1 → 2 keys: added 'b'",
    }
    assert timeline.diff(a.id, b.id).values == {}


def test_diff_of_objects_and_of_values_too_large(tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    run_cell(ns, "class Box:\n    def __init__(self, v):\n        self.v = v")
    a = step(timeline, ns, "class Box:\n    def __init__(self, v):\n        self.v = v\n"
             "b = Box(1)\nbig = list(range(50000))\nt = Box(0)", 1)
    b = step(timeline, ns, "b = Box(2)\nbig.append(1)\nt = 'text'", 2)
    values = timeline.diff(a.id, b.id, values=True, limits=DiffLimits(max_load_bytes=100_000))
    size = timeline.history("b")[0].bytes
    assert values.values["b"] == f"changed ({size} bytes)"
    assert values.values["big"].endswith("bytes); too large to compare")
    assert values.values["t"] == "type Box → str"
    timeline.close()


def test_diff_of_arrays_and_frames(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    a = step(timeline, ns, "import numpy as np\nimport pandas as pd\narr = np.zeros(20000)\n"
             "df = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})", 1)
    b = step(timeline, ns, "arr[7] = 2.5\narr[19999] = -1\ndf = df.drop(columns='b')", 2)
    c = step(timeline, ns, "arr = arr.reshape(100, 200)", 3)
    values = timeline.diff(a.id, b.id, values=True).values
    assert values["arr"] == ("ndarray (20000,) float64: 2 of 20000 elements changed, max abs "
                             "diff 2.5; e.g. [7] 0.0 → 2.5, [19999] 0.0 → -1.0")
    assert values["df"] == "DataFrame (2, 2) → (2, 1): dropped 1 column: 'b'"
    assert timeline.diff(b.id, c.id, values=True).values["arr"] == (
        "ndarray shape (20000,) → (100, 200), dtype float64")


# Times are CPU times of this process (blosc's threads included): wall times on a machine
# shared with other test runs measure the scheduler. With only a few changed chunks the fixed
# cost of any diff (commit lookup, two array skeletons, ~0.3 ms) dominates; the benchmark
# (benchmarks/value_diff.py) shows 1 to 1000 edits.
@pytest.mark.parametrize("edits", [10, 100])
def test_diff_of_a_400_mb_array_costs_the_changed_chunks(tmp_path: Path, edits: int) -> None:
    timeline = Timeline.open(tmp_path / "store", options=TimelineOptions())
    ns = fresh_namespace()
    timeline.start(ns)
    ns["arr"] = np.arange(50_000_000, dtype=np.float64)  # 400 MB
    a = timeline.checkpoint(ns, CellInfo(code="arr = ...", source="arr")).commit
    where = np.linspace(0, ns["arr"].size - 1, edits).astype(np.int64)
    ns["arr"][where] += 1.0
    b = timeline.checkpoint(ns, CellInfo(code="arr[...] += 1", source="arr")).commit
    store = timeline._store
    old = store.load_covar(store.lookup_name(timeline.commit(a.id).tree, "arr"))
    new = store.load_covar(store.lookup_name(timeline.commit(b.id).tree, "arr"))
    changed = [(x, y) for x, y in zip(old.buffers[1].chunks, new.buffers[1].chunks, strict=True)
               if x != y]
    assert len(changed) == edits

    def read_changed() -> None:
        # The least any diff must read: both manifests (to find the changed chunks) and the
        # changed chunks of both versions.
        for commit in (a, b):
            store.load_covar(store.lookup_name(timeline.commit(commit.id).tree, "arr"))
        for x, y in changed:
            pair = (store.load_chunk(x), store.load_chunk(y))  # both in memory, as to compare
            del pair

    def diff() -> str:
        return timeline.diff(a.id, b.id, values=True).values["arr"]

    # What the diff reads: exactly the changed chunks of both versions, no whole buffer.
    loaded: list[bytes] = []
    load_chunk, read_buffer, open_stream = store.load_chunk, store.read_buffer, store.open_stream

    def counting_load_chunk(chunk_id):
        loaded.append(chunk_id)
        return load_chunk(chunk_id)

    def inline_only(ref, *args):
        assert ref.inline is not None, "the diff read a whole chunked buffer"
        return (read_buffer if args else open_stream)(ref, *args)

    store.load_chunk, store.read_buffer, store.open_stream = (counting_load_chunk, inline_only,
                                                              inline_only)
    diff()
    store.load_chunk, store.read_buffer, store.open_stream = load_chunk, read_buffer, open_stream
    assert sorted(loaded) == sorted(c for pair in changed for c in pair)

    ratios, reads, diffs = [], [], []
    for _ in range(11):
        # Paired: each diff is set against a read made just before, under the same load.
        started = time.process_time()
        read_changed()
        reads.append(time.process_time() - started)
        started = time.process_time()
        text = diff()
        diffs.append(time.process_time() - started)
        ratios.append(diffs[-1] / reads[-1])
    assert text.startswith(f"ndarray (50000000,) float64: {edits} of 50000000 elements changed, "
                           "max abs diff 1; e.g. [0] 0.0 → 1.0")
    ratio = sorted(ratios)[len(ratios) // 2]
    print(f"\n400 MB array, {edits} changed chunks: read {min(reads) * 1e3:.1f} ms, "
          f"diff {min(diffs) * 1e3:.1f} ms (median paired ratio {ratio:.2f}x)")
    assert ratio < 2, ratios
    timeline.close()


def test_values_of_a_covariable_member(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    a = step(timeline, ns, "base = [1, 2]\nalias = {'b': base}", 1)
    b = step(timeline, ns, "base[0] = 9", 2)
    values = timeline.diff(a.id, b.id, values=True).values
    assert values == {"alias": "dict of 1 key: changed 'b'",
                      "base": "list of 2 items: changed [0] (1 → 9)"}
    c = step(timeline, ns, "other = [base]\ndel alias", 3)
    assert timeline.diff(b.id, c.id, values=True).values == {
        "base": "list of 2 items: equal (order or metadata changed); now shares objects with "
                "other; no longer shares objects with alias"}


def test_restore_resolves_notebook_classes_against_the_live_namespace(
    timeline: Timeline,
) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    one = step(timeline, ns, "class P:\n    pass\np = P()\np.v = 1", 1)
    step(timeline, ns, "p.v = 2", 2)
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
    one = step(timeline, ns, "x = 1", 1)
    with pytest.raises(TimelineError, match="excluded from the history"):
        timeline.restore_variable(ns, "x", one.id, as_name="scratch")
    assert "scratch" not in ns
    timeline.close()
