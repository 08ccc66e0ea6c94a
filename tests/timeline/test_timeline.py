from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from timetravel_kernel.errors import (
    NothingToRedoError,
    NothingToRestoreError,
    NothingToUndoError,
    SerializationError,
    StoreCorruptError,
    TimelineError,
    UnknownCommitError,
)
from timetravel_kernel.store.keys import encode_key
from timetravel_kernel.timeline import CellInfo, Timeline

from ..factories import FRAGILE, open_timeline
from ..workloads import fresh_namespace, run_cell


@pytest.fixture
def timeline(tmp_path: Path):
    timeline = open_timeline(tmp_path / "store")
    yield timeline
    timeline.close()


def corrupt_every_chunk(timeline: Timeline) -> None:
    """Overwrite every stored chunk behind the timeline's back."""
    backend = timeline._store.backend
    prefix = encode_key("chunk", b"")
    backend.write_batch([(k, b"garbage") for k, _ in backend.scan_prefix(prefix)])


def step(timeline: Timeline, ns: dict, code: str):
    run_cell(ns, code)
    return timeline.checkpoint(ns, CellInfo(code=code))


def test_checkpoint_requires_a_session(timeline: Timeline) -> None:
    with pytest.raises(TimelineError, match="start"):
        timeline.checkpoint(fresh_namespace())


def test_each_checkpoint_is_a_commit_on_the_last(timeline: Timeline) -> None:
    ns = fresh_namespace()
    root = timeline.start(ns)
    first = step(timeline, ns, "x = 1").commit
    second = step(timeline, ns, "y = x + 1").commit
    assert root.parent is None
    assert first.parent == root.id and second.parent == first.id
    assert first.changed == ("x",) and second.changed == ("y",)
    assert [c.id for c in timeline.log()][:2] == [second.id, first.id]
    assert timeline.commit_count() == 3


def test_untouched_and_unchanged_values_write_almost_nothing(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    big = step(timeline, ns, "import numpy as np\na = np.random.default_rng(0).random(200_000)")
    assert big.commit.bytes_written > 1_200_000  # the 1.6 MB array, shuffled + LZ4: ~87%
    read_only = step(timeline, ns, "total = float(a.sum())")
    assert read_only.commit.changed == ("total",)
    assert read_only.commit.bytes_written < 10_000
    alias = step(timeline, ns, "b = a")
    assert alias.commit.bytes_written < 10_000
    patch = step(timeline, ns, "a[1000:1010] = 0.0")
    assert set(patch.commit.changed) == {"a", "b"}
    assert patch.commit.bytes_written < 3 * 4096 + 10_000  # about one 4 KiB chunk


def test_checkout_keeps_unchanged_covars_and_deletes_absent_names(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "keep = [1, 2]\nchange = {'v': 1}")
    target = timeline.head
    kept_object = ns["keep"]
    step(timeline, ns, "change['v'] = 2\nnew = 3")
    result = timeline.checkout(ns, target.id)
    assert ns["keep"] is kept_object
    assert ns["change"] == {"v": 1}
    assert "new" not in ns
    assert result.kept == ("keep",) and result.loaded == ("change",)
    assert result.deleted == ("new",)


def test_undo_redo_and_their_limits(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    with pytest.raises(NothingToUndoError):
        timeline.undo(ns)
    step(timeline, ns, "x = 1")
    step(timeline, ns, "x += 1")
    with pytest.raises(NothingToRedoError):
        timeline.redo(ns)
    timeline.undo(ns)
    assert ns["x"] == 1
    timeline.undo(ns)
    assert "x" not in ns
    timeline.redo(ns)
    timeline.redo(ns)
    assert ns["x"] == 2
    with pytest.raises(NothingToRedoError):
        timeline.redo(ns)


def test_running_a_cell_after_undo_starts_a_branch(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    base = step(timeline, ns, "x = 1").commit
    old = step(timeline, ns, "x = 'old branch'").commit
    timeline.undo(ns)
    new = step(timeline, ns, "x = 'new branch'").commit
    assert new.parent == base.id
    with pytest.raises(NothingToRedoError):
        timeline.redo(ns)
    ids = {c.id for c in timeline.log()}
    assert {base.id, old.id, new.id} <= ids
    timeline.checkout(ns, old.id)
    assert ns["x"] == "old branch"
    assert timeline.diff(old.id, new.id).changed == ("x",)


def test_diff_lists_added_deleted_changed(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    a = step(timeline, ns, "x = 1\ny = 2").commit
    b = step(timeline, ns, "del x\ny = 3\nz = 4").commit
    diff = timeline.diff(a.id, b.id)
    assert (diff.added, diff.deleted, diff.changed) == (("z",), ("x",), ("y",))


def test_unknown_commits_and_prefixes(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    commit = step(timeline, ns, "x = 1").commit
    assert timeline.resolve(commit.id.hex()[:8]) == commit.id
    for text in ["", "zz", "0" * 32, "abc"]:
        with pytest.raises(UnknownCommitError):
            timeline.resolve(text)


def test_unsaveable_values_are_reported_once_and_listed(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    first = step(timeline, ns, "import threading\nlock = threading.Lock()\nn = 1")
    assert set(first.unsaved) == {"lock"}
    again = step(timeline, ns, "lock.acquire(blocking=False)\nlock.release()\nn += 1")
    assert again.unsaved == {}
    info = {v.name: v for v in timeline.variables()}
    assert not info["lock"].saved and "lock" in (info["lock"].reason or "")
    assert "made by the cell `import threading`" in (info["lock"].reason or "")
    assert info["n"].saved and info["n"].type == "int"


def test_live_objects_survive_undo_and_redo(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "gen = (i for i in range(10))\nnext(gen)")
    gen = ns["gen"]
    step(timeline, ns, "del gen")
    timeline.undo(ns)
    assert ns["gen"] is gen
    assert next(ns["gen"]) == 1
    timeline.redo(ns)
    assert "gen" not in ns
    timeline.undo(ns)
    assert ns["gen"] is gen


def test_unchanged_live_object_is_handed_back_but_a_mutated_one_is_not(
    timeline: Timeline,
) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "x = [1]")
    original = ns["x"]
    step(timeline, ns, "x = [2]")
    timeline.undo(ns)
    assert ns["x"] is original  # still exists, unchanged: the very same object
    step(timeline, ns, "x.append(99)")
    timeline.undo(ns)
    assert ns["x"] == [1] and ns["x"] is not original  # it changed since: loaded from store


def test_checkout_is_all_or_nothing_when_the_store_is_corrupt(tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    target = step(timeline, ns, "import numpy as np\na = np.arange(50_000.0)\nb = [1]").commit
    step(timeline, ns, "a = None\nb = [2]\nc = 3")
    corrupt_every_chunk(timeline)
    timeline._live.cache = type(timeline._live.cache)()  # a new process would have no live objects
    before = dict(ns)
    with pytest.raises(SerializationError, match="corrupt"):
        timeline.checkout(ns, target.id)
    assert ns == before and ns["b"] is before["b"]
    timeline.close()


def test_undo_keeps_a_live_value_whose_stored_version_cannot_load(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, FRAGILE + "x = Fragile(1)\ny = [1]")
    step(timeline, ns, "x = Fragile(2)\ny = [2]")
    timeline._live.cache = type(timeline._live.cache)()  # no live object of the first version left
    live = ns["x"]
    result = timeline.undo(ns)  # answers, moves the rest, names what it could not bring back
    assert ns["y"] == [1]
    assert ns["x"] is live
    assert set(result.unrestored) == {"x"}
    assert "kept as it is" in result.unrestored["x"]
    assert "cannot come back" in result.unrestored["x"]
    after = step(timeline, ns, "z = 3")  # the kept value is examined and saved again
    assert "x" in after.commit.changed
    timeline.undo(ns)
    assert ns["x"] is live and "z" not in ns


def test_restore_after_reopen_brings_back_the_last_state(tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "class Point:\n    def __init__(self, x):\n        self.x = x\n"
                       "p = Point(3)\nimport numpy as np\na = np.arange(10.0)\nv = a[2:]\n"
                       "import threading\nlock = threading.Lock()\n"
                       "gen = (i for i in range(3))")
    timeline.close()

    again = open_timeline(tmp_path / "store")
    assert not again.previous_session_crashed
    assert again.restorable is not None
    fresh = fresh_namespace()
    again.start(fresh)
    result = again.restore(fresh)
    assert isinstance(fresh["p"], fresh["Point"]) and fresh["p"].x == 3
    assert fresh["v"].base is fresh["a"] and fresh["v"][0] == 2.0
    assert set(result.unrestored) == {"gen"} and "gen" not in fresh
    assert result.reconnected == ("lock",) and not fresh["lock"].locked()
    with pytest.raises(NothingToRestoreError):
        again.restore(fresh)
    again.close()


# A child process whose files may not grow past 1 MiB for two cells: a real I/O error from the
# OS inside RocksDB (EFBIG, as a full disk gives ENOSPC), with no way to fake it in-process.
FAILING_WRITES = textwrap.dedent("""
    import json, resource, signal, sys
    from timetravel_kernel.errors import StoreError
    from timetravel_kernel.timeline import CellInfo, Timeline

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-limit writes fail instead of killing
    timeline = Timeline.open(sys.argv[1])
    ns = {"__name__": "__main__"}
    timeline.start(ns)
    outcome = {}

    def step(code):
        exec(code, ns)
        try:
            outcome[code] = list(timeline.checkpoint(ns, CellInfo(code=code)).commit.changed)
        except StoreError as exc:
            outcome[code] = str(exc)

    step("x = 1")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    step("import numpy as np; a = np.random.default_rng(0).random(2_000_000)")
    step("y = 2")
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    step("z = 3")
    timeline.close()
    print(json.dumps(outcome))
""")


def test_checkpoints_resume_by_themselves_after_write_errors(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", FAILING_WRITES, str(tmp_path / "store")],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    outcome = list(json.loads(done.stdout).values())
    assert outcome[0] == ["x"]
    # While files cannot grow, checkpoints fail with the OS's reason, and keep failing only as
    # long as the cause lasts (each retry reopens the database first).
    for message in outcome[1:3]:
        assert "cannot flush the time-travel store" in message and "File too large" in message
    # Then the next checkpoint records everything since the last one that succeeded.
    assert sorted(outcome[3]) == ["a", "np", "y", "z"]
    again = open_timeline(tmp_path / "store")
    assert again._store.verify() > 0
    fresh = fresh_namespace()
    again.start(fresh)
    again.restore(fresh)
    expected = np.random.default_rng(0).random(2_000_000)
    assert np.array_equal(fresh["a"], expected) and (fresh["x"], fresh["z"]) == (1, 3)
    assert [c.changed for c in again.log()][:2] == [("a", "np", "y", "z"), ("x",)]
    again.close()


def assert_restore_refused_as_damage(timeline: Timeline) -> None:
    """A restore from a damaged store raises StoreCorruptError and leaves the namespace as it was;
    the timeline is closed after."""
    fresh = fresh_namespace()
    timeline.start(fresh)
    before = dict(fresh)
    with pytest.raises(StoreCorruptError):
        timeline.restore(fresh)
    assert fresh == before
    timeline.close()


def test_a_session_that_did_not_close_is_reported_crashed(tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "x = 1")
    timeline._store.close()  # the process dies: no clean close
    again = open_timeline(tmp_path / "store")
    assert again.previous_session_crashed
    assert again.restorable is not None
    again.close()


def test_restore_of_damaged_records_raises_and_changes_nothing(tmp_path: Path) -> None:
    # A damaged store is the store's problem, not one value's: the kernel moves it aside.
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "import numpy as np\nbig = np.arange(100_000.0)\nsmall = [1, 2]")
    timeline.close()
    again = open_timeline(tmp_path / "store")
    corrupt_every_chunk(again)
    assert_restore_refused_as_damage(again)


def test_a_damaged_pickle_stream_is_a_damaged_store_not_an_unloadable_value(
    tmp_path: Path,
) -> None:
    # The stream is unpickled as its chunks are read: a bad chunk met half-way through must
    # still surface as the store's damage (the kernel then moves the store aside), not as a
    # value that does not load.
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    head = step(timeline, ns, "words = [str(i) * 3 for i in range(50_000)]").commit
    covar = timeline._store.load_covar(timeline._store.lookup_name(head.tree, "words"))
    stream_chunks = covar.buffers[0].chunks
    assert len(stream_chunks) > 10
    timeline.close()
    again = open_timeline(tmp_path / "store")
    key = encode_key("chunk", stream_chunks[len(stream_chunks) // 2])
    again._store.backend.write_batch([(key, b"\x00garbage")])
    assert_restore_refused_as_damage(again)


def test_interrupted_checkpoint_changes_nothing_and_the_next_catches_up(
    timeline: Timeline,
) -> None:
    class Interrupting:
        armed = True

        def __reduce__(self) -> tuple:
            if Interrupting.armed:
                raise KeyboardInterrupt
            return (Interrupting, ())

    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "x = 1")
    head = timeline.head
    ns["x"] = 2
    ns["trap"] = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        timeline.checkpoint(ns, CellInfo(code="x = 2"))
    assert timeline.head == head
    Interrupting.armed = False
    commit = timeline.checkpoint(ns, CellInfo(code="retry")).commit
    assert set(commit.changed) == {"x", "trap"}


def test_gc_keeps_every_commit_loadable(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    commits = [step(timeline, ns, f"a = np.full(20_000, {i}.0)" if i else
                    "import numpy as np").commit for i in range(4)]
    timeline.collect_garbage()
    for index, commit in enumerate(commits[1:], start=1):
        timeline.checkout(ns, commit.id)
        assert np.all(ns["a"] == index)


def test_plain_dict_namespaces_work_without_tracking(timeline: Timeline) -> None:
    ns: dict = {"__name__": "__main__"}
    timeline.start(ns)
    ns["data"] = [1]
    c1 = timeline.checkpoint(ns).commit
    ns["data"].append(2)  # invisible to tracking; a plain dict is re-fingerprinted whole
    c2 = timeline.checkpoint(ns).commit
    assert c2.changed == ("data",)
    timeline.checkout(ns, c1.id)
    assert ns["data"] == [1]


def test_skip_names_are_never_saved(tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store", skip_names=frozenset({"In", "Out"}),
                             skip_pattern=r"__.*__|_\d+")
    ns = fresh_namespace()
    timeline.start(ns)
    ns.update({"In": [""], "Out": {}, "_1": 5, "kept": 1})
    commit = timeline.checkpoint(ns).commit
    assert commit.changed == ("kept",)
    timeline.close()


def test_lock_held_in_a_thread_is_not_a_problem(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    ns["lock"] = threading.RLock()
    ns["lock"].acquire()
    assert "lock" in timeline.checkpoint(ns).unsaved
    ns["lock"].release()


def test_a_timeline_that_never_started_leaves_the_crash_marker(tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store")
    timeline.start(fresh_namespace())
    timeline._store.close()  # crash
    inspector = open_timeline(tmp_path / "store")
    inspector.collect_garbage()
    inspector.close()
    again = open_timeline(tmp_path / "store")
    assert again.previous_session_crashed
    again.close()


def test_undo_of_an_in_place_edit_patches_the_live_array(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "import numpy as np\na = np.arange(100_000.0)\nv = a[::2]")
    array, view = ns["a"], ns["v"]
    step(timeline, ns, "a[5000:5010] = -1.0")
    result = timeline.undo(ns)
    assert result.loaded == ("a", "v")
    assert ns["a"] is array and ns["v"] is view  # the same objects, as at that commit
    np.testing.assert_array_equal(array, np.arange(100_000.0))
    timeline.redo(ns)
    assert ns["a"] is array and array[5005] == -1.0


def test_undo_is_exact_for_a_class_whose_getstate_copies_its_array(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "import numpy as np\npoly = np.polynomial.Polynomial([1.0, 2.0, 3.0])\n"
                       "big = np.arange(100_000.0)")
    big = ns["big"]
    step(timeline, ns, "poly.coef[0] = 5.0\nbig[3] = -1.0")
    result = timeline.undo(ns)
    assert ns["poly"].coef.tolist() == [1.0, 2.0, 3.0]  # writing into pickle's copy did nothing
    assert ns["big"] is big and big[3] == 3.0  # a real view of live memory: still in place
    assert not result.unrestored


def test_in_place_patch_is_all_or_nothing(tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    target = step(timeline, ns, "import numpy as np\na = np.arange(100_000.0)").commit
    step(timeline, ns, "a[:10] = -1.0")
    corrupt_every_chunk(timeline)
    with pytest.raises(SerializationError):
        timeline.checkout(ns, target.id)
    assert ns["a"][0] == -1.0 and ns["a"][20] == 20.0
    timeline.close()


def test_in_place_change_by_unrecorded_code_is_undone(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "d = []")
    step(timeline, ns, "n = 1")
    run_cell(ns, "d.append(0)")  # a silent execution: no checkpoint
    timeline.recorder.note_unrecorded(ns, "d.append(0)")
    timeline.undo(ns)
    assert ns["d"] == [] and "n" not in ns


def test_undo_redo_and_jumps_put_widget_traits_back_on_the_live_widgets(
        tmp_path: Path) -> None:
    """The widget on screen keeps driving the state: undo, redo and a jump set the recorded
    traits on the very widget (its model id stays), inside containers too; undo past the
    definition and redo bring back that same widget."""
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "import ipywidgets as w\nslider = w.IntSlider(value=7, max=20)\n"
                       "panel = {'controls': [slider, w.Text(value='a')]}")
    slider, text = ns["slider"], ns["panel"]["controls"][1]
    ids = (slider.model_id, text.model_id)
    first = timeline.head
    step(timeline, ns, "slider.value = 9\npanel['controls'][1].value = 'b'")
    step(timeline, ns, "slider.max = 50")
    timeline.undo(ns)
    assert ns["slider"] is slider and (slider.value, slider.max) == (9, 20)
    timeline.undo(ns)
    assert ns["slider"] is slider and ns["panel"]["controls"][0] is slider
    assert (slider.value, text.value) == (7, "a") and ns["panel"]["controls"][1] is text
    timeline.redo(ns)
    assert ns["slider"] is slider and (slider.value, text.value) == (9, "b")
    timeline.redo(ns)
    assert slider.max == 50
    timeline.checkout(ns, first.id)
    assert ns["slider"] is slider and (slider.value, slider.max) == (7, 20)
    timeline.undo(ns)  # past the cell that made them
    assert "slider" not in ns
    timeline.redo(ns)
    assert ns["slider"] is slider and (slider.model_id, text.model_id) == ids
    assert ns["panel"]["controls"] == [slider, text]
    timeline.close()
