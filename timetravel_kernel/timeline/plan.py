"""CheckoutPlan: which names a checkout keeps, loads and deletes (timeline layer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from timetravel_kernel.ids import CovarId
    from timetravel_kernel.store.tree import NamespaceTree

__all__ = ["CheckoutPlan", "load_order", "plan_checkout"]


@dataclass(frozen=True, slots=True)
class CheckoutPlan:
    """The difference between the live namespace and a target commit.

    A co-variable is kept only when every member is unchanged and present, since loading any
    member re-creates the objects the members share.
    """

    keep: tuple[str, ...]
    load: Mapping[CovarId, tuple[str, ...]]
    delete: tuple[str, ...]


def plan_checkout(
    live: NamespaceTree,
    target: NamespaceTree,
    *,
    dirty: Collection[str],
    is_present: Callable[[str], bool],
) -> CheckoutPlan:
    """Plan the move from ``live`` to ``target``.

    Only names in buckets whose ids differ, and names changed since ``live`` was recorded,
    can need work, so the cost follows the difference, not the namespace.

    Args:
        live: the tree the namespace equals, except for ``dirty`` names.
        target: the tree to reach.
        dirty: names that may have changed (or appeared) since ``live`` was recorded.
        is_present: whether a tracked name is now in the namespace.
    """
    differing = [
        i for i, (a, b) in enumerate(zip(live.bucket_ids, target.bucket_ids, strict=True))
        if a != b
    ]
    suspects = set(dirty)
    for index in differing:
        suspects.update(live.buckets[index])
        suspects.update(target.buckets[index])
    load: dict[CovarId, list[str]] = {}
    for name in suspects:
        covar_id = target.get(name)
        if covar_id is None:
            continue
        if name in dirty or live.get(name) != covar_id or not is_present(name):
            load.setdefault(covar_id, []).append(name)
    delete = tuple(sorted(n for n in suspects if n not in target and is_present(n)))
    loading = {name for names in load.values() for name in names}
    keep = tuple(sorted(target.as_dict().keys() - loading))
    return CheckoutPlan(keep, {c: tuple(sorted(ns)) for c, ns in load.items()}, delete)


def load_order(
    load: Mapping[CovarId, tuple[str, ...]], refs: Mapping[CovarId, tuple[str, ...]]
) -> list[CovarId]:
    """Order covars so that one referring to a name by name loads after that name's covar.

    A cycle (rare: two notebook classes referring to each other by name) is broken
    arbitrarily; the later load then fails with a clear reason instead of hanging.
    """
    provider = {name: covar_id for covar_id, names in load.items() for name in names}
    order: list[CovarId] = []
    done: set[CovarId] = set()
    visiting: set[CovarId] = set()

    def visit(covar_id: CovarId) -> None:
        if covar_id in done or covar_id in visiting:
            return
        visiting.add(covar_id)
        for name in refs.get(covar_id, ()):
            dependency = provider.get(name)
            if dependency is not None:
                visit(dependency)
        visiting.discard(covar_id)
        done.add(covar_id)
        order.append(covar_id)

    for covar_id in sorted(load):
        visit(covar_id)
    return order
