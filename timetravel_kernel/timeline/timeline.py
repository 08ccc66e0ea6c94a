"""Timeline: the history of one namespace as a tree of commits (timeline layer facade).

``checkpoint`` records the namespace after a cell; ``checkout`` makes the namespace equal to
any commit, loading only the co-variables that differ and leaving the rest untouched;
``undo``/``redo``/``restore`` are checkouts to particular commits. Executing a cell after going
back starts a branch; no commit is ever lost.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from timetravel_kernel.errors import (
    MissingObjectError,
    NothingToRedoError,
    NothingToRestoreError,
    NothingToUndoError,
    TimelineError,
)
from timetravel_kernel.ids import ID_SIZE, ChunkId
from timetravel_kernel.state import (
    NameIdentities,
    TimelineOptions,
    build_covar,
    capture,
    names_read,
    touched_names,
)
from timetravel_kernel.store import Commit, Covar, NamespaceTree, ObjectStore, RocksBackend
from timetravel_kernel.store.codec import encode_chunk
from timetravel_kernel.store.memory import MemoryBackend
from timetravel_kernel.store.objects import Status, decode_covar, encode_covar
from timetravel_kernel.store.refs import (
    REF_HEAD,
    REF_SESSION,
    SessionMarker,
    decode_session,
    encode_session,
)
from timetravel_kernel.timeline.background import (
    BackgroundOptions,
    ForkedJob,
    can_fork,
    estimated_size,
    memory_available,
    wait_quietly,
)
from timetravel_kernel.timeline.history import CommitIndex, diff_trees
from timetravel_kernel.timeline.livecache import LiveCache
from timetravel_kernel.timeline.loading import CheckoutLoader
from timetravel_kernel.timeline.plan import plan_checkout
from timetravel_kernel.timeline.results import (
    CellInfo,
    CheckoutResult,
    CheckpointResult,
    DiffResult,
    VarInfo,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from timetravel_kernel.ids import CommitId, CovarId, TreeId
    from timetravel_kernel.state.chunking import ChunkSink
    from timetravel_kernel.store.object_store import GarbageReport, Transaction

    CheckpointCallback = Callable[[CheckpointResult | None, BaseException | None], None]
    """Gets a checkpoint's result, or the reason nothing was committed."""

__all__ = ["Namespace", "Timeline"]

Namespace = dict[str, object]
_CHUNK_FRAME = 1
"""A frame from a forked checkpoint: a chunk id and its stored (encoded) bytes."""
_COVAR_FRAME = 2
"""A frame from a forked checkpoint: an encoded covariable manifest."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _CheckpointWork:
    """What one checkpoint examines, decided in the parent before any snapshot is taken."""

    candidates: set[str]
    deleted: set[str]
    touched: set[str]
    base: Commit | None
    cell: CellInfo
    status: Status
    duration: float
    at: float
    previous: dict[str, CovarId | None]
    started: float


def _describe(cell: CellInfo) -> str:
    """Return how a user finds a cell again: its execution count, else its first line."""
    if cell.execution_count is not None:
        return f"cell [{cell.execution_count}]"
    first = cell.code.strip().splitlines()[0] if cell.code.strip() else ""
    return f"the cell `{first[:60]}`" if first else "the session's start"


def _without(names: tuple[str, ...], drop: Namespace) -> tuple[str, ...]:
    """Return ``names`` minus the keys of ``drop`` (in C when nothing is dropped)."""
    if drop.keys().isdisjoint(names):
        return names
    return tuple(n for n in names if n not in drop)


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
        self._head: Commit | None = None
        self._redo: list[CommitId] = []
        self._closed = False
        self._session_open = False
        self._job: ForkedJob | None = None
        self._job_hang_seconds = BackgroundOptions().hang_seconds
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
    ) -> Timeline:
        """Open (or create) the store at ``path``.

        Raises:
            StoreLockedError: another process has it open for writing.
            StoreCorruptError, StoreFormatError, StoreError: it cannot be used.
        """
        backend = RocksBackend(path, read_only=read_only, purpose=purpose)
        try:
            store = ObjectStore(backend)
        except BaseException:
            backend.close()
            raise
        return cls(store, options=options, store_path=Path(path))

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
    def read_only(self) -> bool:
        """Whether the store refuses writes."""
        return self._store.backend.read_only

    @property
    def background_pid(self) -> int | None:
        """Return the process id of the checkpoint snapshot in flight, None when there is none."""
        job = self._job
        return job.pid if job is not None and not job.done else None

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
        work = _CheckpointWork(
            candidates=names,
            deleted=set(),
            touched=set(namespace),
            base=None,
            cell=CellInfo(),
            status="ok",
            duration=0.0,
            at=time.time() if names else 0.0,
            previous={},
            started=time.perf_counter(),
        )
        transaction = self._store.transaction()
        produced = self._produce(namespace, work, transaction.add_chunk_if_new)
        root = self._apply(work, transaction, produced)
        self._identities.record(namespace, None)
        return root

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
        """Commit the namespace as it is after a cell (here and now).

        Only names the cell touched (and the co-variables they belong to) are serialized;
        an interrupted or failed checkpoint changes nothing and the next one catches up.

        Raises:
            StoreError: the store cannot be written (nothing was committed).
        """
        self.settle()
        work = self._plan_checkpoint(namespace, cell, status, duration)
        return self._checkpoint_inline(namespace, work)

    def start_checkpoint(
        self,
        namespace: Namespace,
        cell: CellInfo | None = None,
        *,
        on_done: CheckpointCallback,
        status: str = "ok",
        duration: float = 0.0,
        background: BackgroundOptions | None = None,
    ) -> bool:
        """Commit the namespace after a cell, in a forked snapshot when that pays; return whether.

        ``on_done(result, error)`` gets the outcome: at once (inline, before this returns) or
        from the ingest thread once the snapshot's results are committed. Every other method
        waits for a checkpoint in flight first. A snapshot that fails leaves the names it was
        to save for the next checkpoint, which catches up.

        Raises:
            StoreError: an inline checkpoint could not write the store (nothing committed).
        """
        self.settle()
        work = self._plan_checkpoint(namespace, cell, status, duration)
        options = background or BackgroundOptions()
        if not self._should_fork(namespace, work, options):
            on_done(self._checkpoint_inline(namespace, work), None)
            return False
        self._identities.record(namespace, work.touched)  # the snapshot is taken now
        try:
            self._job = self._fork_checkpoint(namespace, work, on_done, options)
        except OSError:
            # No fork (out of processes or memory): do it here, as if never offered.
            on_done(self._checkpoint_inline(namespace, work), None)
            return False
        self._job_hang_seconds = options.hang_seconds
        return True

    def settle(self) -> None:
        """Wait for the checkpoint in flight (if any) to be committed or abandoned."""
        job = self._job
        if job is not None and not job.is_ingesting():
            wait_quietly(job, self._job_hang_seconds)
            self._job = None

    def _plan_checkpoint(
        self, namespace: Namespace, cell: CellInfo | None, status: str, duration: float
    ) -> _CheckpointWork:
        """Decide what a checkpoint examines: the touched names and what they are tied to."""
        started = time.perf_counter()
        head = self._require_head()
        cell = cell or CellInfo()
        source = cell.source or cell.code
        touched = touched_names(namespace, self._identities, source) | self._unrecorded
        present = {n for n in touched if n in namespace and self._is_tracked(n)}
        deleted = {n for n in touched if n not in present and n in self._tree}
        candidates = present | {
            n for n in self._related(touched) if n in namespace and self._is_tracked(n)
        }
        return _CheckpointWork(
            candidates=candidates,
            deleted=deleted,
            touched=touched,
            base=head,
            cell=cell,
            status="error" if status == "error" else "ok",
            duration=duration,
            at=time.time(),
            previous={n: self._tree.get(n) for n in candidates},
            started=started,
        )

    def _checkpoint_inline(self, namespace: Namespace, work: _CheckpointWork) -> CheckpointResult:
        transaction = self._store.transaction()
        produced = self._produce(namespace, work, transaction.add_chunk_if_new)
        commit = self._apply(work, transaction, produced)
        self._identities.record(namespace, work.touched)
        return self._result(work, commit)

    def _result(self, work: _CheckpointWork, commit: Commit) -> CheckpointResult:
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

    def _should_fork(
        self, namespace: Namespace, work: _CheckpointWork, options: BackgroundOptions
    ) -> bool:
        """Return whether this checkpoint runs in a forked snapshot (see BackgroundOptions)."""
        if options.mode == "sync" or not work.candidates or not can_fork():
            return False
        size = sum(estimated_size(dict.get(namespace, n)) for n in work.candidates)
        if options.mode == "auto" and size < options.min_bytes:
            return False
        available = memory_available()
        return available is None or available >= 2 * size + options.memory_headroom

    def _fork_checkpoint(
        self,
        namespace: Namespace,
        work: _CheckpointWork,
        on_done: CheckpointCallback,
        options: BackgroundOptions,
    ) -> ForkedJob:
        """Fork the snapshot that produces this checkpoint; the parent ingests and commits."""
        values_of = {n: dict.get(namespace, n) for n in work.candidates}
        transaction = self._store.transaction()
        covars: list[Covar] = []

        def produce(send: Callable[[int, bytes | memoryview], None]) -> None:
            # In the child. Its copy of values_of must not count as a reference to the values
            # (a big dict referred to by nothing but its name is pickled in groups).
            values_of.clear()
            # Chunks the parent's store is known to hold are not sent again.
            sent: set[ChunkId] = set()

            def send_chunk(chunk_id: ChunkId, data: memoryview, itemsize: int) -> int:
                if chunk_id in sent or self._store.is_known_chunk(chunk_id):
                    return 0
                sent.add(chunk_id)
                send(_CHUNK_FRAME, chunk_id + encode_chunk(data, itemsize))
                return 0

            for covar, _ in self._produce(namespace, work, send_chunk):
                send(_COVAR_FRAME, encode_covar(covar))

        def consume(kind: int, payload: memoryview) -> None:
            if kind == _CHUNK_FRAME:
                chunk_id = ChunkId(bytes(payload[:ID_SIZE]))
                transaction.add_encoded_chunk_if_new(chunk_id, bytes(payload[ID_SIZE:]))
            elif kind == _COVAR_FRAME:
                covars.append(decode_covar(bytes(payload)))

        def finish(error: BaseException | None) -> None:
            result = None
            if error is None:
                try:
                    produced = [(c, tuple(values_of[m] for m in c.members)) for c in covars]
                    result = self._result(work, self._apply(work, transaction, produced))
                except Exception as exc:
                    error = exc
            if error is not None:
                # Nothing committed: the next checkpoint examines these names again.
                self._unrecorded |= work.touched | work.candidates
            on_done(result, error)

        return ForkedJob(produce, consume, finish, hang_seconds=options.hang_seconds)

    def note_unrecorded(self, namespace: Namespace, source: str | None) -> None:
        """Remember what code run without a checkpoint (a silent execution) may have changed.

        Rebinding is seen anyway; an in-place change is not, so the names the code may read
        are reloaded by the next checkout and examined by the next checkpoint.
        """
        self.settle()
        read = names_read(source, namespace) if source else None
        self._unrecorded |= set(namespace) if read is None else read

    def _produce(
        self, namespace: Namespace, work: _CheckpointWork, sink: ChunkSink
    ) -> list[tuple[Covar, tuple[object, ...]]]:
        """Serialize the candidates into manifests, handing new chunks to ``sink``.

        Pure with respect to the timeline: it runs in a forked child as well as inline.
        """
        produced = []
        for captured in capture(namespace, work.candidates, self.options):
            token = None
            if captured.serialized is None:
                # The cell that made an unsaveable value is what rebuilds it: name it, once
                # per live object, so the version (and its id) stays stable while it lives.
                token = self._cache.token_for(captured.values)
                origin = self._origins.get(token) or _describe(work.cell)
                captured = replace(captured, reason=f"{captured.reason}; it was made by {origin}")
            covar = build_covar(captured, self.options, sink=sink, token=token)
            produced.append((covar, captured.values))
        return produced

    def _apply(
        self,
        work: _CheckpointWork,
        transaction: Transaction,
        produced: list[tuple[Covar, tuple[object, ...]]],
    ) -> Commit:
        """Write the produced manifests and the commit; then update the live bookkeeping."""
        base = work.base
        tree = self._tree if base is not None else NamespaceTree.empty()
        transaction.add_tree_records(self._pending_tree)
        changes: dict[str, CovarId | None] = {}
        for covar, values in produced:
            if covar.token is not None:
                self._origins.setdefault(covar.token, _describe(work.cell))
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
        commit = Commit(
            parent=base.id if base is not None else None,
            tree=new_tree.root_id,
            code=work.cell.code,
            cell_id=work.cell.cell_id,
            execution_count=work.cell.execution_count,
            time=work.at,
            duration=work.duration,
            status=work.status,
            changed=tuple(sorted(changes)),
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
        """Make the namespace equal to a commit; all or nothing.

        Raises:
            UnknownCommitError: no such commit.
            SerializationError, StoreError: a value could not be loaded; the namespace is
                unchanged.
        """
        self.settle()
        result = self._checkout(namespace, commit_id, strict=True)
        self._redo.clear()
        return result

    def undo(self, namespace: Namespace) -> CheckoutResult:
        """Go back to HEAD's parent; ``redo`` returns.

        Raises:
            NothingToUndoError: HEAD is a root.
        """
        self.settle()
        head = self._require_head()
        if head.parent is None:
            raise NothingToUndoError("nothing to undo: this is the first state of the session")
        result = self._checkout(namespace, head.parent, strict=True)
        self._redo.append(head.id)
        return result

    def redo(self, namespace: Namespace) -> CheckoutResult:
        """Go forward to the commit the last undo left.

        Raises:
            NothingToRedoError: no undo since the last checkpoint or jump.
        """
        self.settle()
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
        self.settle()
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
            dict.pop(namespace, name, None)
        dict.update(namespace, staged)
        self._tree = target_tree
        if unrestored:
            self._tree, records = target_tree.updated(dict.fromkeys(unrestored))
            self._pending_tree.update(records)
        self._identities.record(namespace, {*dirty, *plan.delete, *unrestored, *staged})
        self._unrecorded.clear()
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

    def diff(self, a: CommitId, b: CommitId) -> DiffResult:
        """Return the names added, deleted and changed from commit ``a`` to commit ``b``."""
        self.settle()
        tree_a = self._store.load_tree(self._history.get(a).tree)
        tree_b = self._store.load_tree(self._history.get(b).tree)
        return diff_trees(tree_a, tree_b)

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
        """Delete stored objects no commit reaches (left by interrupted checkpoints)."""
        self.settle()
        return self._store.collect_garbage()
