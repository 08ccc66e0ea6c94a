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
from typing import TYPE_CHECKING, Literal

from timetravel_kernel.errors import (
    MissingObjectError,
    NothingToRedoError,
    NothingToRestoreError,
    NothingToUndoError,
    StoreCorruptError,
    TimelineError,
    UnknownNameError,
)
from timetravel_kernel.state import (
    NameIdentities,
    TimelineOptions,
    build_covar,
    capture,
    names_read,
    touched_names,
)
from timetravel_kernel.store import Commit, Covar, NamespaceTree, ObjectStore, RocksBackend
from timetravel_kernel.store.memory import MemoryBackend
from timetravel_kernel.store.objects import Status
from timetravel_kernel.store.refs import (
    REF_HEAD,
    REF_SESSION,
    SessionMarker,
    decode_session,
    encode_session,
)
from timetravel_kernel.timeline.background import (
    BackgroundOptions,
    CheckpointWork,
    ForkedJob,
    fork_checkpoint,
    should_fork,
    wait_quietly,
)
from timetravel_kernel.timeline.history import CommitIndex, diff_trees, name_history
from timetravel_kernel.timeline.lineage import RebuildPlan, plan_rebuild
from timetravel_kernel.timeline.livecache import LiveCache
from timetravel_kernel.timeline.loading import CheckoutLoader
from timetravel_kernel.timeline.plan import plan_checkout
from timetravel_kernel.timeline.rebuild import RebuildResult, run_rebuild
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

    from timetravel_kernel.ids import CommitId, CovarId, TreeId
    from timetravel_kernel.state.chunking import ChunkSink
    from timetravel_kernel.store.object_store import GarbageReport, Transaction

    CheckpointCallback = Callable[[CheckpointResult | None, BaseException | None], None]
    """Gets a checkpoint's result, or the reason nothing was committed."""

__all__ = ["CheckpointStart", "Namespace", "Timeline"]

Namespace = dict[str, object]
CheckpointStart = Literal["inline", "forked", "folded"]
_MADE_BY = "; it was made by "


def _describe(cell: CellInfo) -> str:
    """Return how a user finds a cell again: its execution count, else its first line."""
    if cell.execution_count is not None and cell.cells > 1:
        return f"one of the {cell.cells} cells up to [{cell.execution_count}]"
    if cell.execution_count is not None:
        return f"cell [{cell.execution_count}]"
    first = cell.code.strip().splitlines()[0] if cell.code.strip() else ""
    return f"the cell `{first[:60]}`" if first else "the session's start"


def _joined(cells: list[CellInfo]) -> CellInfo:
    """Return the cells run one after the other as one (folded into one checkpoint)."""
    last = cells[-1]
    return CellInfo(code="\n\n".join(c.code for c in cells), cell_id=last.cell_id,
                    execution_count=last.execution_count, cells=sum(c.cells for c in cells))


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

    Args:
        store: the object store (the timeline closes it).
        options: what to save and how.
        store_path: where the store lives, for display.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        options: TimelineOptions | None = None,
        store_path: Path | None = None,
    ) -> None:
        self._store = store
        self.options = options or TimelineOptions()
        self.store_path = store_path
        self._history = CommitIndex(store)
        self._cache = LiveCache()
        self._identities = NameIdentities()
        self._tree = NamespaceTree.empty()
        self._pending_tree: dict[TreeId, bytes] = {}
        self._members: dict[CovarId, tuple[str, ...]] = {}
        self._covar_refs: dict[CovarId, tuple[str, ...]] = {}
        self._unsaved: dict[CovarId, str] = {}
        self._origins: dict[str, str] = {}
        self._unrecorded: set[str] = set()
        self._tracked: dict[str, bool] = {}
        self._lost: dict[str, str] = {}
        self._lost_at: Commit | None = None
        self._head: Commit | None = None
        self._redo: list[CommitId] = []
        self._closed = False
        self._session_open = False
        self._job: ForkedJob | None = None
        self._job_hang_seconds = BackgroundOptions().hang_seconds
        self._folded: list[tuple[CellInfo, Status, float]] = []
        self._folded_names: set[str] = set()
        marker = decode_session(store.read_ref(REF_SESSION))
        self.previous_session_crashed = marker is not None and marker.state == "open"
        self.restorable = self._find_restorable()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        options: TimelineOptions | None = None,
        read_only: bool = False,
        purpose: str = "",
        key: str = "",
    ) -> Timeline:
        """Open (or create) the store at ``path``.

        Raises:
            StoreLockedError: another process has it open for writing.
            StoreCorruptError, StoreFormatError, StoreError: it cannot be used.
        """
        if not read_only and (Path(path) / "CURRENT").exists():
            _check_manifest(Path(path))
        backend = RocksBackend(path, read_only=read_only, purpose=purpose, key=key)
        try:
            return cls(ObjectStore(backend), options=options, store_path=Path(path))
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
        """Return the commit the live namespace equals (None before ``start``)."""
        self.settle()
        return self._head

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

    def commit_count(self) -> int:
        """Return the number of commits in the store."""
        self.settle()
        return len(self._history)

    def store_bytes(self) -> int:
        """Return the size of the store."""
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
        names = {n for n in namespace if self._is_tracked(n)}
        work = CheckpointWork(candidates=names, deleted=set(), touched=set(namespace), base=None,
                              cell=CellInfo(), status="ok", duration=0.0,
                              at=time.time() if names else 0.0, previous={},
                              started=time.perf_counter())
        return self._checkpoint_inline(namespace, work).commit

    def close(self) -> None:
        """Release the store, marking this session (if it started one) cleanly closed.

        A timeline used only to inspect or collect garbage leaves the marker alone, so a
        crashed session is still recognised by the next kernel.
        """
        if self._closed:
            return
        self.settle()
        self._closed = True
        try:
            if self._session_open:
                marker = SessionMarker(state="closed", pid=os.getpid(), started=time.time())
                self._store.set_refs({REF_SESSION: encode_session(marker)})
        finally:
            self._store.close()

    # -- checkpoint ---------------------------------------------------------------------
    def checkpoint(
        self,
        namespace: Namespace,
        cell: CellInfo | None = None,
        *,
        status: str = "ok",
        duration: float = 0.0,
    ) -> CheckpointResult:
        """Commit the namespace as it is after a cell, here and now.

        Only names the cell touched (and the co-variables they belong to) are serialized;
        an interrupted or failed checkpoint changes nothing and the next one catches up.

        Raises:
            StoreError: the store cannot be written (nothing was committed).
        """
        self.settle()
        return self._checkpoint_inline(
            namespace, self._plan_checkpoint(namespace, cell, status, duration)
        )

    def start_checkpoint(
        self,
        namespace: Namespace,
        cell: CellInfo | None = None,
        *,
        on_done: CheckpointCallback,
        status: str = "ok",
        duration: float = 0.0,
        background: BackgroundOptions | None = None,
    ) -> CheckpointStart:
        """Commit the namespace after a cell without making the caller wait; say how.

        ``inline``: done here (small, or ``sync``); ``forked``: a copy-on-write snapshot does
        the work and ``on_done`` runs on the ingest thread once it is committed; ``folded``:
        a snapshot is still in flight, so this cell is recorded together with the next
        checkpoint (``catch_up``, or the next cell's) instead of waiting for it.
        ``on_done(result, error)`` is not called for a folded cell. A snapshot that fails
        leaves its names for the next checkpoint, which catches up.

        Raises:
            StoreError: an inline checkpoint could not write the store (nothing committed).
        """
        job = self._job
        if job is not None and not job.done and not job.is_ingesting():
            self._fold(namespace, cell or CellInfo(), status, duration)
            return "folded"
        self.settle()
        return self._start(namespace, self._plan_checkpoint(namespace, cell, status, duration),
                           on_done, background or BackgroundOptions())

    def catch_up(
        self,
        namespace: Namespace,
        *,
        on_done: CheckpointCallback,
        background: BackgroundOptions | None = None,
    ) -> CheckpointStart | None:
        """Checkpoint the cells folded while a snapshot was in flight; None if there are none."""
        self.settle()
        if not self._folded:
            return None
        return self._start(namespace, self._plan_checkpoint(namespace, None, "ok", 0.0),
                           on_done, background or BackgroundOptions())

    @property
    def background_pid(self) -> int | None:
        """Return the process id of the snapshot in flight, None when there is none."""
        job = self._job
        return job.pid if job is not None and not job.done else None

    @property
    def folded_cells(self) -> int:
        """How many executed cells wait for a checkpoint (folded while a snapshot ran)."""
        return len(self._folded)

    def settle(self) -> None:
        """Wait for the checkpoint in flight (if any) to be committed or abandoned."""
        job = self._job
        if job is not None and not job.is_ingesting():
            wait_quietly(job, self._job_hang_seconds)
            self._job = None

    def _settle_and_record(self, namespace: Namespace) -> None:
        """Before the namespace is moved: commit what ran since the last commit."""
        self.settle()
        if self._folded:
            self._checkpoint_inline(namespace, self._plan_checkpoint(namespace, None, "ok", 0.0))

    def _fold(self, namespace: Namespace, cell: CellInfo, status: str, duration: float) -> None:
        """Keep what a cell may have changed for the next checkpoint (rebinding is seen then)."""
        source = cell.source or cell.code
        read = names_read(source, namespace) if source else None
        self._folded_names |= set(namespace) if read is None else read
        self._folded.append((cell, "error" if status == "error" else "ok", duration))

    def _start(
        self,
        namespace: Namespace,
        work: CheckpointWork,
        on_done: CheckpointCallback,
        options: BackgroundOptions,
    ) -> CheckpointStart:
        if not should_fork(namespace, work, options):
            on_done(self._checkpoint_inline(namespace, work), None)
            return "inline"
        try:
            self._job = fork_checkpoint(
                produce=lambda sink: self._produce(namespace, work, sink),
                is_known_chunk=self._store.is_known_chunk,
                transaction=self._store.transaction(),
                finish=lambda produced, error: self._finish_forked(work, produced, error,
                                                                    on_done),
                values={n: dict.get(namespace, n) for n in work.candidates},
                hang_seconds=options.hang_seconds,
            )
        except OSError:
            # No fork (out of processes or memory): done here, as if never offered.
            on_done(self._checkpoint_inline(namespace, work), None)
            return "inline"
        self._identities.record(namespace, work.touched)  # the snapshot was taken now
        self._job_hang_seconds = options.hang_seconds
        return "forked"

    def _finish_forked(
        self,
        work: CheckpointWork,
        produced: tuple[Transaction, list[tuple[Covar, tuple[object, ...]]]] | None,
        error: BaseException | None,
        on_done: CheckpointCallback,
    ) -> None:
        """Commit what a snapshot produced (on the ingest thread), then report the outcome."""
        result = None
        if produced is not None:
            try:
                result = self._result(work, self._apply(work, *produced))
            except Exception as exc:
                error = exc
        if result is None:
            # Nothing committed: the next checkpoint examines these names again.
            self._unrecorded |= work.touched | work.candidates
        on_done(result, error)

    def _plan_checkpoint(
        self, namespace: Namespace, cell: CellInfo | None, status: str, duration: float
    ) -> CheckpointWork:
        """Decide what a checkpoint examines: the touched names and what they are tied to.

        Cells folded since the last commit are recorded with it (their code in order).
        """
        started = time.perf_counter()
        head = self._require_head()
        runs = [*self._folded, *([] if cell is None else [(cell, status, duration)])]
        last = runs[-1][0] if runs else CellInfo()
        source = last.source or last.code
        touched = (touched_names(namespace, self._identities, source) | self._unrecorded
                   | self._folded_names)
        self._folded, self._folded_names = [], set()
        candidates, deleted = self._candidates(namespace, touched)
        return CheckpointWork(
            candidates=candidates,
            deleted=deleted,
            touched=touched,
            base=head,
            cell=_joined([run[0] for run in runs]) if len(runs) > 1 else last,
            status="error" if any(run[1] == "error" for run in runs) else "ok",
            duration=sum(run[2] for run in runs),
            at=time.time(),
            previous={n: self._tree.get(n) for n in candidates},
            started=started,
        )

    def _checkpoint_inline(self, namespace: Namespace, work: CheckpointWork) -> CheckpointResult:
        transaction = self._store.transaction()
        produced = self._produce(namespace, work, transaction.add_chunk_if_new)
        commit = self._apply(work, transaction, produced)
        self._identities.record(namespace, work.touched if work.base is not None else None)
        return self._result(work, commit)

    def _result(self, work: CheckpointWork, commit: Commit) -> CheckpointResult:
        unsaved = {}
        for name in commit.changed:
            covar_of = self._tree.get(name)
            if covar_of is not None and covar_of != work.previous.get(name):
                reason = self._unsaved.get(covar_of)
                if reason is not None:
                    unsaved[name] = reason
        return CheckpointResult(
            commit=commit, unsaved=unsaved, seconds=time.perf_counter() - work.started
        )

    def note_unrecorded(self, namespace: Namespace, source: str | None) -> None:
        """Remember what code run without a checkpoint (a silent execution) may have changed.

        Rebinding is seen anyway; an in-place change is not, so the names the code may read
        are reloaded by the next checkout and examined by the next checkpoint.
        """
        self.settle()
        read = names_read(source, namespace) if source else None
        self._unrecorded |= set(namespace) if read is None else read

    def _produce(
        self, namespace: Namespace, work: CheckpointWork, sink: ChunkSink
    ) -> list[tuple[Covar, tuple[object, ...]]]:
        """Serialize the candidates into manifests, handing new chunks to ``sink``.

        Reads the timeline, never changes it: it runs in a forked snapshot as well as inline.
        """
        produced = []
        for captured in capture(namespace, work.candidates, self.options):
            token = None
            if captured.serialized is None:
                # The cell that made an unsaveable value is what rebuilds it: name it, once
                # per live object, so the version (and its id) stays stable while it lives.
                token = self._cache.token_for(captured.values)
                origin = self._origins.get(token) or _describe(work.cell)
                captured = replace(captured, reason=f"{captured.reason}{_MADE_BY}{origin}")
            covar = build_covar(captured, self.options, sink=sink, token=token)
            produced.append((covar, captured.values))
        return produced

    def _apply(
        self,
        work: CheckpointWork,
        transaction: Transaction,
        produced: list[tuple[Covar, tuple[object, ...]]],
    ) -> Commit:
        """Write the produced manifests and the commit; then update the live bookkeeping."""
        base = work.base
        tree = self._tree if base is not None else NamespaceTree.empty()
        transaction.add_tree_records(self._pending_tree)
        changes: dict[str, CovarId | None] = {}
        made: set[str] = set()
        for covar, values in produced:
            if covar.token is not None and covar.token not in self._origins:
                made.update(covar.members)
                self._origins[covar.token] = _describe(work.cell)
            new_id = transaction.add_covar(covar)
            self._cache.put(new_id, covar, values)
            self._members[new_id] = covar.members
            if covar.refs:
                self._covar_refs[new_id] = covar.refs
            if covar.reason is not None:
                self._unsaved[new_id] = covar.reason
            changes.update({m: new_id for m in covar.members if tree.get(m) != new_id})
        changes.update(dict.fromkeys(work.deleted))
        new_tree, records = tree.updated(changes) if changes or base is None else (tree, {})
        transaction.add_tree_records(records)
        used = self._unsaved_members(new_tree, work.touched) - made
        cell = work.cell
        commit = Commit(
            parent=base.id if base is not None else None,
            tree=new_tree.root_id,
            code=cell.code,
            cell_id=cell.cell_id,
            execution_count=cell.execution_count,
            cells=cell.cells,
            time=work.at,
            duration=work.duration,
            status=work.status,
            changed=tuple(sorted(changes)),
            unsaved_made=tuple(sorted(made)),
            unsaved_used=tuple(sorted(used)),
        )
        commit = transaction.commit(commit, set_head=base is not None)
        # Committed: from here on only in-memory bookkeeping, which cannot fail.
        self._pending_tree = {}
        self._store.remember_tree(new_tree)
        self._tree = new_tree
        self._head = commit
        self._redo.clear()
        self._unrecorded -= work.touched
        self._history.add(commit)
        return commit

    def _unsaved_members(self, tree: NamespaceTree, names: Iterable[str]) -> set[str]:
        """Return the members of the unsaveable co-variables that ``names`` belong to."""
        found: set[str] = set()
        for name in names:
            covar_of = tree.get(name)
            if covar_of is not None and covar_of in self._unsaved:
                found.update(self._members.get(covar_of, (name,)))
        return found

    def _candidates(self, namespace: Namespace, touched: set[str]) -> tuple[set[str], set[str]]:
        """Return the names to serialize after ``touched`` changed, and the names deleted."""
        present = {n for n in touched if n in namespace and self._is_tracked(n)}
        deleted = {n for n in touched if n not in present and n in self._tree}
        candidates = present | {
            n for n in self._related(touched) if n in namespace and self._is_tracked(n)
        }
        return candidates, deleted

    def _related(self, names: set[str]) -> set[str]:
        """Return the co-members of ``names`` and the names whose streams refer to them."""
        related: set[str] = set()
        for name in names:
            covar_of = self._tree.get(name)
            if covar_of is not None:
                related.update(self._members.get(covar_of, ()))
        for covar_of, refs in self._covar_refs.items():
            if names.isdisjoint(refs):
                continue
            members = self._members.get(covar_of, ())
            if any(self._tree.get(m) == covar_of for m in members):
                related.update(members)
        return related

    def _is_tracked(self, name: str) -> bool:
        tracked = self._tracked.get(name)
        if tracked is None:
            tracked = self._tracked[name] = isinstance(name, str) and self.options.is_tracked(
                name
            )
        return tracked

    def _require_head(self) -> Commit:
        if self._head is None:
            raise TimelineError("the timeline has no session: call start(namespace) first")
        return self._head

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
        self._settle_and_record(namespace)
        result = self._checkout(namespace, commit_id, strict=True)
        self._redo.clear()
        return result

    def undo(self, namespace: Namespace) -> CheckoutResult:
        """Go back to HEAD's parent; ``redo`` returns.

        Raises:
            NothingToUndoError: HEAD is a root.
        """
        self._settle_and_record(namespace)
        head = self._require_head()
        parent = self._history.kept_ancestor(head.parent)
        if parent is None:
            raise NothingToUndoError("nothing to undo: this is the first state of the session")
        result = self._checkout(namespace, parent, strict=True)
        self._redo.append(head.id)
        return result

    def redo(self, namespace: Namespace) -> CheckoutResult:
        """Go forward to the commit the last undo left.

        Raises:
            NothingToRedoError: no undo since the last checkpoint or jump.
        """
        self._settle_and_record(namespace)
        if not self._redo:
            raise NothingToRedoError("nothing to redo: no cell has been undone since")
        result = self._checkout(namespace, self._redo[-1], strict=True)
        self._redo.pop()
        return result

    def restore(self, namespace: Namespace) -> CheckoutResult:
        """Bring back the state the previous session ended with, as much of it as loads.

        Raises:
            NothingToRestoreError: the store has no earlier state.
        """
        self._settle_and_record(namespace)
        if self.restorable is None:
            raise NothingToRestoreError("there is no earlier state to restore")
        result = self._checkout(namespace, self.restorable.id, strict=False)
        self._redo.clear()
        self.restorable = None
        return result

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
            for n in self._identities.changed(namespace) | self._unrecorded
            if self._is_tracked(n)
        }
        plan = plan_checkout(
            self._tree,
            target_tree,
            dirty=dirty,
            is_present=lambda name: name in namespace and self._is_tracked(name),
        )
        loader = CheckoutLoader(
            self._store, self.options, self._cache, self._tree, self._members, namespace
        )
        loaded = loader.load(plan, self._load_manifests(plan.load), strict=strict)
        staged, unrestored = loaded.staged, loaded.unrestored
        # Everything is loaded: apply in one go, so a failure above left the namespace as it was.
        for patch in loaded.patches:
            patch.apply()
        for covar_of, covar, values in loaded.fresh:
            self._cache.put(covar_of, covar, values)
        for name in (*plan.delete, *unrestored):
            if name not in loaded.kept:
                dict.pop(namespace, name, None)
        dict.update(namespace, staged)
        self._tree = target_tree
        if unrestored:
            self._tree, records = target_tree.updated(dict.fromkeys(unrestored))
            self._pending_tree.update(records)
        self._identities.record(namespace, {*dirty, *plan.delete, *unrestored, *staged})
        # a live value kept for want of a loadable one is not lost (nothing to rebuild), and
        # the next checkpoint examines it
        lost = {n: r for n, r in unrestored.items() if n not in loaded.kept}
        self._lost, self._lost_at = lost, target
        self._unrecorded = set(loaded.kept)
        if not self.read_only:
            self._store.set_refs({REF_HEAD: target.id})
        self._head = target
        return CheckoutResult(
            head=target,
            loaded=tuple(sorted(staged)),
            deleted=tuple(sorted(n for n in plan.delete if n not in staged)),
            kept=_without(plan.keep, staged),
            seconds=time.perf_counter() - started,
            unrestored=unrestored,
        )

    def _load_manifests(self, covar_ids: Iterable[CovarId]) -> dict[CovarId, Covar]:
        """Read a checkout's manifests, remembering what the live state needs of them."""
        covars = {c: self._store.load_covar(c) for c in covar_ids}
        for covar_of, covar in covars.items():
            self._members[covar_of] = covar.members
            if covar.refs:
                self._covar_refs[covar_of] = covar.refs
            if covar.reason is not None:
                self._unsaved[covar_of] = covar.reason
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
        wanted = self._lost if names is None else list(names)
        return plan_rebuild(self._store, self._history.get, self._lost_at, wanted)

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
        self._settle_and_record(namespace)
        plan = self.rebuild_plan(names)
        present = {n for n in plan.names if n in namespace}
        if present:  # the user has made these again since: theirs win
            plan = plan_rebuild(self._store, self._history.get, plan.at,
                                [n for n in plan.names if n not in present])
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
            self._cache.adopt(covar_of, covar, tuple(values[m] for m in covar.members))
            self._members[covar_of] = covar.members
            self._unsaved[covar_of] = covar.reason or "not saved"
            if covar.token is not None and covar.reason:
                # The same origin as recorded, so the next checkpoint keeps the version's id.
                self._origins[covar.token] = covar.reason.rpartition(_MADE_BY)[2]
            changes.update(dict.fromkeys(covar.members, covar_of))
        if not changes:
            return
        dict.update(namespace, {n: values[n] for n in changes})
        self._tree, records = self._tree.updated(changes)
        self._pending_tree.update(records)
        self._identities.record(namespace, changes)
        for name in changes:
            self._lost.pop(name, None)

    # -- history ------------------------------------------------------------------------
    def log(self, limit: int | None = None) -> list[Commit]:
        """Return commits newest first, all branches."""
        self.settle()
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
        versions = name_history(self._store, self._history.log(), name, self._tree.get(name))
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
        self._settle_and_record(namespace)
        started = time.perf_counter()
        head = self._require_head()
        commit = self._history.get(commit_id)
        covar = version_at(self._store, commit, name)
        targets = restore_targets(covar, name, as_name, together=together)
        if not all(self._is_tracked(t) for t in targets.values()):
            raise TimelineError(f"{as_name or name!r} is excluded from the history (skip "
                                "options); choose another name")
        chosen = load_version(self._store, covar, namespace)
        staged = {target: chosen[member] for member, target in targets.items()}
        previous = {n: dict.__getitem__(namespace, n) for n in staged if n in namespace}
        dict.update(namespace, staged)
        label = f"%tt get {name}@{commit.id.hex()[:10]}"
        label += f" as {as_name}" if as_name else (" --together" if len(targets) > 1 else "")
        try:
            touched = set(staged) | self._unrecorded
            candidates, _ = self._candidates(namespace, touched)
            work = CheckpointWork(candidates=candidates, deleted=set(), touched=touched,
                                  base=head, cell=CellInfo(code=label), status="ok",
                                  duration=0.0, at=time.time(), previous={}, started=started)
            recorded = self._checkpoint_inline(namespace, work).commit
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
            tree = self._tree
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

    def _head_id(self) -> CommitId | None:
        if self._head is not None:
            return self._head.id
        return self._store.read_ref(REF_HEAD)  # type: ignore[return-value]

    def _protected(self) -> set[CommitId]:
        """Return the states retention must keep: HEAD's, redo's and the restorable one."""
        ids = {self._head_id(), *self._redo, self.restorable.id if self.restorable else None}
        return {i for i in ids if i is not None}
