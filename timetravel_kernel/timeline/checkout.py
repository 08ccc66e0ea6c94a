"""Checkouts: make the namespace equal to a commit - plan, load, apply (timeline layer).

Undo, redo, jumps and restores are checkouts to particular commits. Only co-variables that
differ from the live state are loaded (``timeline/loading.py``), everything is loaded before
anything is applied, and the live state then says the namespace equals the target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timetravel_kernel.errors import NothingToRedoError, NothingToUndoError, TimelineError
from timetravel_kernel.store.refs import REF_HEAD
from timetravel_kernel.timeline.loading import CheckoutLoader
from timetravel_kernel.timeline.memory import MemoryGuard
from timetravel_kernel.timeline.plan import plan_checkout, with_referrers
from timetravel_kernel.timeline.results import CheckoutResult

if TYPE_CHECKING:
    from collections.abc import Iterable

    from timetravel_kernel.ids import CommitId, CovarId
    from timetravel_kernel.state import TimelineOptions
    from timetravel_kernel.store import Commit, Covar, ObjectStore
    from timetravel_kernel.timeline.history import CommitIndex
    from timetravel_kernel.timeline.livestate import LiveState

__all__ = ["Checkouts"]

Namespace = dict[str, object]


def _without(names: tuple[str, ...], drop: Namespace) -> tuple[str, ...]:
    """Return ``names`` minus the keys of ``drop`` (in C when nothing is dropped)."""
    if drop.keys().isdisjoint(names):
        return names
    return tuple(n for n in names if n not in drop)


@dataclass(slots=True)
class Checkouts:
    """Moves the namespace to commits of one timeline.

    Attributes:
        live: the live state it reads the plan from and updates.
        store: where the versions are read from (and HEAD written, unless read-only).
        options: what is saved (which names are tracked, how buffers are cut).
        history: the commit index.
    """

    live: LiveState
    store: ObjectStore
    options: TimelineOptions
    history: CommitIndex

    def undo(self, namespace: Namespace) -> CheckoutResult:
        """Go back to HEAD's parent (over thinned states); ``redo`` returns.

        Raises:
            NothingToUndoError: HEAD is a root.
        """
        head = self._require_head()
        parent = self.history.kept_ancestor(head.parent)
        if parent is None:
            raise NothingToUndoError("nothing to undo: this is the first state of the session")
        result = self.move(namespace, parent, strict=True)
        self.live.redo.append(head.id)
        return result

    def redo(self, namespace: Namespace) -> CheckoutResult:
        """Go forward to the commit the last undo left.

        Raises:
            NothingToRedoError: no undo since the last checkpoint or jump.
        """
        if not self.live.redo:
            raise NothingToRedoError("nothing to redo: no cell has been undone since")
        result = self.move(namespace, self.live.redo[-1], strict=True)
        self.live.redo.pop()
        return result

    def move(self, namespace: Namespace, commit_id: CommitId, *, strict: bool) -> CheckoutResult:
        """Make the namespace equal to a commit; all or nothing if the store cannot be read.

        ``strict``: a value that cannot be loaded keeps its live value (undo, jumps); without
        it (a restore) it is only named in ``unrestored``.

        Raises:
            UnknownCommitError: no such commit.
            NotEnoughMemoryError: the values to load would not fit; nothing changed.
            SerializationError, StoreError: the store could not be read; nothing changed.
        """
        started = time.perf_counter()
        self._require_head()
        live = self.live
        target = self.history.get(commit_id)
        target_tree = self.store.load_tree(target.tree)
        # Names rebound since the last checkpoint; in-place changes can only come from code
        # that ran without a checkpoint (silent executions), which the kernel does not record.
        dirty = {n for n in live.identities.changed(namespace) | live.unrecorded
                 if live.is_tracked(n)}
        plan = with_referrers(plan_checkout(
            live.tree, target_tree, dirty=dirty,
            is_present=lambda name: name in namespace and live.is_tracked(name),
        ), target_tree, live.covar_refs, live.members)
        covars = self._load_manifests(plan.load)
        loader = CheckoutLoader(self.store, self.options, live.cache, live.tree, live.members,
                                namespace, reserve=MemoryGuard(target, covars.values()).reserve)
        loaded = loader.load(plan, covars, strict=strict)
        staged, unrestored = loaded.staged, loaded.unrestored
        # Everything is loaded: apply in one go, so a failure above left the namespace as it was.
        for patch in loaded.patches:
            patch.apply()
        for covar_of, covar, values in loaded.fresh:
            live.cache.put(covar_of, covar, values)
        for covar_of, covar, values in loaded.reconnected:
            live.adopt_version(covar_of, covar, values)
        for name in (*plan.delete, *unrestored):
            if name not in loaded.kept:
                dict.pop(namespace, name, None)
        dict.update(namespace, staged)
        live.tree = target_tree
        if unrestored:
            live.tree, records = target_tree.updated(dict.fromkeys(unrestored))
            live.pending_tree.update(records)
        live.identities.record(namespace, {*dirty, *plan.delete, *unrestored, *staged})
        # a live value kept for want of a loadable one is not lost (nothing to rebuild), and
        # the next checkpoint examines it
        lost = {n: r for n, r in unrestored.items() if n not in loaded.kept}
        live.lost, live.lost_at = lost, target
        live.unreconnected = {n: lost[n] for n in loaded.unreconnected}
        live.unrecorded = set(loaded.kept)
        if not self.store.backend.read_only:
            self.store.set_refs({REF_HEAD: target.id})
        live.head = target
        return CheckoutResult(
            head=target,
            loaded=tuple(sorted(staged)),
            deleted=tuple(sorted(n for n in plan.delete if n not in staged)),
            kept=_without(plan.keep, staged),
            seconds=time.perf_counter() - started,
            unrestored=unrestored,
            reconnected=tuple(sorted(n for _, c, _ in loaded.reconnected for n in c.members)),
        )

    def _load_manifests(self, covar_ids: Iterable[CovarId]) -> dict[CovarId, Covar]:
        """Read a checkout's manifests, remembering what the live state needs of them."""
        covars = {c: self.store.load_covar(c) for c in covar_ids}
        for covar_of, covar in covars.items():
            self.live.note_covar(covar_of, covar)
        return covars

    def _require_head(self) -> Commit:
        head = self.live.head
        if head is None:
            raise TimelineError("the timeline has no session: call start(namespace) first")
        return head
