"""CheckoutPlan: which names a checkout keeps, loads and deletes (timeline layer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from timetravel_kernel.ids import CovarId
    from timetravel_kernel.store.tree import NamespaceTree

__all__ = ["CheckoutPlan", "load_order", "plan_checkout", "with_referrers"]


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


def with_referrers(
    plan: CheckoutPlan,
    target: NamespaceTree,
    refs: Mapping[CovarId, tuple[str, ...]],
    members: Mapping[CovarId, tuple[str, ...]],
) -> CheckoutPlan:
    """Return the plan with kept co-variables that refer by name to a moving name loaded too.

    A stream names the value it refers to (a notebook class, another name's unsaveable value),
    not the object: ``held = {'lock': lock}`` has one version whichever lock it holds. When
    ``lock`` takes another value, ``held`` must be loaded again to hold that one, and what
    refers to ``held`` in turn. ``refs`` and ``members`` are known for every live version.
    """
    moving = {n for names in plan.load.values() for n in names} | set(plan.delete)
    kept = set(plan.keep)
    load = {c: list(names) for c, names in plan.load.items()}
    changed = True
    while changed:
        changed = False
        for covar_id, names in refs.items():
            if moving.isdisjoint(names):
                continue
            held = [m for m in members.get(covar_id, ()) if m in kept and target.get(m) == covar_id]
            if held:
                kept.difference_update(held)
                moving.update(held)
                load.setdefault(covar_id, []).extend(held)
                changed = True
    if len(kept) == len(plan.keep):
        return plan
    return CheckoutPlan(tuple(n for n in plan.keep if n in kept),
                        {c: tuple(sorted(ns)) for c, ns in load.items()}, plan.delete)


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
