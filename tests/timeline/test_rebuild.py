"""Rebuilding unsaveable values after a crash: lineage, plans, reconnects and re-runs."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from timetravel_kernel.errors import TimelineError
from timetravel_kernel.timeline import CellInfo, Timeline

from ..factories import open_timeline
from ..workloads import close_resources, fresh_namespace, run_cell

if TYPE_CHECKING:
    from pathlib import Path


def record(tmp_path: Path, cells: list[str]) -> None:
    """Run cells with checkpoints, then die without closing the session."""
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    for count, code in enumerate(cells, start=1):
        run_cell(ns, code)
        timeline.checkpoint(ns, CellInfo(code=code, execution_count=count), duration=0.01)
    close_resources(ns)
    timeline._store.close()  # the process dies: no clean close


def restored(tmp_path: Path) -> tuple[Timeline, dict]:
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    timeline.restore(ns)
    return timeline, ns


@pytest.fixture
def after_crash(tmp_path: Path):
    """Record cells, crash, restore into a new timeline; yields (timeline, namespace)."""
    opened: list[tuple[Timeline, dict]] = []

    def make(cells: list[str]) -> tuple[Timeline, dict]:
        record(tmp_path, cells)
        opened.append(restored(tmp_path))
        return opened[-1]

    yield make
    for timeline, ns in opened:
        close_resources(ns)
        timeline.close()


def test_a_generator_is_rebuilt_on_its_old_inputs_and_reads_the_live_namespace(
    after_crash,
) -> None:
    timeline, ns = after_crash([
        "data = [1, 2, 3]", "k = 10", "scaled = (x * k for x in data)", "first = next(scaled)",
        "data = [7, 8, 9]", "k = 100",
    ])
    assert set(timeline.lost) == {"scaled"}
    plan = timeline.rebuild_plan()
    assert [s.commit.execution_count for s in plan.steps] == [3, 4]
    assert plan.seconds == pytest.approx(0.02)
    others = {n: v for n, v in ns.items() if n != "__builtins__"}
    result = timeline.rebuild(ns)
    assert result.failed == {} and set(result.values) == {"scaled"}
    assert ns["first"] == 10
    # The old data, advanced past its first item, k looked up live as the original would.
    assert next(ns["scaled"]) == 200
    assert {n: v for n, v in ns.items() if n not in ("scaled", "__builtins__")} == others
    assert all(ns[n] is v for n, v in others.items())
    assert timeline.lost == {}
    ns["k"] = 1000
    assert next(ns["scaled"]) == 3000


def test_a_rebuilt_value_keeps_its_lineage_in_the_next_checkpoint(after_crash) -> None:
    timeline, ns = after_crash(["gen = (i for i in range(10))", "next(gen)"])
    timeline.rebuild(ns)
    version = timeline._live.tree.get("gen")
    run_cell(ns, "taken = next(gen)")
    commit = timeline.checkpoint(ns, CellInfo(code="taken = next(gen)")).commit
    assert ns["taken"] == 1
    assert commit.unsaved_used == ("gen",) and commit.unsaved_made == ()
    assert "gen" not in commit.changed and timeline._live.tree.get("gen") == version


def test_a_file_open_for_writing_is_reopened_by_the_restore_without_truncation(
    after_crash, tmp_path
) -> None:
    path = tmp_path / "log.txt"
    timeline, ns = after_crash([f"log = open({str(path)!r}, 'w')", "log.write('hello\\n')"])
    assert timeline.lost == {}  # reconnected: nothing for a rebuild to run
    ns["log"].write("more\n")
    ns["log"].close()
    assert path.read_text() == "hello\nmore\n"


def test_a_sqlite_file_connection_reconnects_and_sees_its_rows(after_crash, tmp_path) -> None:
    path = tmp_path / "db.sqlite"
    timeline, ns = after_crash([
        f"import sqlite3\ndb = sqlite3.connect({str(path)!r})",
        "db.execute('create table t(x)'); db.execute('insert into t values (7)'); db.commit()",
    ])
    assert timeline.lost == {}
    assert ns["db"].execute("select x from t").fetchall() == [(7,)]


def test_an_in_memory_database_is_rebuilt_by_running_its_cells(after_crash) -> None:
    timeline, ns = after_crash([
        "import sqlite3\nconn = sqlite3.connect(':memory:')",
        "conn.execute('create table t(x)')",
        "conn.execute('insert into t values (1)')",
        "unrelated = 5",
    ])
    result = timeline.rebuild(ns)
    assert result.cells_run == 3
    assert isinstance(ns["conn"], sqlite3.Connection)
    assert ns["conn"].execute("select x from t").fetchall() == [(1,)]


def test_locks_and_events_come_back_in_their_recorded_state(after_crash) -> None:
    timeline, ns = after_crash([
        "import threading\nheld = threading.Lock(); held.acquire()\nfree = threading.Lock()",
        "flag = threading.Event(); flag.set()\nquiet = threading.Event()",
    ])
    assert timeline.lost == {}
    assert ns["held"].locked() and not ns["free"].locked()
    assert ns["flag"].is_set() and not ns["quiet"].is_set()


def test_a_reconnect_that_fails_at_restore_is_named_and_not_offered_again(
    after_crash, tmp_path
) -> None:
    path = tmp_path / "gone.sqlite"
    record_cells = [f"import sqlite3\ndb = sqlite3.connect({str(path)!r})",
                    "db.execute('create table t(x)'); db.commit()", "gen = (i for i in 'ab')"]
    record(tmp_path, record_cells)
    path.unlink()
    timeline, ns = restored(tmp_path)
    try:
        assert "db" not in ns and not path.exists()  # connecting would create an empty one
        assert "could not be reconnected" in timeline.lost["db"] and "gone" in timeline.lost["db"]
        plan = timeline.rebuild_plan()
        assert plan.names == ("gen",) and plan.impossible == {"db": timeline.lost["db"]}
        result = timeline.rebuild(ns)
        assert set(result.values) == {"gen"} and "could not be reconnected" in result.failed["db"]
        assert not path.exists()
    finally:
        close_resources(ns)
        timeline.close()


def test_an_unsaveable_input_is_rebuilt_first(after_crash) -> None:
    timeline, ns = after_crash([
        "import itertools\nsrc = (i for i in range(10))",
        "next(src)",
        "taken = (x * 10 for x in list(itertools.islice(src, 2)))",
        "next(src)",
    ])
    assert set(timeline.lost) == {"src", "taken"}
    only_taken = timeline.rebuild_plan(["taken"])
    assert [s.commit.execution_count for s in only_taken.steps] == [1, 2, 3]
    timeline.rebuild(ns)
    assert list(ns["taken"]) == [10, 20]
    assert next(ns["src"]) == 4


def test_a_cell_that_raises_again_leaves_its_names_lost_and_the_rest_rebuilt(
    after_crash, tmp_path
) -> None:
    marker = tmp_path / "marker"
    marker.touch()
    timeline, ns = after_crash([
        f"import os, threading\nassert os.path.exists({str(marker)!r})\n"
        "gen = (i for i in range(3))",
        "sock_like = (c for c in 'abc')",
    ])
    marker.unlink()
    result = timeline.rebuild(ns)
    assert "AssertionError" in result.failed["gen"] and "cell [1]" in result.failed["gen"]
    assert "gen" not in ns and next(ns["sock_like"]) == "a"
    assert "AssertionError" in timeline.lost["gen"]


def test_a_cell_past_the_budget_is_stopped_and_the_namespace_is_unchanged(
    after_crash, tmp_path
) -> None:
    flag = tmp_path / "spin"
    timeline, ns = after_crash([
        f"import os\ngen = (i for i in range(3))\nwhile os.path.exists({str(flag)!r}): pass",
    ])
    flag.touch()
    before = dict(ns)
    result = timeline.rebuild(ns, budget=0.3)
    assert "time budget" in result.failed["gen"]
    assert result.seconds < 5
    assert ns == before


def test_a_cell_opening_a_file_for_writing_never_truncates_it(after_crash, tmp_path) -> None:
    path = tmp_path / "out.txt"
    timeline, ns = after_crash([
        f"with open({str(path)!r}, 'w') as f:\n    f.write('precious')\n"
        "gen = (i for i in range(3))",
    ])
    result = timeline.rebuild(ns)
    assert "truncate" in result.failed["gen"]
    assert path.read_text() == "precious"


def test_saved_names_and_unknown_names_are_not_rebuilt(after_crash) -> None:
    timeline, _ns = after_crash(["x = 1", "gen = (i for i in range(3))"])
    plan = timeline.rebuild_plan(["x", "nope", "gen"])
    assert set(plan.impossible) == {"x", "nope"} and plan.names == ("gen",)


def test_nothing_to_rebuild_is_an_error(tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store")
    timeline.start(fresh_namespace())
    with pytest.raises(TimelineError, match="nothing to rebuild"):
        timeline.rebuild_plan()
    timeline.close()


def test_each_commit_records_the_unsaveable_values_its_cell_made_and_used(tmp_path) -> None:
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    lineage = []
    for code in ["gen = (i for i in range(9))", "def take():\n    return next(gen)",
                 "first = take()", "x = 1", "gen = (j for j in [5])"]:
        run_cell(ns, code)
        commit = timeline.checkpoint(ns, CellInfo(code=code)).commit
        lineage.append((commit.unsaved_made, commit.unsaved_used))
    timeline.close()
    # The function call reaches gen through take's code (defining take counts too: the read
    # analysis follows the functions a cell names); rebinding makes a new value.
    assert lineage == [(("gen",), ()), ((), ("gen",)), ((), ("gen",)), ((), ()), (("gen",), ())]


def test_a_value_used_through_a_notebook_function_is_advanced_by_the_rebuild(after_crash):
    timeline, ns = after_crash([
        "gen = (i for i in range(9))", "def take():\n    return next(gen)", "take(); take()",
    ])
    timeline.rebuild(ns)
    assert next(ns["gen"]) == 2


def test_a_saved_value_holding_a_reconnected_one_comes_back_holding_it(
    after_crash, tmp_path
) -> None:
    """cache shares rows and holds the connection: after the crash rows and cache are one
    stream again and cache['conn'] is the reconnected connection, with nothing rebuilt."""
    timeline, ns = after_crash([
        f"import sqlite3\nconn = sqlite3.connect({str(tmp_path / 'db.sqlite')!r})",
        "rows = [1, 2]\ncache = {'conn': conn, 'rows': rows}",
    ])
    assert timeline.lost == {}
    assert ns["cache"]["conn"] is ns["conn"] and ns["cache"]["rows"] is ns["rows"]


def test_a_placeholder_for_a_rebuilt_value_is_swapped_for_it_by_the_rebuild(
    after_crash,
) -> None:
    """jobs holds the generator and shares done: restored at once with a placeholder where
    the generator was; the rebuild brings the generator back into jobs too, and the next
    checkpoint finds every version as recorded."""
    from timetravel_kernel.state import UnrestoredValue

    timeline, ns = after_crash([
        "gen = (i for i in range(5))\nnext(gen)",
        "done = [0]\njobs = {'gen': gen, 'done': done}",
    ])
    assert set(timeline.lost) == {"gen"}
    assert isinstance(ns["jobs"]["gen"], UnrestoredValue) and ns["jobs"]["done"] is ns["done"]
    versions = dict(timeline._live.tree.items())
    timeline.rebuild(ns)
    assert ns["jobs"]["gen"] is ns["gen"] and ns["jobs"]["done"] is ns["done"]
    assert next(ns["jobs"]["gen"]) == 1
    run_cell(ns, "n = len(jobs)")
    commit = timeline.checkpoint(ns, CellInfo(code="n = len(jobs)")).commit
    assert commit.changed == ("n",)
    assert {n: timeline._live.tree.get(n) for n in versions} == versions


def test_undo_puts_back_the_holder_with_the_object_its_name_had(tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    cells = ["import threading\nlock = threading.Lock()\nheld = {'lock': lock}",
             "old = lock\nlock = threading.Lock()\nheld = {'lock': lock}"]
    for code in cells:
        run_cell(ns, code)
        timeline.checkpoint(ns, CellInfo(code=code))
    first, second = ns["old"], ns["lock"]
    timeline.undo(ns)
    assert ns["lock"] is first and ns["held"]["lock"] is first and "old" not in ns
    timeline.redo(ns)
    assert ns["lock"] is second and ns["held"]["lock"] is second and ns["old"] is first
    timeline.close()


# Every kind of value pickle cannot hold, made by one cell; the kinds a restore reconnects
# come back at once, the others with a rebuild.
UNSAVEABLE_KINDS = {
    "file": ("open(PATH, 'a')", True),
    "sqlite_file": ("sqlite3.connect(DB)", True),
    "lock": ("threading.Lock()", True),
    "event": ("threading.Event()", True),
    "generator": ("(i * i for i in range(5))", False),
    "sqlite_memory": ("sqlite3.connect(':memory:')", False),
    "thread": ("threading.Thread(target=print)", False),
    "socket": ("socket.socket()", False),
    "csv_reader": ("csv.reader(io.StringIO('a,b'))", False),
}


@pytest.mark.parametrize("kind", sorted(UNSAVEABLE_KINDS))
def test_a_holder_of_any_unsaveable_value_is_saved_and_holds_it_again_once_back(
    tmp_path, kind
) -> None:
    """One unsaveable value no longer takes down the values holding it: the holder (which
    shares rows with another name) is saved and restored with its sharing; it holds the
    value itself again as soon as the value is back, reconnected or rebuilt."""
    from timetravel_kernel.state import UnrestoredValue

    make, reconnects = UNSAVEABLE_KINDS[kind]
    record(tmp_path, [
        f"import csv, io, socket, sqlite3, threading\nPATH = {str(tmp_path / 'f.txt')!r}\n"
        f"DB = {str(tmp_path / 'db.sqlite')!r}",
        f"value = {make}",
        "rows = [1, 2]\nholder = {'value': value, 'rows': rows}",
    ])
    timeline, ns = restored(tmp_path)
    try:
        assert ns["holder"]["rows"] is ns["rows"]
        if reconnects:
            assert timeline.lost == {} and ns["holder"]["value"] is ns["value"]
        else:
            assert set(timeline.lost) == {"value"}
            assert isinstance(ns["holder"]["value"], UnrestoredValue)
            result = timeline.rebuild(ns)
            assert set(result.values) == {"value"}, result.failed
            assert ns["holder"]["value"] is ns["value"] and ns["holder"]["rows"] is ns["rows"]
    finally:
        close_resources(ns)
        timeline.close()
