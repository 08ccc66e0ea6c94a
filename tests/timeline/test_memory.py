"""A state the memory left cannot hold is refused, and a restore that killed its process is
not tried again unasked."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from timetravel_kernel.errors import NotEnoughMemoryError
from timetravel_kernel.store.refs import REF_HEAD, REF_RESTORING
from timetravel_kernel.timeline import CellInfo, Timeline, memory
from timetravel_kernel.timeline.memory import estimated_bytes, memory_left

from ..factories import open_timeline
from ..workloads import fresh_namespace, run_cell

MB = 1 << 20


def step(timeline: Timeline, ns: dict, code: str):
    run_cell(ns, code)
    return timeline.checkpoint(ns, CellInfo(code=code, execution_count=len(code)))


@pytest.fixture
def saved_state(tmp_path: Path) -> Path:
    """A store whose last state is a 40 MB array and a small list, left by a crashed kernel."""
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "import numpy as np\nbig = np.arange(5_000_000.0)\nsmall = [1, 2, 3]")
    timeline._store.close()  # no clean close: as after a crash
    return tmp_path / "store"


def free_memory(monkeypatch: pytest.MonkeyPatch, amount: int) -> None:
    # A mock of /proc/meminfo: making the shared test machine short of memory for real would
    # endanger everyone's processes on it.
    monkeypatch.setattr(memory, "memory_available", lambda: amount)


def test_a_restore_that_does_not_fit_is_refused_and_changes_nothing(
        saved_state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    free_memory(monkeypatch, 20_000_000)
    timeline = open_timeline(saved_state)
    ns = fresh_namespace()
    timeline.start(ns)
    head = timeline.head
    restorable = timeline.restorable
    with pytest.raises(NotEnoughMemoryError) as refused:
        timeline.restore(ns)
    message = str(refused.value)
    assert "big" in message and "40 MB" in message and "20 MB is free" in message, message
    assert f"%tt get small@{restorable.id.hex()[:10]}" in message
    assert refused.value.needed >= 40_000_000 and refused.value.available == 20_000_000
    assert ns == fresh_namespace() and timeline.head == head
    assert timeline.restorable == restorable  # still on offer
    assert timeline._store.read_ref(REF_RESTORING) is None
    # What the message suggests works: the small name alone fits.
    result = timeline.restore_variable(ns, "small", restorable.id)
    assert result.loaded == ("small",) and ns["small"] == [1, 2, 3]
    with pytest.raises(NotEnoughMemoryError):
        timeline.restore_variable(ns, "big", restorable.id)
    free_memory(monkeypatch, 200 * MB)
    timeline.restore(ns)
    assert np.array_equal(ns["big"], np.arange(5_000_000.0))
    timeline.close()


def test_an_in_place_undo_reads_no_whole_value_so_needs_no_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, "import numpy as np\nbig = np.arange(5_000_000.0)")
    step(timeline, ns, "big[:10] = -1.0")
    free_memory(monkeypatch, 1 * MB)
    timeline.undo(ns)
    assert ns["big"][0] == 0.0
    step(timeline, ns, "big = big * 2")
    with pytest.raises(NotEnoughMemoryError):  # this one must load the old array whole
        timeline.undo(ns)
    assert ns["big"][1] == 2.0
    timeline.close()


def test_the_estimate_counts_buffers_and_what_streams_become(saved_state: Path) -> None:
    timeline = open_timeline(saved_state)
    restorable = timeline.restorable
    tree = timeline._store.load_tree(restorable.tree)
    covar = timeline._store.load_covar(tree.get("big"))
    assert estimated_bytes(covar) >= 40_000_000
    assert 40_000_000 <= timeline.estimated_size(restorable.id) < 41_000_000
    timeline.close()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_containers_memory_limit_counts_with_its_page_cache_free(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    free_memory(monkeypatch, 64 << 30)
    root = tmp_path / "cgroup"
    if version == "v2":
        membership = "0::/kubepods/pod1\n"
        folder = root / "kubepods/pod1"
        files = {"memory.max": "4000000000", "memory.current": "3500000000",
                 "memory.stat": "anon 3000000000\nfile 300000000\n"}
    else:
        membership = "4:memory:/docker/abc\n2:cpu:/docker/abc\n"
        folder = root / "memory/docker/abc"
        files = {"memory.limit_in_bytes": "4000000000", "memory.usage_in_bytes": "3500000000",
                 "memory.stat": "cache 1\ntotal_cache 300000000\n"}
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    (tmp_path / "cgroup-self").write_text(membership)
    assert memory_left(tmp_path / "cgroup-self", root) == 800_000_000
    limit = next(name for name in files if "max" in name or "limit" in name)
    (folder / limit).write_text("max" if version == "v2" else str(1 << 62))  # no limit
    assert memory_left(tmp_path / "cgroup-self", root) == 64 << 30


DIE_WHILE_RESTORING = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, os.getcwd())
    from tests.factories import open_timeline
    from tests.workloads import fresh_namespace
    timeline = open_timeline(sys.argv[1])
    ns = fresh_namespace()
    timeline.start(ns)
    timeline.restore(ns)  # Bomb.__setstate__ kills the process, as the OOM killer would
    print("survived")
""")


def test_a_process_that_died_while_restoring_is_not_restored_again_unasked(
        tmp_path: Path) -> None:
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    step(timeline, ns, textwrap.dedent("""
        class Bomb:
            def __setstate__(self, state):
                import os
                if os.environ.get("TT_TEST_BOMB"):
                    os._exit(9)
                self.__dict__.update(state)
        bomb = Bomb()
        bomb.armed = True
        x = 42
    """))
    timeline._store.close()  # crashed
    died = subprocess.run([sys.executable, "-c", DIE_WHILE_RESTORING, str(tmp_path / "store")],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, "TT_TEST_BOMB": "1"})
    assert died.returncode == 9 and "survived" not in died.stdout, died.stderr
    again = open_timeline(tmp_path / "store")
    assert again.previous_session_crashed and again.restore_interrupted
    assert again._store.read_ref(REF_RESTORING) == again.restorable.id
    fresh = fresh_namespace()
    again.start(fresh)
    again.restore(fresh)  # asked for: tried, and (no bomb now) it works
    assert fresh["x"] == 42 and not again.restore_interrupted
    assert again._store.read_ref(REF_RESTORING) is None
    assert again._store.read_ref(REF_HEAD) is not None
    again.close()
