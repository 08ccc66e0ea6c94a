"""CheckoutLoader (timeline/loading.py): where each version of a checkout comes from.

In order of preference: the live cache, the live objects patched in place, the store; an
unsaveable value is reconnected from its description. The namespace is only read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from timetravel_kernel.errors import NotEnoughMemoryError, SerializationError, StoreCorruptError
from timetravel_kernel.store import Commit
from timetravel_kernel.store.keys import encode_key
from timetravel_kernel.timeline import Timeline, TimelineOptions
from timetravel_kernel.timeline.livecache import LiveCache
from timetravel_kernel.timeline.loading import CheckoutLoader, Loaded
from timetravel_kernel.timeline.patching import BufferPatch
from timetravel_kernel.timeline.plan import plan_checkout

from ..factories import FRAGILE, checkpoint_cell
from ..workloads import fresh_namespace

OPTIONS = TimelineOptions(chunk_size=4096, inline_limit=256)


class Session:
    """Cells recorded on a real store, and checkouts loaded from it with a fresh cache."""

    def __init__(self, path: Path) -> None:
        self.timeline = Timeline.open(path, options=OPTIONS)
        self.ns = fresh_namespace()
        self.timeline.start(self.ns)
        self.store = self.timeline.object_store
        self.cache = LiveCache()

    def cell(self, code: str) -> Commit:
        return checkpoint_cell(self.timeline, self.ns, code)

    def load(self, live: Commit, target: Commit, *, strict: bool = False,
             reserve: Callable[[tuple[str, ...], int], None] | None = None) -> Loaded:
        """Load what checking out ``target`` from ``live`` (what the namespace equals) needs."""
        live_tree, target_tree = self.store.load_tree(live.tree), self.store.load_tree(target.tree)
        members = {c: self.store.load_covar(c).members for _, c in live_tree.items()}
        plan = plan_checkout(live_tree, target_tree, dirty=(), is_present=self.ns.__contains__)
        covars = {c: self.store.load_covar(c) for c in plan.load}
        loader = CheckoutLoader(self.store, OPTIONS, self.cache, live_tree, members, self.ns,
                                reserve=reserve)
        return loader.load(plan, covars, strict=strict)

    def version(self, commit: Commit, name: str):
        covar_of = self.store.lookup_name(commit.tree, name)
        return covar_of, self.store.load_covar(covar_of)


@pytest.fixture
def session(tmp_path: Path):
    session = Session(tmp_path / "store")
    yield session
    session.timeline.close()


def test_a_version_not_cached_is_read_from_the_store_and_the_namespace_is_left_alone(session):
    first = session.cell("x = [1]\nkeep = 'k'")
    second = session.cell("x = [2]\ny = 'new'")
    before = dict(session.ns)
    loaded = session.load(second, first)
    assert loaded.staged == {"x": [1]} and loaded.unrestored == {}
    assert [(c, values) for c, _, values in loaded.fresh] == [(session.version(first, "x")[0],
                                                                ([1],))]
    assert session.ns == before and session.ns["x"] == [2]


def test_cached_objects_come_back_as_themselves_unless_changed_since(session):
    first = session.cell("x = [1]")
    old = session.ns["x"]
    second = session.cell("x = [2]")
    session.cache.put(*session.version(first, "x"), (old,))
    loaded = session.load(second, first)
    assert loaded.staged["x"] is old and loaded.fresh == []
    old.append(9)  # the same object, another value than the version's
    loaded = session.load(second, first)
    assert loaded.staged["x"] == [1] and loaded.staged["x"] is not old
    assert len(loaded.fresh) == 1


def test_an_array_edited_in_place_is_patched_after_asking_for_the_memory(session):
    first = session.cell("import numpy as np\narr = np.arange(20_000.0)")
    second = session.cell("arr[5] = -1.0")
    live = session.ns["arr"]
    asked: list[tuple[tuple[str, ...], int]] = []
    loaded = session.load(second, first, reserve=lambda names, size: asked.append((names, size)))
    assert asked == [(("arr",), OPTIONS.chunk_size)]  # one chunk, not the whole array
    assert loaded.staged["arr"] is live and loaded.fresh[0][2][0] is live  # now that version
    assert [type(p) for p in loaded.patches] == [BufferPatch] and live[5] == -1.0
    for patch in loaded.patches:
        patch.apply()
    assert live[5] == 5.0


def test_a_refused_reservation_stops_the_load(session):
    first = session.cell("x = list(range(1000))")
    second = session.cell("x = None")

    def refuse(names: tuple[str, ...], size: int) -> None:
        raise NotEnoughMemoryError(f"{names} need {size} bytes", needed=size, available=0)

    with pytest.raises(NotEnoughMemoryError, match=r"\('x',\) need \d+ bytes"):
        session.load(second, first, reserve=refuse)


def test_a_version_that_no_longer_loads_keeps_the_live_value(session):
    first = session.cell(FRAGILE + "x = Fragile(1)\ny = [1]")
    second = session.cell("x = Fragile(2)\ny = [2]")
    for strict in (False, True):  # a value, not the store: strict or not, the live one stays
        loaded = session.load(second, first, strict=strict)
        assert loaded.staged == {"y": [1]} and loaded.kept == {"x"}
        assert loaded.unrestored["x"].startswith("kept as it is: ")
        assert "cannot come back" in loaded.unrestored["x"]


def test_a_damaged_store_raises_and_strict_names_what_it_cannot_restore(session):
    first = session.cell("import numpy as np\nx = np.arange(100.0)")
    second = session.cell("x = None")
    _, covar = session.version(first, "x")
    [chunk] = covar.buffers[1].chunks
    session.store.backend.write_batch([(encode_key("chunk", chunk), b"\x00damaged")])
    with pytest.raises(StoreCorruptError):
        session.load(second, first)  # the caller decides what a damaged store means
    with pytest.raises(SerializationError, match="cannot be restored"):
        session.load(second, first, strict=True)


def test_an_unsaveable_value_is_reconnected_from_its_description_else_unrestored(session):
    first = session.cell("import threading\nheld = threading.Lock(); held.acquire()\n"
                         "gen = (i for i in range(3))")
    second = session.cell("del held, gen")
    loaded = session.load(second, first)  # a fresh cache: as after a restart
    assert loaded.staged["held"].locked() and "held" not in loaded.unrestored
    assert [c for c, _, _ in loaded.reconnected] == [session.version(first, "held")[0]]
    assert "gen" not in loaded.staged
    assert loaded.unrestored["gen"].startswith("a running generator or coroutine cannot be saved")
