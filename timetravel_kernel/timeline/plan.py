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
    load: dict[CovarId, list[str]] = {}
    delete: set[str] = set()
    for index, (live_id, target_id) in enumerate(
        zip(live.bucket_ids, target.bucket_ids, strict=True)
    ):
        if live_id == target_id:
            continue
        live_bucket, target_bucket = live.buckets[index], target.buckets[index]
        for name, covar_id in target_bucket.items():
            if live_bucket.get(name) != covar_id:
                load.setdefault(covar_id, []).append(name)
        delete.update(name for name in live_bucket if name not in target_bucket)
    # A name changed since the live tree was recorded is reloaded, or deleted if the target
    # lacks it; a name the live tree has but the namespace lost is reloaded.
    for name in dirty:
        covar_id = target.get(name)
        if covar_id is None:
            delete.add(name)
        elif name not in load.get(covar_id, ()):
            load.setdefault(covar_id, []).append(name)
    delete = {name for name in delete if is_present(name)}
    loading = {name for names in load.values() for name in names}
    # Tree order (by bucket, then name) is deterministic; sorting 3000 names would cost more
    # than the rest of a small undo.
    keep = tuple(n for n in target.as_dict() if n not in loading)
    return CheckoutPlan(
        keep, {c: tuple(sorted(ns)) for c, ns in load.items()}, tuple(sorted(delete))
    )


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
