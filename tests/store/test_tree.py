from __future__ import annotations

from timetravel_kernel.ids import CovarId, hash_bytes
from timetravel_kernel.store import NamespaceTree


def cid(text: str) -> CovarId:
    return CovarId(hash_bytes(text.encode()))


def test_empty_tree_has_a_stable_id() -> None:
    assert NamespaceTree.empty().root_id == NamespaceTree.empty().root_id
    assert len(NamespaceTree.empty()) == 0


def test_update_adds_changes_and_deletes() -> None:
    tree, _ = NamespaceTree.empty().updated({"a": cid("1"), "b": cid("2")})
    tree2, _ = tree.updated({"a": cid("3"), "b": None})
    assert tree2.as_dict() == {"a": cid("3")}
    assert "b" in tree and "b" not in tree2
    assert tree.get("a") == cid("1")


def test_small_change_rewrites_one_bucket_and_the_root() -> None:
    tree, _ = NamespaceTree.empty().updated({f"v{i}": cid(str(i)) for i in range(3000)})
    _, records = tree.updated({"v10": cid("new")})
    assert len(records) == 2
    assert sum(len(r) for r in records.values()) < 3000


def test_equal_contents_give_equal_ids_whatever_the_order() -> None:
    one, _ = NamespaceTree.empty().updated({"a": cid("1"), "b": cid("2")})
    two, _ = NamespaceTree.empty().updated({"b": cid("2")})
    two, _ = two.updated({"a": cid("1")})
    assert one.root_id == two.root_id
    back, _ = one.updated({"a": None, "b": None})
    assert back.root_id == NamespaceTree.empty().root_id
