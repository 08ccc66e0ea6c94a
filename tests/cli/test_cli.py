"""The `timetravel` command line on real stores."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from timetravel_kernel.cli import main
from timetravel_kernel.session.storage import store_path_for
from timetravel_kernel.timeline import CellInfo, Timeline


@pytest.fixture
def store(tmp_path):
    """A store for notebook nb.ipynb with three cells, closed; returns (stores dir, path)."""
    stores = tmp_path / "stores"
    path = store_path_for(stores, str(tmp_path / "nb.ipynb"))
    timeline = Timeline.open(path, purpose="kernel for nb.ipynb")
    ns: dict = {"__name__": "__main__"}
    timeline.start(ns)
    for count, code in enumerate(["x = 1", "y = [x] * 3", "del x\nz = 'zed'"], start=1):
        exec(code, ns)
        timeline.checkpoint(ns, CellInfo(code=code, execution_count=count), status="ok",
                            duration=0.01)
    timeline.close()
    return stores, path


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_list_shows_stores_and_their_notebook(store, capsys):
    stores, path = store
    status, out, _ = run(capsys, "list", "--dir", stores)
    assert status == 0
    assert path.name in out and "kernel for nb.ipynb" in out


def test_log_by_store_name_path_or_notebook(store, capsys, tmp_path):
    stores, path = store
    for ref in (path, path.name, tmp_path / "nb.ipynb"):
        status, out, _ = run(capsys, "log", ref, "--dir", stores)
        assert status == 0, out
        assert "4 states" in out and "del x" in out
    status, out, _ = run(capsys, "log", path, "-n", "2", "--json")
    commits = json.loads(out)["commits"]
    assert [c["execution_count"] for c in commits] == [3, 2]


def test_show_and_diff(store, capsys):
    _, path = store
    _, out, _ = run(capsys, "log", path, "--json")
    ids = [c["id"] for c in json.loads(out)["commits"]]
    status, out, _ = run(capsys, "show", path, ids[0][:8])
    assert status == 0
    assert "del x" in out and "2 variables" in out
    status, out, _ = run(capsys, "diff", path, ids[2], ids[0], "--json")
    assert json.loads(out) == {"added": ["y", "z"], "deleted": ["x"], "changed": [],
                               "values": {}}


def test_gc_reports_what_it_removed(store, capsys):
    _, path = store
    status, out, _ = run(capsys, "gc", path)
    assert status == 0
    assert "removed" in out and "store on disk" in out and " MB -> " in out


def _big_store(tmp_path, cells: int = 12):
    import numpy as np

    path = tmp_path / "big"
    timeline = Timeline.open(path)
    ns: dict = {"__name__": "__main__"}
    timeline.start(ns)
    rng = np.random.default_rng(1)
    for count in range(1, cells + 1):
        ns["a"] = rng.random(60_000)
        timeline.checkpoint(ns, CellInfo(code=f"a = random {count}", execution_count=count))
    timeline.close()
    return path


def _disk(path):
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def test_gc_keep_last_thins_and_the_disk_shrinks(tmp_path, capsys):
    path = _big_store(tmp_path)
    before = _disk(path)
    status, out, _ = run(capsys, "gc", path, "--keep-last", "3", "--dry-run")
    assert status == 0 and "would thin 10 state(s)" in out and _disk(path) == before
    status, out, _ = run(capsys, "gc", path, "--keep-last", "3")
    assert status == 0 and "thinned 10 state(s): " in out and "[1], [2]" in out, out
    assert _disk(path) < before / 2
    status, out, _ = run(capsys, "log", path)
    assert "3 states" in out and "a = random 12" in out and "a = random 9" not in out


def test_gc_budget_keeps_the_store_under_it(tmp_path, capsys):
    path = _big_store(tmp_path)
    status, out, _ = run(capsys, "gc", path, "--budget", "1.5MB")
    assert status == 0, out
    assert _disk(path) <= 1_500_000


def test_gc_rejects_a_bad_age_clearly(store, capsys):
    _, path = store
    status, _, err = run(capsys, "gc", path, "--older-than", "7 days")
    assert status == 1 and "not an age" in err and "7d" in err
    status, _, err = run(capsys, "gc", path, "--every", "3")
    assert status == 1 and "--keep-last or --older-than" in err


def test_list_marks_orphans_and_prune_deletes_only_them(tmp_path, capsys):
    stores = tmp_path / "stores"
    kept_nb = tmp_path / "kept.ipynb"
    kept_nb.write_text("{}")
    gone_nb = tmp_path / "gone.ipynb"
    for notebook in (kept_nb, gone_nb):  # by another process, since ended
        subprocess.run([sys.executable, "-c", "import sys\nfrom timetravel_kernel.timeline "
                        "import Timeline\nTimeline.open(sys.argv[1], key=sys.argv[2]).close()",
                        str(store_path_for(stores, str(notebook))), str(notebook)], check=True)
    status, out, _ = run(capsys, "list", "--dir", stores)
    lines = {line.split()[0]: line for line in out.splitlines() if "ipynb-" in line}
    gone = store_path_for(stores, str(gone_nb)).name
    kept = store_path_for(stores, str(kept_nb)).name
    assert "[orphan" in lines[gone] and "[orphan" not in lines[kept]
    status, out, _ = run(capsys, "prune", "--orphans", "--dir", stores, "--dry-run")
    assert status == 0 and f"would delete {gone}" in out and (stores / gone).exists()
    status, out, _ = run(capsys, "prune", "--orphans", "--dir", stores)
    assert status == 0 and not (stores / gone).exists() and (stores / kept).exists()


def test_clear_errors(store, capsys, tmp_path):
    stores, path = store
    status, _, err = run(capsys, "log", tmp_path / "missing.ipynb", "--dir", stores)
    assert status == 1 and "no time-travel store" in err
    status, _, err = run(capsys, "show", path, "zzzz")
    assert status == 1 and "unknown-commit" not in err and "no commit" in err
    holder = Timeline.open(path, purpose="a running kernel")
    try:
        status, _, err = run(capsys, "gc", path)
        assert status == 1 and "a running kernel" in err
        status, out, _ = run(capsys, "log", path)  # read-only beside the live writer
        assert status == 0 and "states" in out
    finally:
        holder.close()


def test_gc_keeps_a_crashed_session_restorable(tmp_path, capsys):
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "crashed"
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os
        from timetravel_kernel.timeline import CellInfo, Timeline
        timeline = Timeline.open({str(path)!r})
        ns = {{"__name__": "__main__"}}
        timeline.start(ns)
        ns["x"] = 1
        timeline.checkpoint(ns, CellInfo(code="x = 1", execution_count=1), status="ok",
                            duration=0.0)
        os._exit(0)  # no close: as a crash
        """)], check=True)
    status, _, _ = run(capsys, "gc", path)
    assert status == 0
    timeline = Timeline.open(path)
    try:
        assert timeline.previous_session_crashed
        assert timeline.restorable is not None and timeline.restorable.code == "x = 1"
    finally:
        timeline.close()


def test_history_and_value_diff(store, capsys):
    _, path = store
    _, out, _ = run(capsys, "log", path, "--json")
    ids = [c["id"] for c in json.loads(out)["commits"]]
    status, out, _ = run(capsys, "history", path, "x")
    assert status == 0
    assert "2 versions of x" in out and "(deleted)" in out and "[1]" in out
    status, out, _ = run(capsys, "history", path, "x", "--json")
    versions = json.loads(out)["versions"]
    assert [v["covariable"] is None for v in versions] == [True, False]
    status, out, _ = run(capsys, "diff", path, ids[1], ids[0])
    assert status == 0 and "x     deleted" in out and "z     added" in out
    status, out, _ = run(capsys, "diff", path, ids[1], ids[0], "--names-only", "--json")
    assert "values" not in json.loads(out)
    status, _, err = run(capsys, "history", path, "nope")
    assert status == 1 and "never saved" in err
