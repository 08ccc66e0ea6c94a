"""Retention: thinning old states, a size budget, and garbage collection that frees disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from timetravel_kernel.errors import UnknownCommitError
from timetravel_kernel.ids import CommitId, hash_bytes
from timetravel_kernel.timeline import CellInfo, RetentionPolicy, Timeline
from timetravel_kernel.timeline.retention import parse_age, parse_size, plan_thinning

from ..factories import make_commit, open_timeline
from ..workloads import fresh_namespace


def _chain(n: int, *, branch_at: int | None = None) -> dict[CommitId, object]:
    """Commits c0..c(n-1) one second apart, each writing 1000 bytes; optionally a side tip."""
    commits = {}
    parent = None
    for i in range(n):
        commit = make_commit(parent=parent, time=float(i), bytes_written=1000,
                             code=f"cell {i}")
        commit = type(commit)(**{**{f: getattr(commit, f) for f in commit.__dataclass_fields__},
                                 "id": CommitId(hash_bytes(b"c%d" % i))})
        commits[commit.id] = commit
        parent = commit.id
    if branch_at is not None:
        base = CommitId(hash_bytes(b"c%d" % branch_at))
        side = make_commit(parent=base, time=branch_at + 0.5, bytes_written=1000)
        side = type(side)(**{**{f: getattr(side, f) for f in side.__dataclass_fields__},
                             "id": CommitId(hash_bytes(b"side"))})
        commits[side.id] = side
    return commits


def _name(commit_id: CommitId) -> str:
    for i in range(100):
        if hash_bytes(b"c%d" % i) == commit_id:
            return f"c{i}"
    return "side"


def test_age_limits_keep_the_newest_branch_tips_and_one_per_n():
    commits = _chain(10, branch_at=2)
    head = CommitId(hash_bytes(b"c9"))
    policy = RetentionPolicy(keep_last=3, older_than=0.0, every=2)
    plan = plan_thinning(commits, set(), {head}, head, policy, now=100.0, store_bytes=0)
    # c7-c9 are the newest three; the side tip stays; of c0..c6 one in two is kept.
    assert [_name(c) for c in plan] == ["c1", "c3", "c5"]


def test_a_budget_thins_away_from_head_first_and_head_path_last():
    commits = _chain(6, branch_at=1)
    head = CommitId(hash_bytes(b"c5"))
    side_parent_only = RetentionPolicy(budget=5500)
    plan = plan_thinning(commits, set(), {head}, head, side_parent_only, now=0.0,
                         store_bytes=7000)
    assert [_name(c) for c in plan] == ["c0", "c1"]
    tight = RetentionPolicy(budget=0)
    plan = plan_thinning(commits, set(), {head}, head, tight, now=0.0, store_bytes=7000)
    assert "c5" not in map(_name, plan) and "side" not in map(_name, plan)  # HEAD and a tip
    assert [_name(c) for c in plan] == ["c0", "c1", "c2", "c3", "c4"]


@pytest.mark.parametrize(("text", "value"), [("7d", 7 * 86400), ("90s", 90), ("1.5h", 5400)])
def test_ages_parse(text, value):
    assert parse_age(text) == value


@pytest.mark.parametrize(("text", "value"), [("2GB", 2 * 10**9), ("500 MB", 5 * 10**8),
                                             ("1GiB", 2**30), ("1234", 1234)])
def test_sizes_parse(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("bad", ["7", "d", "-1d", "soon"])
def test_bad_ages_say_what_is_expected(bad):
    with pytest.raises(ValueError, match=r"e\.g\. 90s"):
        parse_age(bad)


def _session(timeline: Timeline, cells: int) -> tuple[dict, dict[CommitId, dict]]:
    """Run cells that each replace a 400 kB random array; return the namespace and states."""
    ns = fresh_namespace()
    timeline.start(ns)
    states = {}
    rng = np.random.default_rng(7)
    for i in range(cells):
        ns["a"] = rng.random(50_000)
        ns["i"] = i
        commit = timeline.checkpoint(ns, CellInfo(code=f"cell {i}", execution_count=i + 1))
        states[commit.commit.id] = {"a": ns["a"].copy(), "i": i}
    return ns, states


def test_gc_gives_the_disk_back(tmp_path: Path):
    timeline = open_timeline(tmp_path / "store")
    _session(timeline, 20)
    report = timeline.apply_retention(RetentionPolicy(keep_last=2, older_than=0.0))
    assert len(report.thinned) >= 17
    garbage = report.garbage
    assert garbage is not None and garbage.objects > 0
    # The 18 arrays given up were most of the store: the disk says so, not only the report.
    assert garbage.disk_after < garbage.disk_before / 3
    assert timeline.store_bytes() == garbage.disk_after
    timeline.close()


def test_a_long_session_under_a_small_budget_stays_under_it(tmp_path: Path):
    budget = 2_000_000  # five of the forty 400 kB states
    timeline = open_timeline(tmp_path / "store")
    ns, states = _session(timeline, 40)
    report = timeline.apply_retention(RetentionPolicy(budget=budget))
    assert report.garbage is not None and report.garbage.disk_after <= budget
    assert timeline.store_bytes() <= budget
    kept = {c.id for c in timeline.log()}
    thinned = {c.id for c in report.thinned}
    assert thinned and not kept & thinned and timeline.head.id in kept
    # Every state kept checks out exactly; thinned ones are refused by name.
    for commit_id in kept & states.keys():
        timeline.checkout(ns, commit_id)
        assert ns["i"] == states[commit_id]["i"]
        np.testing.assert_array_equal(ns["a"], states[commit_id]["a"])
    with pytest.raises(UnknownCommitError, match="thinned"):
        timeline.checkout(ns, next(iter(thinned)))
    assert timeline._store.verify() > 0
    timeline.close()
    # The next session sees the same: thinned states stay out of the log.
    again = open_timeline(tmp_path / "store")
    assert {c.id for c in again.log()} == kept
    again.close()


def test_a_budget_is_planned_on_what_is_stored_not_on_files_waiting_for_deletion(
        tmp_path: Path):
    """Replaced files pinned by a read once made a plan thin every state (the kernel's
    background thinning: it measured the disk while a compaction's leftovers were on it)."""
    budget = 2_000_000  # five of the 400 kB states
    timeline = open_timeline(tmp_path / "store", chunk_size=128 * 1024)  # blob files
    ns, _ = _session(timeline, 12)
    backend = timeline._store.backend
    backend.flush()
    reading = backend.scan_prefix(b"")
    next(reading)
    timeline.apply_retention(RetentionPolicy(budget=budget))
    assert timeline.store_bytes() > budget  # the compaction's leftovers, still pinned
    for i in range(12, 16):
        ns["a"] = np.random.default_rng(i).random(50_000)
        timeline.checkpoint(ns, CellInfo(code=f"cell {i}", execution_count=i + 1))
    timeline.apply_retention(RetentionPolicy(budget=budget))
    kept = [c for c in timeline.log() if c.code.startswith("cell")]
    assert 3 <= len(kept) <= 5, [c.code for c in kept]
    assert timeline.store_bytes(live=True) <= budget
    reading.close()
    timeline.close()


def test_undo_steps_over_thinned_states(tmp_path: Path):
    timeline = open_timeline(tmp_path / "store")
    ns, states = _session(timeline, 6)
    order = list(states)
    timeline._store.mark_thinned(order[2:5])
    timeline._history.thin(set(order[2:5]))
    timeline.undo(ns)
    assert ns["i"] == 1
    timeline.close()


def test_a_dry_run_changes_nothing(tmp_path: Path):
    timeline = open_timeline(tmp_path / "store")
    _session(timeline, 5)
    before = timeline.store_bytes()
    report = timeline.apply_retention(RetentionPolicy(keep_last=1, older_than=0.0),
                                      dry_run=True)
    assert len(report.thinned) == 5 and report.garbage is None  # all but HEAD
    assert timeline.commit_count() == 6 and timeline.store_bytes() == before
    timeline.close()
