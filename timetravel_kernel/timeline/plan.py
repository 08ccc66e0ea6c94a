"""CheckoutPlan: which names a checkout keeps, loads and deletes (timeline layer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

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
    present: Collection[str],
    dirty: Collection[str],
) -> CheckoutPlan:
    """Plan the move from ``live`` to ``target``.

    Args:
        live: the tree the namespace equals (HEAD).
        target: the tree to reach.
        present: tracked names now in the namespace.
        dirty: names that may have changed since ``live`` was recorded.
    """
    members: dict[CovarId, list[str]] = {}
    for name, covar_id in target.items():
        members.setdefault(covar_id, []).append(name)
    keep: list[str] = []
    load: dict[CovarId, tuple[str, ...]] = {}
    for covar_id, names in members.items():
        if all(n in present and n not in dirty and live.get(n) == covar_id for n in names):
            keep += names
        else:
            load[covar_id] = tuple(sorted(names))
    delete = tuple(sorted(n for n in present if n not in target))
    return CheckoutPlan(tuple(sorted(keep)), load, delete)


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
