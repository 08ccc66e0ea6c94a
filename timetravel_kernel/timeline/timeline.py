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

from timetravel_kernel.errors import (
    MissingObjectError,
    NothingToRedoError,
    NothingToRestoreError,
    NothingToUndoError,
    StoreCorruptError,
    TimelineError,
    UnknownNameError,
)
from timetravel_kernel.state import TimelineOptions
from timetravel_kernel.store import Commit, Covar, ObjectStore, RocksBackend
from timetravel_kernel.store.memory import MemoryBackend
from timetravel_kernel.store.refs import (
    REF_HEAD,
    REF_RESTORING,
    REF_SESSION,
    SessionMarker,
    decode_session,
    encode_session,
)
from timetravel_kernel.store.spool import IngestedSpool, ingest_spools
from timetravel_kernel.timeline.background import BackgroundOptions
from timetravel_kernel.timeline.checkpointing import (
    MADE_BY,
    Checkpointer,
    Namespace,
)
from timetravel_kernel.timeline.history import CommitIndex, diff_trees, name_history
from timetravel_kernel.timeline.lineage import RebuildPlan, plan_rebuild
from timetravel_kernel.timeline.livestate import LiveState
from timetravel_kernel.timeline.loading import CheckoutLoader
from timetravel_kernel.timeline.memory import MemoryGuard, estimated_bytes
from timetravel_kernel.timeline.plan import plan_checkout, with_referrers
from timetravel_kernel.timeline.rebuild import RebuildResult, run_rebuild
from timetravel_kernel.timeline.recorder import Recorder, RecordStart
from timetravel_kernel.timeline.restoring import load_version, restore_targets, version_at
from timetravel_kernel.timeline.results import (
    CellInfo,
    CheckoutResult,
    CheckpointResult,
    DiffResult,
    VarInfo,
    VersionInfo,
)
from timetravel_kernel.timeline.retention import RetentionPolicy, RetentionReport, plan_thinning
from timetravel_kernel.timeline.valuediff import DiffLimits, ValueDiffer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from timetravel_kernel.ids import CommitId, CovarId
    from timetravel_kernel.store.object_store import GarbageReport

    CheckpointCallback = Callable[[CheckpointResult | None, BaseException | None], None]
    """Gets a checkpoint's result, or the reason nothing was committed."""

__all__ = ["Namespace", "RecordStart", "Timeline"]


def _without(names: tuple[str, ...], drop: Namespace) -> tuple[str, ...]:
    """Return ``names`` minus the keys of ``drop`` (in C when nothing is dropped)."""
    if drop.keys().isdisjoint(names):
        return names
    return tuple(n for n in names if n not in drop)


def _check_manifest(path: Path) -> None:
    """Refuse a store whose writable open would delete its history (a damaged MANIFEST).

    RocksDB recovers a truncated MANIFEST without an error and then deletes the tables it no
    longer lists as obsolete. A read-only open deletes nothing: there, recent commits missing
    while unlisted tables are on disk mean the MANIFEST lost them.

    Raises:
        StoreCorruptError: the MANIFEST is damaged (the store must be moved aside).
    """
    backend = RocksBackend(path, read_only=True)
    try:
        lost = ObjectStore(backend).lost_commits
        unlisted = backend.unlisted_tables() if lost else []
    finally:
        backend.close()
    if unlisted:
        raise StoreCorruptError(
            f"the time-travel store {path} is damaged: its MANIFEST lost {len(unlisted)} table "
            f"file(s) ({', '.join(unlisted[:3])}) holding its {lost} newest states; move it "
            "aside (the files are intact) to start a fresh history"
        )


class Timeline:
    """The checkpointed history of one namespace, kept in one store.

    A facade over its parts, each handed what it needs: the live state (``LiveState``), the
    checkpointer (plan, produce, apply), the recorder (when each cell's checkpoint runs) and
    the commit index.

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
                                          on_commit=lambda commit: self._history.add(commit))
        session = f"{time.time_ns():020d}-{os.getpid()}"
        self._recorder = Recorder(self._live, self._checkpointer, store, session=session)
        self._lost: dict[str, str] = {}
        self._lost_at: Commit | None = None
        self._unreconnected: dict[str, str] = {}
        self._closed = False
        self._session_open = False
        marker = decode_session(store.read_ref(REF_SESSION))
        self.previous_session_crashed = marker is not None and marker.state == "open"
        self.restorable = self._find_restorable()
        restoring = store.read_ref(REF_RESTORING)
        self.restore_interrupted = (self.restorable is not None and self.previous_session_crashed
                                    and restoring == self.restorable.id)

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
        if not read_only and (Path(path) / "CURRENT").exists():
            _check_manifest(Path(path))
        backend = RocksBackend(path, read_only=read_only, purpose=purpose, key=key)
        try:
            store = ObjectStore(backend)
            # States whose snapshots outlived a dead kernel come first: the newest of them is
            # the one to restore.
            recovered = ingest_spools(store, backend.spool_dir, wait_seconds=spool_wait)
            return cls(store, options=options, store_path=Path(path), recovered=recovered)
        except BaseException:
            # Closed at once: RocksDB keeps the path locked in this process while it is open,
            # and the caller may move the damaged store aside and create a new one there.
            backend.close()
            raise

    @classmethod
    def in_memory(cls, *, options: TimelineOptions | None = None) -> Timeline:
        """Return a timeline on a fresh in-memory store (for tests and tools)."""
        return cls(ObjectStore(MemoryBackend()), options=options)

    def _find_restorable(self) -> Commit | None:
        head_id = self._store.read_ref(REF_HEAD)
        if head_id is None:
            return None
        try:
            commit = self._store.load_commit(head_id)  # type: ignore[arg-type]
            empty = len(self._store.load_tree(commit.tree)) == 0
        except MissingObjectError:
            return None
        return None if empty else commit

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
        self._history = CommitIndex(self._store)
        self.restorable = self._find_restorable()

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

    def store_bytes(self, *, settle: bool = True) -> int:
        """Return the size of the store (``settle``: once all cells are committed)."""
        if settle:
            self.settle()
        return self._store.size_bytes()

    # -- session ------------------------------------------------------------------------
    def start(self, namespace: Namespace) -> Commit:
        """Record the fresh namespace as this session's root commit and mark the session open.

        The store's HEAD stays where the last session left it, so a crash before the first
        checkpoint still offers the earlier state for restore.
        """
        if not self.read_only:
            marker = SessionMarker(state="open", pid=os.getpid(), started=time.time())
            self._store.set_refs({REF_SESSION: encode_session(marker)})
            self._session_open = True
        return self._checkpointer.checkpoint(
            namespace, self._checkpointer.root_work(namespace)).commit

    # -- checkpoint ---------------------------------------------------------------------
    def record(self, namespace: Namespace, cell: CellInfo, *, on_done: CheckpointCallback,
               status: str = "ok", duration: float = 0.0,
               background: BackgroundOptions | None = None,
               later: bool = False) -> RecordStart:
        """Record the state after a cell as its own commit, without making the caller wait.

        ``saved``: committed here (small, or ``sync``); ``saving``: a forked snapshot holds the
        state and ``on_done`` runs on the commit thread once it is durable; ``due`` (only
        with ``later``): the snapshot is taken by ``take_due_snapshot`` (a kernel: once its
        idle status is out); ``failed``: an inline checkpoint failed (told to ``on_done``;
        the next checkpoint examines its names again and holds this cell too).
        """
        return self._recorder.record(namespace, cell, status="error" if status == "error"
                                     else "ok", duration=duration, options=background,
                                     on_done=on_done, later=later)

    def take_due_snapshot(self) -> None:
        """Take the snapshot ``record(..., later=True)`` left due."""
        self._recorder.take_due_snapshot()

    def checkpoint(
        self,
        namespace: Namespace,
        cell: CellInfo | None = None,
        *,
        status: str = "ok",
        duration: float = 0.0,
    ) -> CheckpointResult:
        """Commit the namespace as it is after a cell, here and now (after what is queued).

        Raises:
            StoreError: the store cannot be written (nothing was committed; the next
                checkpoint examines the names again).
        """
        results: list[CheckpointResult] = []
        errors: list[BaseException] = []

        def done(result: CheckpointResult | None, error: BaseException | None) -> None:
            results.extend([result] if result is not None else [])
            errors.extend([error] if error is not None else [])

        self.record(namespace, cell or CellInfo(), on_done=done, status=status,
                    duration=duration, background=BackgroundOptions(mode="sync"))
        if errors:
            raise errors[0]
        return results[0]

    def settle(self) -> None:
        """Wait until every cell recorded so far is committed (or its failure reported)."""
        self._recorder.settle()

    @property
    def saving(self) -> tuple[CellInfo, ...]:
        """The cells whose states are still being saved (not durable yet), oldest first."""
        return self._recorder.saving

    @property
    def snapshot_pids(self) -> tuple[int, ...]:
        """Process ids of the snapshots still saving (for tests and tools)."""
        return self._recorder.snapshot_pids

    def note_unrecorded(self, namespace: Namespace, source: str | None) -> None:
        """Remember what code run without a checkpoint (a silent execution) may have changed."""
        self._recorder.note_unrecorded(namespace, source)

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
                marker = SessionMarker(state="closed", pid=os.getpid(), started=time.time())
                self._store.set_refs({REF_SESSION: encode_session(marker)})
        finally:
            self._store.close()

    # -- checkout -----------------------------------------------------------------------
    def checkout(self, namespace: Namespace, commit_id: CommitId) -> CheckoutResult:
        """Make the namespace equal to a commit; all or nothing if the store cannot be read.

        A stored value that cannot be rebuilt keeps its live value and is listed in
        ``unrestored``, so an undo or a jump never fails for one class that does not load.

        Raises:
            UnknownCommitError: no such commit.
            SerializationError, StoreError: the store could not be read (a corrupt chunk); the
                namespace is unchanged.
        """
        self._settle_and_record()
        result = self._checkout(namespace, commit_id, strict=True)
        self._live.redo.clear()
        return result

    def undo(self, namespace: Namespace) -> CheckoutResult:
        """Go back to HEAD's parent; ``redo`` returns.

        Raises:
            NothingToUndoError: HEAD is a root.
        """
        self._settle_and_record()
        head = self._require_head()
        parent = self._history.kept_ancestor(head.parent)
        if parent is None:
            raise NothingToUndoError("nothing to undo: this is the first state of the session")
        result = self._checkout(namespace, parent, strict=True)
        self._live.redo.append(head.id)
        return result

    def redo(self, namespace: Namespace) -> CheckoutResult:
        """Go forward to the commit the last undo left.

        Raises:
            NothingToRedoError: no undo since the last checkpoint or jump.
        """
        self._settle_and_record()
        if not self._live.redo:
            raise NothingToRedoError("nothing to redo: no cell has been undone since")
        result = self._checkout(namespace, self._live.redo[-1], strict=True)
        self._live.redo.pop()
        return result

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
            result = self._checkout(namespace, self.restorable.id, strict=False)
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

    def _checkout(
        self, namespace: Namespace, commit_id: CommitId, *, strict: bool
    ) -> CheckoutResult:
        started = time.perf_counter()
        self._require_head()
        target = self._history.get(commit_id)
        target_tree = self._store.load_tree(target.tree)
        # Names rebound since the last checkpoint; in-place changes can only come from code
        # that ran without a checkpoint (silent executions), which the kernel does not record.
        dirty = {
            n
            for n in self._live.identities.changed(namespace) | self._live.unrecorded
            if self._live.is_tracked(n)
        }
        live = self._live
        plan = with_referrers(plan_checkout(
            live.tree,
            target_tree,
            dirty=dirty,
            is_present=lambda name: name in namespace and live.is_tracked(name),
        ), target_tree, live.covar_refs, live.members)
        covars = self._load_manifests(plan.load)
        loader = CheckoutLoader(self._store, self.options, live.cache, live.tree, live.members,
                                namespace, reserve=MemoryGuard(target, covars.values()).reserve)
        loaded = loader.load(plan, covars, strict=strict)
        staged, unrestored = loaded.staged, loaded.unrestored
        # Everything is loaded: apply in one go, so a failure above left the namespace as it was.
        for patch in loaded.patches:
            patch.apply()
        for covar_of, covar, values in loaded.fresh:
            self._live.cache.put(covar_of, covar, values)
        for covar_of, covar, values in loaded.reconnected:
            self._adopt_version(covar_of, covar, values)
        for name in (*plan.delete, *unrestored):
            if name not in loaded.kept:
                dict.pop(namespace, name, None)
        dict.update(namespace, staged)
        self._live.tree = target_tree
        if unrestored:
            self._live.tree, records = target_tree.updated(dict.fromkeys(unrestored))
            self._live.pending_tree.update(records)
        self._live.identities.record(namespace, {*dirty, *plan.delete, *unrestored, *staged})
        # a live value kept for want of a loadable one is not lost (nothing to rebuild), and
        # the next checkpoint examines it
        lost = {n: r for n, r in unrestored.items() if n not in loaded.kept}
        self._lost, self._lost_at = lost, target
        self._unreconnected = {n: lost[n] for n in loaded.unreconnected}
        self._live.unrecorded = set(loaded.kept)
        if not self.read_only:
            self._store.set_refs({REF_HEAD: target.id})
        self._live.head = target
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
        covars = {c: self._store.load_covar(c) for c in covar_ids}
        for covar_of, covar in covars.items():
            self._live.note_covar(covar_of, covar)
        return covars

    # -- rebuild ------------------------------------------------------------------------
    @property
    def lost(self) -> dict[str, str]:
        """Return the names the last checkout or restore could not bring back, with why."""
        return dict(self._lost)

    def rebuild_plan(self, names: Iterable[str] | None = None) -> RebuildPlan:
        """Return how the last checkout's lost names (or ``names`` of them) would be rebuilt.

        Raises:
            TimelineError: nothing was lost.
        """
        self.settle()
        if self._lost_at is None or not self._lost:
            raise TimelineError("nothing to rebuild: every value of this state is here")
        return self._plan_rebuild(self._lost_at, self._lost if names is None else names)

    def _plan_rebuild(self, at: Commit, names: Iterable[str]) -> RebuildPlan:
        """Plan the rebuild of ``names``, less the values the checkout failed to reconnect.

        Running their cells again would not find the file or the database either.
        """
        wanted = set(names)
        failed = {n: why for n, why in self._unreconnected.items() if n in wanted}
        plan = plan_rebuild(self._store, self._history.get, at, wanted - failed.keys())
        return replace(plan, impossible={**plan.impossible, **failed}) if failed else plan

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
        plan = self.rebuild_plan(names)
        present = {n for n in plan.names if n in namespace}
        if present:  # the user has made these again since: theirs win
            plan = self._plan_rebuild(plan.at, [n for n in plan.names if n not in present])
        result = run_rebuild(plan, namespace, store=self._store, get_commit=self._history.get,
                             transform=transform, budget=budget)
        self._adopt(namespace, plan, result.values)
        self._lost.update({n: why for n, why in result.failed.items() if n in self._lost})
        return result

    def _adopt(self, namespace: Namespace, plan: RebuildPlan, values: dict[str, object]) -> None:
        """Put rebuilt values in place as the recorded versions they stand for."""
        groups: dict[CovarId, list[str]] = {}
        for name in values:
            groups.setdefault(plan.versions[name], []).append(name)
        changes: dict[str, CovarId | None] = {}
        for covar_of, names in groups.items():
            covar = self._store.load_covar(covar_of)
            if set(names) != set(covar.members):
                continue  # a co-variable comes back whole or not at all
            self._adopt_version(covar_of, covar, tuple(values[m] for m in covar.members))
            changes.update(dict.fromkeys(covar.members, covar_of))
        if not changes:
            return
        dict.update(namespace, {n: values[n] for n in changes})
        self._live.tree, records = self._live.tree.updated(changes)
        self._live.pending_tree.update(records)
        self._live.identities.record(namespace, changes)
        for name in changes:
            self._lost.pop(name, None)
        # Saved values restored while these were missing hold placeholders where they were.
        loader = CheckoutLoader(self._store, self.options, self._live.cache, self._live.tree,
                                self._live.members, namespace)
        for covar_of, covar, filled in loader.refill(set(changes), self._live.covar_refs):
            self._live.cache.discard(covar_of)
            self._live.cache.put(covar_of, covar, filled)
            dict.update(namespace, zip(covar.members, filled, strict=True))
            self._live.identities.record(namespace, covar.members)

    def _adopt_version(self, covar_of: CovarId, covar: Covar,
                       values: tuple[object, ...]) -> None:
        """Hold values made again (rebuilt, reconnected) as the unsaveable version they are.

        With the version's recorded origin, so the next checkpoint keeps the version's id.
        """
        self._live.cache.adopt(covar_of, covar, values)
        self._live.note_covar(covar_of, replace(covar, reason=covar.reason or "not saved"))
        if covar.token is not None and covar.reason:
            self._live.origins[covar.token] = covar.reason.rpartition(MADE_BY)[2]

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
        started = time.perf_counter()
        self._require_head()
        commit = self._history.get(commit_id)
        covar = version_at(self._store, commit, name)
        targets = restore_targets(covar, name, as_name, together=together)
        if not all(self._live.is_tracked(t) for t in targets.values()):
            raise TimelineError(f"{as_name or name!r} is excluded from the history (skip "
                                "options); choose another name")
        MemoryGuard(commit, [covar]).reserve(covar.members, estimated_bytes(covar))
        chosen = load_version(self._store, covar, namespace)
        staged = {target: chosen[member] for member, target in targets.items()}
        previous = {n: dict.__getitem__(namespace, n) for n in staged if n in namespace}
        dict.update(namespace, staged)
        label = f"%tt get {name}@{commit.id.hex()[:10]}"
        label += f" as {as_name}" if as_name else (" --together" if len(targets) > 1 else "")
        try:
            with self._live.lock:
                work = self._checkpointer.plan(staged, CellInfo(code=label))
            recorded = self._checkpointer.checkpoint(namespace, work).commit
        except BaseException:
            # Not recorded: the namespace goes back to what HEAD describes.
            for target in staged:
                dict.pop(namespace, target, None)
            dict.update(namespace, previous)
            raise
        return CheckoutResult(head=recorded, loaded=tuple(sorted(staged)), deleted=(),
                              kept=(), seconds=time.perf_counter() - started, unrestored={})

    def variables(self, commit_id: CommitId | None = None) -> list[VarInfo]:
        """Return the saved (and unsaveable) names of a commit, or of the live state."""
        self.settle()
        if commit_id is None:
            tree = self._live.tree
        else:
            tree = self._store.load_tree(self._history.get(commit_id).tree)
        infos = []
        covars: dict[CovarId, Covar] = {}
        for name, covar_of in sorted(tree.items()):
            covar = covars.get(covar_of) or covars.setdefault(
                covar_of, self._store.load_covar(covar_of)
            )
            index = covar.members.index(name) if name in covar.members else 0
            infos.append(
                VarInfo(
                    name=name,
                    type=covar.types[index] if covar.types else "",
                    bytes=covar.nbytes,
                    covariable=covar_of.hex(),
                    saved=covar.serializer != "unsaved",
                    reason=covar.reason,
                )
            )
        return infos

    def collect_garbage(self) -> GarbageReport:
        """Delete stored objects no kept commit reaches, and give their space back."""
        self.settle()
        return self._store.collect_garbage()

    def apply_retention(self, policy: RetentionPolicy, *, dry_run: bool = False,
                        now: float | None = None, compact: bool = True) -> RetentionReport:
        """Thin old states as ``policy`` says, then collect garbage and compact.

        A budget is met on estimates, so the store is measured after each collection and
        thinned further while it is still over (three rounds at most). With ``compact=False``
        one round runs and the disk is given back by a later ``compact``.
        """
        self.settle()
        now = time.time() if now is None else now
        thinned: list[CommitId] = []
        garbage: GarbageReport | None = None
        for _ in range(3):
            plan = plan_thinning(self._history.every(), self._history.thinned,
                                 self._protected(), self._head_id(), policy, now=now,
                                 store_bytes=self.store_bytes())
            if dry_run:
                return RetentionReport(tuple(self._history.every()[c] for c in plan), None)
            if plan:
                self._store.mark_thinned(plan)
                self._history.thin(set(plan))
                thinned += plan
            elif garbage is not None:
                break
            garbage = self._store.collect_garbage(compact=compact)
            if not compact or policy.budget is None or garbage.disk_after <= policy.budget:
                break
        every = self._history.every()
        return RetentionReport(tuple(every[c] for c in thinned), garbage)

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
