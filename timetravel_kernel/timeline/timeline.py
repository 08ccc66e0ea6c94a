"""Timeline: the history of one namespace as a tree of commits (timeline layer facade).

``checkpoint`` records the namespace after a cell; ``checkout`` makes the namespace equal to
any commit, loading only the co-variables that differ and leaving the rest untouched;
``undo``/``redo``/``restore`` are checkouts to particular commits. Executing a cell after going
back starts a branch; no commit is ever lost.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from timetravel_kernel.errors import NothingToRestoreError, TimelineError, UnknownNameError
from timetravel_kernel.state import TimelineOptions
from timetravel_kernel.store import Commit, ObjectStore
from timetravel_kernel.store.memory import MemoryBackend
from timetravel_kernel.store.refs import REF_HEAD, REF_RESTORING
from timetravel_kernel.timeline.checkout import Checkouts
from timetravel_kernel.timeline.checkpointing import Checkpointer, Namespace
from timetravel_kernel.timeline.history import (
    CommitIndex,
    diff_trees,
    name_history,
    variables_of,
)
from timetravel_kernel.timeline.livestate import LiveState
from timetravel_kernel.timeline.memory import estimated_bytes
from timetravel_kernel.timeline.opening import (
    mark_session,
    open_store,
    read_previous_session,
)
from timetravel_kernel.timeline.rebuild import RebuildResult, Rebuilds
from timetravel_kernel.timeline.recorder import Recorder, RecordStart
from timetravel_kernel.timeline.restoring import restore_variable
from timetravel_kernel.timeline.results import (
    CellInfo,
    CheckoutResult,
    CheckpointResult,
    DiffResult,
    VarInfo,
    VersionInfo,
)
from timetravel_kernel.timeline.retention import (
    RetentionPolicy,
    RetentionReport,
    apply_retention,
)
from timetravel_kernel.timeline.valuediff import DiffLimits, ValueDiffer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from timetravel_kernel.ids import CommitId
    from timetravel_kernel.store.object_store import GarbageReport
    from timetravel_kernel.store.spool import IngestedSpool
    from timetravel_kernel.timeline.lineage import RebuildPlan

    CheckpointCallback = Callable[[CheckpointResult | None, BaseException | None], None]
    """Gets a checkpoint's result, or the reason nothing was committed."""

__all__ = ["Namespace", "RecordStart", "Timeline"]


class Timeline:
    """The checkpointed history of one namespace, kept in one store.

    A facade over its parts, each handed what it needs, as a repository is built from an
    object store and refs: the live state (``LiveState``: what the namespace equals), the
    commit index, the checkpointer (plan, produce, apply), the recorder (when each cell's
    checkpoint runs), the checkouts (undo, redo, jumps, restores) and the rebuilds.

    Args:
        store: the object store (the timeline closes it).
        options: what to save and how.
        store_path: where the store lives, for display.
        recovered: what opening the store committed from a dead kernel's snapshots.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        options: TimelineOptions | None = None,
        store_path: Path | None = None,
        recovered: list[IngestedSpool] | None = None,
    ) -> None:
        self._store = store
        self.options = options or TimelineOptions()
        self.store_path = store_path
        self.recovered = recovered or []
        self._history = CommitIndex(store)
        self._live = LiveState(self.options)
        self._checkpointer = Checkpointer(self._live, store, self.options,
                                          on_commit=self._history.add)
        session = f"{time.time_ns():020d}-{os.getpid()}"
        self._recorder = Recorder(self._live, self._checkpointer, store, session=session)
        self._checkouts = Checkouts(self._live, store, self.options, self._history)
        self._rebuilds = Rebuilds(self._live, store, self.options, self._history)
        self._closed = False
        self._session_open = False
        previous = read_previous_session(store)
        self.previous_session_crashed = previous.crashed
        self.restorable = previous.restorable
        self.restore_interrupted = previous.restore_interrupted

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        options: TimelineOptions | None = None,
        read_only: bool = False,
        purpose: str = "",
        key: str = "",
        spool_wait: float = 60.0,
    ) -> Timeline:
        """Open (or create) the store at ``path``, committing what a dead kernel's snapshots saved.

        ``spool_wait``: how long to wait for snapshot processes of a dead kernel that are
        still writing its last states.

        Raises:
            StoreLockedError: another process has it open for writing.
            StoreCorruptError, StoreFormatError, StoreError: it cannot be used.
        """
        store, recovered = open_store(Path(path), read_only=read_only, purpose=purpose,
                                      key=key, spool_wait=spool_wait)
        try:
            return cls(store, options=options, store_path=Path(path), recovered=recovered)
        except BaseException:
            store.close()  # RocksDB keeps the path locked while the store is open
            raise

    @classmethod
    def in_memory(cls, *, options: TimelineOptions | None = None) -> Timeline:
        """Return a timeline on a fresh in-memory store (for tests and tools)."""
        return cls(ObjectStore(MemoryBackend()), options=options)

    # -- properties ---------------------------------------------------------------------
    @property
    def head(self) -> Commit | None:
        """Return the commit the live namespace equals (None before ``start``).

        Waits until every cell recorded so far is committed.
        """
        self.settle()
        return self._live.head

    @property
    def durable_head(self) -> Commit | None:
        """Return the newest durable commit now, without waiting for states being saved."""
        with self._live.lock:
            return self._live.head

    @property
    def is_closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    @property
    def object_store(self) -> ObjectStore:
        """The store's records, for the remote layer's push and pull (not for the cell path)."""
        return self._store

    def reload_history(self) -> None:
        """Re-read the commits and the restorable state: a pull wrote them behind our back."""
        self.settle()
        with self._live.lock:
            self._history.reload()
        self.restorable = read_previous_session(self._store).restorable

    @property
    def read_only(self) -> bool:
        """Whether the store refuses writes."""
        return self._store.backend.read_only

    @property
    def lost_commits(self) -> int:
        """How many of the newest states earlier sessions saved the store could not recover.

        Non-zero after RocksDB recovered from a damaged or truncated write-ahead log: it
        drops the log's tail without an error, so only the note of recent commits tells.
        """
        return self._store.lost_commits

    @property
    def lost_commits_is_a_lower_bound(self) -> bool:
        """Whether more states than ``lost_commits`` may be lost (all it could check were)."""
        return self._store.lost_more_than_noted

    def commit_count(self, *, settle: bool = True) -> int:
        """Return the number of commits in the store (``settle``: once all cells are)."""
        if settle:
            self.settle()
        with self._live.lock:
            return len(self._history)

    def store_bytes(self, *, settle: bool = True, live: bool = False) -> int:
        """Return the size of the store (``settle``: once all cells are committed).

        ``live``: without files the store already replaced (what a budget is planned on).
        """
        if settle:
            self.settle()
        return self._store.live_bytes() if live else self._store.size_bytes()

    # -- session ------------------------------------------------------------------------
    def start(self, namespace: Namespace) -> Commit:
        """Record the fresh namespace as this session's root commit and mark the session open.

        The store's HEAD stays where the last session left it, so a crash before the first
        checkpoint still offers the earlier state for restore.
        """
        if not self.read_only:
            mark_session(self._store, "open")
            self._session_open = True
        return self._checkpointer.checkpoint(
            namespace, self._checkpointer.root_work(namespace)).commit

    # -- checkpoint ---------------------------------------------------------------------
    @property
    def recorder(self) -> Recorder:
        """Records each executed cell as its own commit (``timeline/recorder.py``)."""
        return self._recorder

    def checkpoint(self, namespace: Namespace, cell: CellInfo | None = None, *,
                   status: str = "ok", duration: float = 0.0) -> CheckpointResult:
        """Commit the namespace as it is after a cell, here and now (after what is queued).

        Raises:
            StoreError: the store cannot be written (nothing was committed).
        """
        return self._recorder.checkpoint_now(namespace, cell or CellInfo(), status=status,
                                             duration=duration)

    def settle(self) -> None:
        """Wait until every cell recorded so far is committed (or its failure reported)."""
        self._recorder.settle()

    def _settle_and_record(self) -> None:
        """Before the namespace is moved: every cell committed, silent code's reads kept."""
        self.settle()
        self._live.unrecorded |= self._recorder.take_unrecorded()

    def close(self) -> None:
        """Release the store, marking this session (if it started one) cleanly closed.

        A timeline used only to inspect or collect garbage leaves the marker alone, so a
        crashed session is still recognised by the next kernel.
        """
        if self._closed:
            return
        self._recorder.close()
        self._closed = True
        try:
            if self._session_open:
                mark_session(self._store, "closed")
        finally:
            self._store.close()

    # -- checkout -----------------------------------------------------------------------
    def checkout(self, namespace: Namespace, commit_id: CommitId) -> CheckoutResult:
        """Make the namespace equal to a commit; all or nothing if the store cannot be read.

        A stored value that cannot be rebuilt keeps its live value and is listed in
        ``unrestored``, so an undo or a jump never fails for one class that does not load.

        Raises:
            UnknownCommitError: no such commit.
            NotEnoughMemoryError: the values to load would not fit; nothing changed.
            SerializationError, StoreError: the store could not be read (a corrupt chunk); the
                namespace is unchanged.
        """
        self._settle_and_record()
        result = self._checkouts.move(namespace, commit_id, strict=True)
        self._live.redo.clear()
        return result

    def undo(self, namespace: Namespace) -> CheckoutResult:
        """Go back to HEAD's parent; ``redo`` returns.

        Raises:
            NothingToUndoError: HEAD is a root.
        """
        self._settle_and_record()
        return self._checkouts.undo(namespace)

    def redo(self, namespace: Namespace) -> CheckoutResult:
        """Go forward to the commit the last undo left.

        Raises:
            NothingToRedoError: no undo since the last checkpoint or jump.
        """
        self._settle_and_record()
        return self._checkouts.redo(namespace)

    def restore(self, namespace: Namespace) -> CheckoutResult:
        """Bring back the state the previous session ended with, as much of it as loads.

        The store notes the restore while it runs (``restore_interrupted`` for the next
        process, if this one dies meanwhile: then the kernel does not retry it unasked).

        Raises:
            NothingToRestoreError: the store has no earlier state.
            NotEnoughMemoryError: the state would not fit in the memory left; nothing changed.
        """
        self._settle_and_record()
        if self.restorable is None:
            raise NothingToRestoreError("there is no earlier state to restore")
        if not self.read_only:
            self._store.set_refs({REF_RESTORING: self.restorable.id})
        try:
            result = self._checkouts.move(namespace, self.restorable.id, strict=False)
        finally:
            if not self.read_only:
                self._store.set_refs({REF_RESTORING: None})
        self._live.redo.clear()
        self.restorable = None
        self.restore_interrupted = False
        return result

    def estimated_size(self, commit_id: CommitId) -> int:
        """Return about how much memory a commit's state takes once loaded (manifests only)."""
        tree = self._store.load_tree(self._history.get(commit_id).tree)
        return sum(estimated_bytes(self._store.load_covar(c)) for c in {c for _, c in tree.items()})

    def restore_variable(
        self,
        namespace: Namespace,
        name: str,
        commit_id: CommitId,
        *,
        as_name: str | None = None,
        together: bool = False,
    ) -> CheckoutResult:
        """Bring back the value ``name`` had at a commit, leaving every other name alone.

        The value is put under ``as_name`` (default: ``name``) and recorded as a new commit on
        HEAD, so an undo takes it back. A name that shared objects with others at that commit
        is restored only ``together`` with them, each under its own name: restoring one alone
        would leave them unlinked.

        Raises:
            UnknownCommitError: no such commit.
            UnknownNameError: the commit has no value for the name.
            SharedObjectsError: the name shares objects and ``together`` (or ``as_name``)
                does not allow restoring them all.
            SerializationError, StoreError: the value cannot be loaded or recorded; the
                namespace is unchanged.
        """
        self._settle_and_record()
        self._require_head()
        return restore_variable(self._live, self._store, self._history, self._checkpointer,
                                namespace, name, commit_id, as_name=as_name, together=together)

    # -- rebuild ------------------------------------------------------------------------
    @property
    def lost(self) -> dict[str, str]:
        """Return the names the last checkout or restore could not bring back, with why."""
        return dict(self._live.lost)

    def rebuild_plan(self, names: Iterable[str] | None = None) -> RebuildPlan:
        """Return how the last checkout's lost names (or ``names`` of them) would be rebuilt.

        Raises:
            TimelineError: nothing was lost.
        """
        self.settle()
        return self._rebuilds.plan(names)

    def rebuild(
        self,
        namespace: Namespace,
        names: Iterable[str] | None = None,
        *,
        transform: Callable[[str], str] = str,
        budget: float = 60.0,
    ) -> RebuildResult:
        """Bring lost unsaveable values back by running the recorded cells that made them.

        Each cell runs on its inputs as they were; only the rebuilt names change in
        ``namespace``. ``transform`` turns a cell's code into Python (IPython syntax).

        Raises:
            TimelineError: nothing was lost.
        """
        self._settle_and_record()
        return self._rebuilds.run(namespace, names, transform=transform, budget=budget)

    # -- history ------------------------------------------------------------------------
    def log(self, limit: int | None = None, *, settle: bool = True) -> list[Commit]:
        """Return commits newest first, all branches.

        ``settle``: first wait until every cell recorded so far is committed; without it,
        the durable ones now (the cells in ``saving`` follow).
        """
        if settle:
            self.settle()
        with self._live.lock:
            return self._history.log(limit)

    def commit(self, commit_id: CommitId) -> Commit:
        """Return a commit.

        Raises:
            UnknownCommitError: no such commit.
        """
        self.settle()
        return self._history.get(commit_id)

    def resolve(self, text: str) -> CommitId:
        """Return the commit id named by a full hex id or a unique prefix.

        Raises:
            UnknownCommitError: nothing (or more than one commit) matches.
        """
        self.settle()
        return self._history.resolve(text)

    def diff(
        self, a: CommitId, b: CommitId, *, values: bool = False, limits: DiffLimits | None = None
    ) -> DiffResult:
        """Return the names added, deleted and changed from commit ``a`` to commit ``b``.

        With ``values``, also what changed inside each changed name, read from the store
        within ``limits`` (a value too large is described by its manifest only).
        """
        self.settle()
        tree_a = self._store.load_tree(self._history.get(a).tree)
        tree_b = self._store.load_tree(self._history.get(b).tree)
        result = diff_trees(tree_a, tree_b)
        if not values:
            return result
        lines = ValueDiffer(self._store, limits).describe_all(result.changed, tree_a, tree_b)
        return replace(result, values=lines)

    def history(self, name: str) -> list[VersionInfo]:
        """Return the versions ``name`` had, newest first, over all branches (no value loaded).

        Raises:
            UnknownNameError: no commit ever recorded the name.
        """
        self.settle()
        versions = name_history(self._store, self._history.log(), name, self._live.tree.get(name))
        if not versions:
            raise UnknownNameError(name, f"{name!r} is not in this history (it was never saved)")
        return versions

    def variables(self, commit_id: CommitId | None = None) -> list[VarInfo]:
        """Return the saved (and unsaveable) names of a commit, or of the live state."""
        self.settle()
        if commit_id is None:
            return variables_of(self._store, self._live.tree)
        return variables_of(self._store, self._store.load_tree(self._history.get(commit_id).tree))

    def collect_garbage(self) -> GarbageReport:
        """Delete stored objects no kept commit reaches, and give their space back."""
        self.settle()
        return self._store.collect_garbage()

    def apply_retention(self, policy: RetentionPolicy, *, dry_run: bool = False,
                        now: float | None = None, compact: bool = True) -> RetentionReport:
        """Thin old states as ``policy`` says, then collect garbage and compact.

        See ``retention.apply_retention``; HEAD, the redo stack and the restorable state
        are never thinned.
        """
        self.settle()
        return apply_retention(self._store, self._history, policy, protected=self._protected(),
                               head=self._head_id(), now=time.time() if now is None else now,
                               dry_run=dry_run, compact=compact)

    def compact(self) -> None:
        """Give the space of collected garbage back to the disk (safe beside checkpoints)."""
        self.settle()
        self._store.backend.compact()

    def _require_head(self) -> Commit:
        head = self._live.head
        if head is None:
            raise TimelineError("the timeline has no session: call start(namespace) first")
        return head

    def _head_id(self) -> CommitId | None:
        if self._live.head is not None:
            return self._live.head.id
        return self._store.read_ref(REF_HEAD)  # type: ignore[return-value]

    def _protected(self) -> set[CommitId]:
        """Return the states retention must keep: HEAD's, redo's and the restorable one."""
        ids = {self._head_id(), *self._live.redo, self.restorable.id if self.restorable else None}
        return {i for i in ids if i is not None}
