"""Lineage: which recorded cells rebuild an unsaveable value, in order (timeline layer).

Every commit names the unsaveable values its cell made and those it used (``unsaved_made``,
``unsaved_used``). Walking back from a commit, the cells that used a value up to the one that
made it are its lineage; running them again in order, each on its inputs as they were, brings
the value back as it was, advanced as far as it was. When one of those cells used another
unsaveable value, that value's lineage up to the cell is needed first. A value that describes
itself (an open file, a sqlite3 file connection, a lock, an event) is reconnected instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from timetravel_kernel.errors import MissingObjectError
from timetravel_kernel.timeline.results import describe_cell

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from timetravel_kernel.ids import CommitId, CovarId
    from timetravel_kernel.store import Commit, Covar, NamespaceTree, ObjectStore

__all__ = ["RebuildPlan", "RebuildStep", "plan_rebuild"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildStep:
    """Run one recorded cell again, or reconnect described values.

    ``names`` are the unsaveable values the step makes or moves forward; a reconnect step has
    no ``commit`` and one description per name in ``revival``.
    """

    names: tuple[str, ...]
    commit: Commit | None = None
    revival: tuple[Mapping[str, object], ...] = ()

    @property
    def code(self) -> str:
        """Return the code the step runs (empty for a reconnect)."""
        return self.commit.code if self.commit is not None else ""

    @property
    def seconds(self) -> float:
        """Return the time the cell took when it was recorded."""
        return self.commit.duration if self.commit is not None else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildPlan:
    """How to bring back unsaveable names of one commit.

    ``needs`` maps each name to the steps (indexes into ``steps``) it depends on, so a failing
    step fails exactly the names that need it; ``versions`` are the recorded versions the
    rebuilt values stand for; ``impossible`` maps names that cannot be rebuilt to the reason.
    """

    at: Commit
    names: tuple[str, ...]
    steps: tuple[RebuildStep, ...]
    needs: Mapping[str, frozenset[int]]
    versions: Mapping[str, CovarId]
    impossible: Mapping[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Return the recorded run time of the cells the plan runs again."""
        return sum(step.seconds for step in self.steps)


def _is_writing(description: Mapping[str, object]) -> bool:
    mode = str(description.get("mode", ""))
    return description.get("kind") == "file" and any(c in mode for c in "wax+")


class _Planner:
    """Collects the steps for a set of names, recursing into unsaveable inputs."""

    def __init__(self, store: ObjectStore, chain: list[Commit]) -> None:
        self._store = store
        self.chain = chain  # oldest first: the target and all its ancestors
        self._depth = {c.id: i for i, c in enumerate(chain)}
        self._trees: dict[CommitId, NamespaceTree] = {}
        self._covars: dict[CovarId, Covar] = {}
        self._memo: dict[tuple[str, CommitId], tuple[frozenset[tuple[float, str]], str | None]] = {}
        self.runs: dict[CommitId, set[str]] = {}
        self.reconnects: dict[tuple[float, str], Mapping[str, object]] = {}

    def unsaved(self, name: str, commit: Commit) -> tuple[CovarId, Covar] | None:
        tree = self._trees.get(commit.id)
        if tree is None:
            tree = self._trees[commit.id] = self._store.load_tree(commit.tree)
        covar_of = tree.get(name)
        if covar_of is None:
            return None
        covar = self._covars.get(covar_of)
        if covar is None:
            covar = self._covars[covar_of] = self._store.load_covar(covar_of)
        return (covar_of, covar) if covar.serializer == "unsaved" else None

    def need(self, name: str, commit: Commit, *, top: bool) -> frozenset[tuple[float, str]]:
        """Return the step keys that bring ``name`` to its state after ``commit``.

        Raises:
            _CannotRebuild: with the reason.
        """
        key = (name, commit.id)
        if key not in self._memo:
            try:
                self._memo[key] = (self._need(name, commit, top=top), None)
            except _CannotRebuild as exc:
                self._memo[key] = (frozenset(), str(exc))
        steps, reason = self._memo[key]
        if reason is not None:
            raise _CannotRebuild(reason)
        return steps

    def _need(self, name: str, commit: Commit, *, top: bool) -> frozenset[tuple[float, str]]:
        found = self.unsaved(name, commit)
        if found is None:
            raise _CannotRebuild(f"{name} is not an unsaveable value of that state")
        _, covar = found
        depth = self._depth[commit.id]
        if covar.revival is not None:
            index = covar.members.index(name)
            description = covar.revival[index]
            if not top and _is_writing(description):
                raise _CannotRebuild(
                    f"it needs the file {description.get('path')} as it was open for writing "
                    "earlier: running those cells again would write to it twice")
            step = (depth + 0.5, name)
            self.reconnects[step] = description
            return frozenset({step})
        steps: set[tuple[float, str]] = set()
        for cell in reversed(self.chain[: depth + 1]):
            if name not in cell.unsaved_made and name not in cell.unsaved_used:
                continue
            steps |= self._run(cell, name)
            if name in cell.unsaved_made:
                return frozenset(steps)
        raise _CannotRebuild(f"no recorded cell made {name}")

    def _run(self, cell: Commit, name: str) -> set[tuple[float, str]]:
        if not cell.code.strip() or cell.parent is None:
            raise _CannotRebuild(f"{name} was made before the first recorded cell")
        steps = {(float(self._depth[cell.id]), "")}
        self.runs.setdefault(cell.id, set()).add(name)
        parent = self.chain[self._depth[cell.id] - 1]
        for used in cell.unsaved_used:
            if used != name and self.unsaved(used, parent) is not None:
                try:
                    steps |= self.need(used, parent, top=False)
                except _CannotRebuild as exc:
                    why = f"{describe_cell(cell)} uses {used}, which cannot be rebuilt: {exc}"
                    raise _CannotRebuild(why) from exc
        return steps


class _CannotRebuild(Exception):
    """A name cannot be rebuilt; the message says why."""


def _ancestors(at: Commit, get_commit: Callable[[CommitId], Commit]) -> list[Commit]:
    chain = [at]
    while chain[-1].parent is not None:
        chain.append(get_commit(chain[-1].parent))
    chain.reverse()
    return chain


def plan_rebuild(
    store: ObjectStore,
    get_commit: Callable[[CommitId], Commit],
    at: Commit,
    names: Iterable[str],
) -> RebuildPlan:
    """Return the plan that rebuilds ``names`` as they were after commit ``at``.

    Names that are saved, unknown or made before the first cell are listed in ``impossible``
    with the reason; co-members of an unsaveable co-variable are rebuilt together.
    """
    planner = _Planner(store, _ancestors(at, get_commit))
    wanted: dict[str, frozenset[tuple[float, str]]] = {}
    impossible: dict[str, str] = {}
    versions: dict[str, CovarId] = {}
    for name in sorted(set(names)):
        try:
            found = planner.unsaved(name, at)
        except MissingObjectError as exc:
            impossible[name] = f"its record is missing from the store ({exc})"
            continue
        if found is None:
            impossible[name] = "it is not an unsaved value of that state"
            continue
        covar_of, covar = found
        for member in covar.members:
            versions[member] = covar_of
            try:
                wanted[member] = planner.need(member, at, top=True)
            except _CannotRebuild as exc:
                impossible[member] = str(exc)
    keys = sorted({k for steps in wanted.values() for k in steps})
    index = {k: i for i, k in enumerate(keys)}
    steps = []
    for depth, name in keys:
        if name:  # a reconnect
            steps.append(RebuildStep(names=(name,), revival=(planner.reconnects[(depth, name)],)))
        else:
            cell = planner.chain[int(depth)]
            steps.append(RebuildStep(names=tuple(sorted(planner.runs[cell.id])), commit=cell))
    needs = {n: frozenset(index[k] for k in ks) for n, ks in wanted.items()}
    for member in impossible:
        versions.pop(member, None)
    return RebuildPlan(at=at, names=tuple(sorted(wanted)), steps=tuple(steps), needs=needs,
                       versions=versions, impossible=impossible)
