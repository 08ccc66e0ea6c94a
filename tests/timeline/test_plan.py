from __future__ import annotations

from timetravel_kernel.ids import CovarId, hash_bytes
from timetravel_kernel.store import NamespaceTree
from timetravel_kernel.timeline.plan import load_order, plan_checkout


def cid(text: str) -> CovarId:
    return CovarId(hash_bytes(text.encode()))


def tree(entries: dict[str, CovarId]) -> NamespaceTree:
    return NamespaceTree.empty().updated(entries)[0]


def test_plan_keeps_same_versions_loads_others_and_deletes_extras() -> None:
    live = tree({"a": cid("a1"), "b": cid("b1"), "extra": cid("x")})
    target = tree({"a": cid("a1"), "b": cid("b0"), "gone": cid("g")})
    plan = plan_checkout(live, target, dirty=set(), is_present=lambda n: True)
    assert plan.keep == ("a",)
    assert plan.load == {cid("b0"): ("b",), cid("g"): ("gone",)}
    assert plan.delete == ("extra",)


def test_dirty_names_are_reloaded_or_deleted() -> None:
    live = tree({"a": cid("a1")})
    target = tree({"a": cid("a1")})
    plan = plan_checkout(live, target, dirty={"a", "new"}, is_present=lambda n: True)
    assert plan.load == {cid("a1"): ("a",)}
    assert plan.delete == ("new",)
    assert plan.keep == ()


def test_identical_trees_need_nothing() -> None:
    live = tree({f"v{i}": cid(str(i)) for i in range(3000)})
    plan = plan_checkout(live, live, dirty=set(), is_present=lambda n: True)
    assert plan.load == {} and plan.delete == () and len(plan.keep) == 3000


def test_load_order_puts_referenced_names_first_and_survives_cycles() -> None:
    load = {cid("p"): ("p",), cid("P"): ("Point",), cid("q"): ("q",)}
    refs = {cid("p"): ("Point",), cid("P"): (), cid("q"): ("p",)}
    order = load_order(load, refs)
    assert order.index(cid("P")) < order.index(cid("p")) < order.index(cid("q"))
    cyclic = load_order({cid("x"): ("x",), cid("y"): ("y",)},
                        {cid("x"): ("y",), cid("y"): ("x",)})
    assert sorted(cyclic) == sorted([cid("x"), cid("y")])
