"""Restoring one variable: which stored version, under which names, loaded how (timeline layer).

The result is recorded as a new commit on HEAD, so an undo takes it back; the checks come
first, so a refusal (no such name, an unsaveable value, objects shared with other names)
changes nothing.
"""

from __future__ import annotations

import keyword
import time
from typing import TYPE_CHECKING

from timetravel_kernel.errors import (
    SerializationError,
    SharedObjectsError,
    TimelineError,
    UnknownNameError,
)
from timetravel_kernel.state import load_stored
from timetravel_kernel.timeline.memory import MemoryGuard, estimated_bytes
from timetravel_kernel.timeline.results import CellInfo, CheckoutResult

if TYPE_CHECKING:
    from timetravel_kernel.ids import CommitId
    from timetravel_kernel.store import Commit, Covar, ObjectStore
    from timetravel_kernel.timeline.checkpointing import Checkpointer
    from timetravel_kernel.timeline.history import CommitIndex
    from timetravel_kernel.timeline.livestate import LiveState

__all__ = ["load_version", "restore_targets", "restore_variable", "version_at"]

Namespace = dict[str, object]


class _LiveNames:
    """Resolves a restored value's by-name references (notebook classes) to the live ones."""

    def __init__(self, namespace: Namespace) -> None:
        self._namespace = namespace

    def value(self, name: str) -> object:
        if name not in self._namespace:
            raise SerializationError(
                name, "", f"it refers to {name!r}, which the namespace lacks now; restore "
                f"{name} first")
        return dict.__getitem__(self._namespace, name)

    def namespace(self) -> Namespace:
        return self._namespace


def version_at(store: ObjectStore, commit: Commit, name: str) -> Covar:
    """Return the saved version ``name`` has at ``commit``.

    Raises:
        UnknownNameError: the commit has no value for the name.
        SerializationError: the value was not saveable then.
    """
    covar_of = store.lookup_name(commit.tree, name)
    where = f"state {commit.id.hex()[:10]}"
    if covar_of is None:
        raise UnknownNameError(
            name, f"{name!r} has no value at {where}; `%tt history {name}` lists its versions")
    covar = store.load_covar(covar_of)
    if covar.serializer == "unsaved":
        raise SerializationError(
            name, covar.types[0] if covar.types else "",
            f"was not saved at {where} ({covar.reason}), so it cannot be brought back")
    return covar


def restore_targets(
    covar: Covar, name: str, as_name: str | None, *, together: bool
) -> dict[str, str]:
    """Return member -> the name to restore it under; refuse what would unlink objects.

    Raises:
        SharedObjectsError: ``name`` shares objects with other members and ``together`` is
            not set, or a new name was asked for (the others would be left behind).
        TimelineError: the new name is not a Python name.
    """
    others = [m for m in covar.members if m != name]
    if others and (as_name is not None or not together):
        how = ("cannot be restored under another name" if as_name is not None else
               "would be unlinked if restored alone")
        raise SharedObjectsError(
            name, covar.members,
            f"{name!r} shares objects with {', '.join(others)} at that state and {how}; restore "
            f"them together under their own names (`%tt get {name}@ID --together`)")
    target = as_name or name
    if not target.isidentifier() or keyword.iskeyword(target):
        raise TimelineError(f"{target!r} is not a valid Python name")
    return {m: m for m in covar.members} if others else {name: target}


def load_version(store: ObjectStore, covar: Covar, namespace: Namespace) -> dict[str, object]:
    """Return member -> fresh value of a stored version (the namespace is only read).

    Raises:
        SerializationError: it cannot be loaded here (a class it refers to is gone, ...).
        StoreError: its data cannot be read.
    """
    values = load_stored(store, covar, _LiveNames(namespace))
    return dict(zip(covar.members, values, strict=True))


def restore_variable(
    live: LiveState, store: ObjectStore, history: CommitIndex, checkpointer: Checkpointer,
    namespace: Namespace, name: str, commit_id: CommitId, *, as_name: str | None,
    together: bool,
) -> CheckoutResult:
    """Bring back the value ``name`` had at a commit, recorded as a new commit on HEAD.

    Raises:
        UnknownCommitError, UnknownNameError, SharedObjectsError: see ``Timeline``.
        SerializationError, StoreError: the value cannot be loaded or recorded; the namespace
            is unchanged.
    """
    started = time.perf_counter()
    commit = history.get(commit_id)
    covar = version_at(store, commit, name)
    targets = restore_targets(covar, name, as_name, together=together)
    if not all(live.is_tracked(t) for t in targets.values()):
        raise TimelineError(f"{as_name or name!r} is excluded from the history (skip "
                            "options); choose another name")
    MemoryGuard(commit, [covar]).reserve(covar.members, estimated_bytes(covar))
    chosen = load_version(store, covar, namespace)
    staged = {target: chosen[member] for member, target in targets.items()}
    previous = {n: dict.__getitem__(namespace, n) for n in staged if n in namespace}
    dict.update(namespace, staged)
    label = f"%tt get {name}@{commit.id.hex()[:10]}"
    label += f" as {as_name}" if as_name else (" --together" if len(targets) > 1 else "")
    try:
        with live.lock:
            work = checkpointer.plan(staged, CellInfo(code=label))
        recorded = checkpointer.checkpoint(namespace, work).commit
    except BaseException:
        # Not recorded: the namespace goes back to what HEAD describes.
        for target in staged:
            dict.pop(namespace, target, None)
        dict.update(namespace, previous)
        raise
    return CheckoutResult(head=recorded, loaded=tuple(sorted(staged)), deleted=(), kept=(),
                          seconds=time.perf_counter() - started, unrestored={})
