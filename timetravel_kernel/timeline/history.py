"""History: the index of all commits, id lookup by prefix, and diffs (timeline layer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from timetravel_kernel.errors import UnknownCommitError
from timetravel_kernel.ids import CommitId
from timetravel_kernel.timeline.results import DiffResult, VarInfo, VersionInfo

if TYPE_CHECKING:
    from timetravel_kernel.ids import CovarId
    from timetravel_kernel.store.object_store import ObjectStore
    from timetravel_kernel.store.objects import Commit, Covar
    from timetravel_kernel.store.tree import NamespaceTree

__all__ = ["CommitIndex", "diff_trees", "name_history", "variables_of"]

_MIN_PREFIX = 4


class CommitIndex:
    """All commits of a store, read once and kept current as commits are added or thinned.

    Thinned commits (retention gave their state up) keep their records for the parent links
    but are not listed, resolved or returned.

    Args:
        store: the object store to read.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._every: dict[CommitId, Commit] | None = None
        self._commits: dict[CommitId, Commit] = {}
        self.thinned: set[CommitId] = set()

    def reload(self) -> None:
        """Read the commits again at the next question (a pull wrote some behind our back)."""
        self._every = None
        self._commits = {}

    def _all(self) -> dict[CommitId, Commit]:
        if self._every is None:
            self._every = {c.id: c for c in self._store.iter_commits()}
            self.thinned = self._store.thinned() & self._every.keys()
            self._commits = {i: c for i, c in self._every.items() if i not in self.thinned}
        return self._commits

    def every(self) -> dict[CommitId, Commit]:
        """Return every commit record, thinned ones included."""
        self._all()
        assert self._every is not None
        return self._every

    def add(self, commit: Commit) -> None:
        """Index a commit written in this process."""
        if self._every is not None:
            self._every[commit.id] = commit
            self._commits[commit.id] = commit

    def thin(self, commit_ids: set[CommitId]) -> None:
        """Forget the states of commits just marked thinned in the store."""
        self._all()
        self.thinned |= commit_ids
        for commit_id in commit_ids:
            self._commits.pop(commit_id, None)

    def kept_ancestor(self, commit_id: CommitId | None) -> CommitId | None:
        """Return ``commit_id`` or its nearest ancestor whose state is kept (None: none is)."""
        every = self.every()
        while commit_id is not None and commit_id in self.thinned:
            parent = every.get(commit_id)
            commit_id = parent.parent if parent is not None else None
        return commit_id

    def __len__(self) -> int:
        return len(self._all())

    def get(self, commit_id: CommitId) -> Commit:
        """Return a commit.

        Raises:
            UnknownCommitError: no such commit.
        """
        commit = self._all().get(commit_id)
        if commit is None:
            if commit_id in self.thinned:
                raise UnknownCommitError(commit_id.hex(), thinned=True)
            raise UnknownCommitError(commit_id.hex())
        return commit

    def resolve(self, text: str) -> CommitId:
        """Return the id named by a full hex id or a unique prefix of at least 4 digits.

        Raises:
            UnknownCommitError: no commit, or several, match.
        """
        text = text.strip().lower()
        if len(text) < _MIN_PREFIX or any(c not in "0123456789abcdef" for c in text):
            raise UnknownCommitError(text)
        matches = [cid for cid in self._all() if cid.hex().startswith(text)]
        if len(matches) != 1:
            raise UnknownCommitError(text)
        return matches[0]

    def log(self, limit: int | None = None) -> list[Commit]:
        """Return commits newest first (all branches)."""
        ordered = sorted(self._all().values(), key=lambda c: c.time, reverse=True)
        return ordered if limit is None else ordered[:limit]


def diff_trees(a: NamespaceTree, b: NamespaceTree) -> DiffResult:
    """Return the names added, deleted and changed from tree ``a`` to tree ``b``."""
    old, new = a.as_dict(), b.as_dict()
    return DiffResult(
        added=tuple(sorted(n for n in new if n not in old)),
        deleted=tuple(sorted(n for n in old if n not in new)),
        changed=tuple(sorted(n for n in new if n in old and old[n] != new[n])),
    )


def name_history(
    store: ObjectStore, commits: list[Commit], name: str, current: CovarId | None
) -> list[VersionInfo]:
    """Return the versions of one name, from the commits that changed it, newest first.

    Only commits whose ``changed`` lists the name are looked at, and of each only the tree
    bucket holding the name and the version's manifest are read: no value is loaded.

    Args:
        store: where the trees and manifests are.
        commits: the commits to look through (all branches), newest first.
        name: the variable.
        current: the version HEAD has (None if HEAD lacks the name).
    """
    manifests: dict[CovarId, Covar] = {}
    versions = []
    for commit in commits:
        if name not in commit.changed:
            continue
        covar_of = store.lookup_name(commit.tree, name)
        if covar_of is None:
            versions.append(VersionInfo(commit=commit, covariable=None, type="", bytes=0,
                                        saved=False, members=(), current=False))
            continue
        covar = manifests.get(covar_of) or manifests.setdefault(
            covar_of, store.load_covar(covar_of))
        index = covar.members.index(name) if name in covar.members else 0
        versions.append(VersionInfo(
            commit=commit, covariable=covar_of.hex(),
            type=covar.types[index] if covar.types else "", bytes=covar.nbytes,
            saved=covar.serializer != "unsaved", members=covar.members,
            current=covar_of == current, reason=covar.reason))
    return versions


def variables_of(store: ObjectStore, tree: NamespaceTree) -> list[VarInfo]:
    """Return the saved (and unsaveable) names of a tree, each manifest read once."""
    infos = []
    covars: dict[CovarId, Covar] = {}
    for name, covar_of in sorted(tree.items()):
        covar = covars.get(covar_of) or covars.setdefault(covar_of, store.load_covar(covar_of))
        index = covar.members.index(name) if name in covar.members else 0
        infos.append(VarInfo(name=name, type=covar.types[index] if covar.types else "",
                             bytes=covar.nbytes, covariable=covar_of.hex(),
                             saved=covar.serializer != "unsaved", reason=covar.reason))
    return infos
