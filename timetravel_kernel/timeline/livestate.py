"""LiveState: what the timeline knows of the live namespace between operations (timeline layer).

The namespace equals the commit ``head`` except for the names in ``unrecorded`` (code ran
without a checkpoint) and what rebinding the identities show. Checkpoints, checkouts and
rebuilds all read and update this one record, so each of them is a part handed the state
rather than a mixin sharing private attributes.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from timetravel_kernel.state import NameIdentities
from timetravel_kernel.store import NamespaceTree
from timetravel_kernel.timeline.livecache import LiveCache

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from timetravel_kernel.ids import CommitId, CovarId, TreeId
    from timetravel_kernel.state import TimelineOptions
    from timetravel_kernel.store import Commit, Covar

__all__ = ["MADE_BY", "LiveState"]

MADE_BY = "; it was made by "
"""Joins an unsaveable value's reason to the cell that made it (what rebuilds it)."""


class LiveState:
    """The committed state the namespace equals, and the bookkeeping of its co-variables.

    Args:
        options: what the timeline saves (decides which names are tracked).

    ``lock`` guards every field against the thread that commits background snapshots: hold
    it to read the tree and co-variable tables or to change them.
    """

    def __init__(self, options: TimelineOptions) -> None:
        self.options = options
        self.lock = threading.RLock()
        self.head: Commit | None = None
        self.tree = NamespaceTree.empty()
        self.pending_tree: dict[TreeId, bytes] = {}
        """Tree records of a tree changed without a commit (a checkout that kept values)."""
        self.members: dict[CovarId, tuple[str, ...]] = {}
        self.covar_refs: dict[CovarId, tuple[str, ...]] = {}
        self.unsaved: dict[CovarId, str] = {}
        self.origins: dict[str, str] = {}
        """The cell that made each live unsaveable value, by its token."""
        self.unrecorded: set[str] = set()
        """Names the next checkpoint must examine whatever the cell did (failed, kept)."""
        self.redo: list[CommitId] = []
        self.cache = LiveCache()
        self.identities = NameIdentities()
        self.never_fork: set[str] = set()
        """Names whose values blocked a forked snapshot: checkpointed in the kernel."""
        self.lost: dict[str, str] = {}
        """Names the last checkout could not bring back, with why (what a rebuild may)."""
        self.lost_at: Commit | None = None
        self.unreconnected: dict[str, str] = {}
        """Of ``lost``, those whose reconnection failed: re-running cells would not help."""
        self._tracked: dict[str, bool] = {}

    def is_tracked(self, name: str) -> bool:
        """Return whether ``name`` belongs to the saved state (cached: asked per name often)."""
        tracked = self._tracked.get(name)
        if tracked is None:
            tracked = self._tracked[name] = isinstance(name, str) and self.options.is_tracked(
                name)
        return tracked

    def note_covar(self, covar_id: CovarId, covar: Covar) -> None:
        """Remember what a live co-variable version holds (committed, loaded or rebuilt)."""
        self.members[covar_id] = covar.members
        if covar.refs:
            self.covar_refs[covar_id] = covar.refs
        if covar.reason is not None:
            self.unsaved[covar_id] = covar.reason

    def adopt_version(self, covar_id: CovarId, covar: Covar,
                      values: tuple[object, ...]) -> None:
        """Hold values made again (rebuilt, reconnected) as the unsaveable version they are.

        With the version's recorded origin, so the next checkpoint keeps the version's id.
        """
        self.cache.adopt(covar_id, covar, values)
        self.note_covar(covar_id, replace(covar, reason=covar.reason or "not saved"))
        if covar.token is not None and covar.reason:
            self.origins[covar.token] = covar.reason.rpartition(MADE_BY)[2]

    def related(self, names: set[str], lookup: Callable[[str], CovarId | None]) -> set[str]:
        """Return the co-members of ``names`` and the names whose streams refer to them."""
        related: set[str] = set()
        members_of = self.members
        for name in names:
            covar_of = lookup(name)
            if covar_of is not None:
                related.update(members_of.get(covar_of, ()))
        for covar_of, refs in self.covar_refs.items():
            if names.isdisjoint(refs):
                continue
            members = members_of.get(covar_of, ())
            if any(lookup(m) == covar_of for m in members):
                related.update(members)
        return related

    def unsaved_members(self, tree: NamespaceTree, names: Iterable[str]) -> set[str]:
        """Return the members of the unsaveable co-variables that ``names`` belong to."""
        found: set[str] = set()
        for name in names:
            covar_of = tree.get(name)
            if covar_of is not None and covar_of in self.unsaved:
                found.update(self.members.get(covar_of, (name,)))
        return found
