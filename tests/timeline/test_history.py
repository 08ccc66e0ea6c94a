"""History (timeline/history.py): the commit index, the versions of one name, tree diffs."""

from __future__ import annotations

from pathlib import Path

import pytest

from timetravel_kernel.errors import UnknownCommitError, UnknownNameError
from timetravel_kernel.ids import CovarId, TreeId, hash_bytes
from timetravel_kernel.store import Commit, MemoryBackend, NamespaceTree, ObjectStore
from timetravel_kernel.timeline import DiffResult, Timeline
from timetravel_kernel.timeline.history import CommitIndex, diff_trees, name_history

from ..factories import checkpoint_cell, commit_covars, make_commit, make_covar, open_timeline
from ..workloads import fresh_namespace


def test_history_lists_the_versions_of_one_name_without_loading(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    first = checkpoint_cell(timeline, ns, "df = [1, 2, 3]\nx = 1", 1)
    checkpoint_cell(timeline, ns, "x = 2", 2)
    third = checkpoint_cell(timeline, ns, "df.append(4)", 3)
    deleted = checkpoint_cell(timeline, ns, "del df", 4)
    versions = timeline.history("df")
    assert [v.commit.id for v in versions] == [deleted.id, third.id, first.id]
    assert versions[0].covariable is None and not versions[0].current
    assert versions[1].type == "list" and versions[1].saved and versions[1].members == ("df",)
    assert versions[1].covariable != versions[2].covariable
    assert [v.commit.execution_count for v in timeline.history("x")] == [2, 1]
    assert timeline.history("x")[0].current
    with pytest.raises(UnknownNameError, match="never saved"):
        timeline.history("nope")


def test_history_works_on_a_read_only_store(tmp_path: Path) -> None:
    writer = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    writer.start(ns)
    checkpoint_cell(writer, ns, "x = 1", 1)
    checkpoint_cell(writer, ns, "x = 2", 2)
    reader = Timeline.open(tmp_path / "store", read_only=True)
    assert [v.commit.execution_count for v in reader.history("x")] == [2, 1]
    reader.close()
    writer.close()


def chain(store: ObjectStore, count: int) -> list[Commit]:
    """Commit ``count`` states of x, a second apart, each on the last."""
    commits: list[Commit] = []
    tree = NamespaceTree.empty()
    for number in range(count):
        covar = make_covar(members=("x",), types=("int",), nbytes=number, refs=())
        commit, tree = commit_covars(store, commits[-1] if commits else None, tree, {"x": covar},
                                     time=1000.0 + number, execution_count=number + 1)
        commits.append(commit)
    return commits


def test_the_index_lists_newest_first_and_resolves_unique_prefixes() -> None:
    store = ObjectStore(MemoryBackend())
    a, b, c = chain(store, 3)
    index = CommitIndex(store)
    assert len(index) == 3 and index.log() == [c, b, a] and index.log(limit=2) == [c, b]
    assert index.resolve(a.id.hex()) == a.id
    assert index.resolve(" " + b.id.hex()[:8].upper()) == b.id
    for text in (a.id.hex()[:3], "zzzz", c.id.hex() + "00"):
        with pytest.raises(UnknownCommitError):
            index.resolve(text)


def test_a_prefix_two_commits_share_names_neither() -> None:
    store = ObjectStore(MemoryBackend())
    by_prefix: dict[str, Commit] = {}
    tree = NamespaceTree.empty()
    for number in range(2000):  # ids are hashes of fixed records: the same pair every run
        commit, _ = commit_covars(store, None, tree, {}, code=f"x = {number}")
        twin = by_prefix.setdefault(commit.id.hex()[:4], commit)
        if twin is not commit:
            break
    else:
        pytest.fail("no two ids shared a prefix")
    index = CommitIndex(store)
    with pytest.raises(UnknownCommitError):
        index.resolve(commit.id.hex()[:4])
    assert index.resolve(commit.id.hex()[:12]) == commit.id  # a longer prefix tells them apart


def test_thinned_commits_are_hidden_but_keep_the_way_back_to_a_kept_ancestor() -> None:
    store = ObjectStore(MemoryBackend())
    a, b, c = chain(store, 3)
    store.mark_thinned([b.id, c.id])
    index = CommitIndex(store)
    assert index.log() == [a] and len(index) == 1 and len(index.every()) == 3
    with pytest.raises(UnknownCommitError, match="thinned"):
        index.get(c.id)
    assert index.kept_ancestor(c.id) == a.id and index.kept_ancestor(a.id) == a.id
    index.thin({a.id})  # retention gave up the last one too
    assert index.kept_ancestor(c.id) is None and index.log() == []


def test_commits_written_after_the_first_read_are_added() -> None:
    store = ObjectStore(MemoryBackend())
    [a] = chain(store, 1)
    index = CommitIndex(store)
    assert index.log() == [a]
    b, _ = commit_covars(store, a, NamespaceTree.empty(), {}, time=2000.0)
    assert index.log() == [a]  # read once, not on every call
    index.add(b)
    assert index.log() == [b, a] and index.get(b.id) == b


def test_a_tree_diff_lists_added_deleted_and_changed_names_sorted() -> None:
    ids = {n: CovarId(hash_bytes(n.encode())) for n in ("v1", "v2", "v3")}
    old, _ = NamespaceTree.empty().updated({"same": ids["v1"], "gone": ids["v1"],
                                            "b": ids["v1"], "a": ids["v2"]})
    new, _ = old.updated({"gone": None, "b": ids["v2"], "a": ids["v3"], "new": ids["v1"]})
    assert diff_trees(old, new) == DiffResult(added=("new",), deleted=("gone",),
                                              changed=("a", "b"))
    assert diff_trees(new, new) == DiffResult(added=(), deleted=(), changed=())


def test_a_names_versions_read_only_the_commits_that_changed_it() -> None:
    store = ObjectStore(MemoryBackend())
    saved = make_covar(members=("other", "x"), types=("list", "dict"), nbytes=70, refs=())
    unsaved = make_covar(members=("x",), serializer="unsaved", types=("generator",), nbytes=0,
                         buffers=(), refs=(), reason="it cannot be pickled")
    first, tree = commit_covars(store, None, NamespaceTree.empty(), {"x": saved, "other": saved})
    second, tree = commit_covars(store, first, tree, {"x": unsaved})
    third, tree = commit_covars(store, second, tree, {"x": None})
    # A commit that does not list x is never opened: its tree is not even in the store.
    elsewhere = make_commit(tree=TreeId(hash_bytes(b"absent")), changed=("y",))
    versions = name_history(store, [third, elsewhere, second, first], "x",
                            current=tree.get("x"))
    assert [v.commit for v in versions] == [third, second, first]
    deleted, lost, kept = versions
    assert deleted.covariable is None and not deleted.saved and deleted.type == ""
    assert not lost.saved and lost.reason == "it cannot be pickled" and lost.type == "generator"
    assert kept.saved and kept.type == "dict" and kept.members == ("other", "x")
    assert kept.bytes == 70 and not kept.current
    now = CovarId(bytes.fromhex(lost.covariable))
    assert name_history(store, [second], "x", current=now)[0].current
