"""In-place checkout (timeline/patching.py): rewrite only the chunks that differ, or refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from timetravel_kernel.errors import StoreCorruptError
from timetravel_kernel.state import fingerprint
from timetravel_kernel.store import Covar
from timetravel_kernel.store.keys import encode_key
from timetravel_kernel.timeline import Timeline, TimelineOptions
from timetravel_kernel.timeline.patching import plan_in_place

from ..factories import checkpoint_cell
from ..workloads import fresh_namespace

OPTIONS = TimelineOptions(chunk_size=4096, inline_limit=256)


@pytest.fixture
def recorded(tmp_path: Path):
    """Checkpoint cells on a timeline; return (timeline, namespace, covar of arr per cell)."""
    opened: list[Timeline] = []

    def record(*cells: str) -> tuple[Timeline, dict, list[Covar]]:
        timeline = Timeline.open(tmp_path / "store", options=OPTIONS)
        opened.append(timeline)
        ns = fresh_namespace()
        timeline.start(ns)
        store = timeline.object_store
        commits = [checkpoint_cell(timeline, ns, code) for code in cells]
        return timeline, ns, [store.load_covar(store.lookup_name(c.tree, "arr")) for c in commits]

    yield record
    for timeline in opened:
        timeline.close()


def serialized(ns: dict):
    """Return how the live arr serializes (its buffers are views of its memory)."""
    found = fingerprint((ns["arr"],), ns, ("arr",), OPTIONS)
    assert found is not None
    return found[1]


def test_only_the_chunks_that_differ_are_read_and_written_into_the_live_array(recorded):
    timeline, ns, (before, after) = recorded(
        "import numpy as np\narr = np.arange(20_000.0)", "arr[5] = -1.0\narr[19_999] = -2.0")
    live = ns["arr"]
    asked: list[int] = []
    patches = plan_in_place(timeline.object_store, after, before, serialized(ns),
                            reserve=asked.append)
    assert asked == [2 * OPTIONS.chunk_size]  # two chunks, asked for before any is read
    assert len(patches) == 2 and live[5] == -1.0  # nothing is written until applied
    for patch in patches:
        patch.apply()
    assert ns["arr"] is live and np.array_equal(live, np.arange(20_000.0))


@pytest.mark.parametrize("change", [
    "arr = np.arange(20_001.0)",  # another size
    "arr = arr.astype(np.int64)",  # another skeleton (dtype), same size
])
def test_versions_that_differ_in_more_than_buffer_bytes_are_loaded_whole(recorded, change):
    timeline, ns, (before, after) = recorded("import numpy as np\narr = np.arange(20_000.0)",
                                             change)
    assert plan_in_place(timeline.object_store, after, before, serialized(ns)) is None


def test_a_read_only_array_is_never_written_into(recorded):
    timeline, ns, (before, after) = recorded(
        "import numpy as np\narr = np.arange(20_000.0)", "arr[5] = -1.0")
    ns["arr"].flags.writeable = False  # after the checkpoint: the versions have one skeleton
    assert plan_in_place(timeline.object_store, after, before, serialized(ns)) is None


def test_an_unchanged_version_needs_no_patch(recorded):
    timeline, ns, (version,) = recorded("import numpy as np\narr = np.arange(20_000.0)")
    assert plan_in_place(timeline.object_store, version, version, serialized(ns)) == []


def test_a_damaged_chunk_fails_before_anything_is_written(recorded):
    timeline, ns, (before, after) = recorded(
        "import numpy as np\narr = np.arange(20_000.0)", "arr[5] = -1.0\narr[19_999] = -2.0")
    changed = [old for old, new in zip(before.buffers[1].chunks, after.buffers[1].chunks,
                                       strict=True) if old != new]
    store = timeline.object_store
    store.backend.write_batch([(encode_key("chunk", changed[-1]), b"\x00damaged")])
    with pytest.raises(StoreCorruptError):
        plan_in_place(store, after, before, serialized(ns))
    assert ns["arr"][5] == -1.0 and ns["arr"][19_999] == -2.0
