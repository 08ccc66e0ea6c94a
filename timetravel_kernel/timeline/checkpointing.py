"""Checkpoints: what a cell changed, serialized inline or in a forked snapshot (timeline layer).

The checkpoint half of ``Timeline``, kept apart for size: ``plan`` (in the kernel: which names
to examine), ``produce`` (serialize them; inline or in a forked copy-on-write child) and
``apply`` (write the manifests and the commit; inline or on the ingest thread). Cells that end
while a snapshot is still saving are folded into the next checkpoint instead of waiting.
The live bookkeeping it updates is the timeline's (declared below, set by ``Timeline``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from timetravel_kernel.errors import CheckpointStalledError, TimelineError
from timetravel_kernel.state import build_covar, capture, names_read, touched_names
from timetravel_kernel.store import Commit, Covar, NamespaceTree
from timetravel_kernel.timeline.background import (
    BackgroundOptions,
    CheckpointWork,
    ForkedJob,
    fork_checkpoint,
    should_fork,
)
from timetravel_kernel.timeline.results import CellInfo, CheckpointResult, describe_cell

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from timetravel_kernel.ids import CommitId, CovarId, TreeId
    from timetravel_kernel.state import NameIdentities, TimelineOptions
    from timetravel_kernel.state.chunking import ChunkSink
    from timetravel_kernel.store import ObjectStore
    from timetravel_kernel.store.object_store import Transaction
    from timetravel_kernel.store.objects import Status
    from timetravel_kernel.timeline.history import CommitIndex
    from timetravel_kernel.timeline.livecache import LiveCache

    CheckpointCallback = Callable[[CheckpointResult | None, BaseException | None], None]
    """Gets a checkpoint's result, or the reason nothing was committed."""

__all__ = ["MADE_BY", "CheckpointStart", "Checkpointing", "Namespace"]

Namespace = dict[str, object]
CheckpointStart = Literal["inline", "forked", "folded", "deferred"]
_FLAT_LOOKUP = 256
"""Touched names from which a plan reads the tree through one flat table."""

MADE_BY = "; it was made by "


def _joined(cells: list[CellInfo]) -> CellInfo:
    """Return the cells run one after the other as one (folded into one checkpoint)."""
    last = cells[-1]
    return CellInfo(code="\n\n".join(c.code for c in cells), cell_id=last.cell_id,
                    execution_count=last.execution_count, cells=sum(c.cells for c in cells))


class Checkpointing:
    """The checkpoint operations of a ``Timeline`` (a mixin: ``Timeline`` holds the state)."""

    options: TimelineOptions
    _store: ObjectStore
    _history: CommitIndex
    _cache: LiveCache
    _identities: NameIdentities
    _tree: NamespaceTree
    _pending_tree: dict[TreeId, bytes]
    _members: dict[CovarId, tuple[str, ...]]
    _covar_refs: dict[CovarId, tuple[str, ...]]
    _unsaved: dict[CovarId, str]
    _origins: dict[str, str]
    _unrecorded: set[str]
    _tracked: dict[str, bool]
    _head: Commit | None
    _redo: list[CommitId]
    _job: ForkedJob | None
    _folded: list[tuple[CellInfo, Status, float]]
    _folded_names: set[str]
    _never_fork: set[str]

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
        defer_fork: bool = False,
    ) -> CheckpointStart:
        """Commit the namespace after a cell without making the caller wait; say how.

        ``inline``: done here (small, or ``sync``); ``forked``: a copy-on-write snapshot does
        the work and ``on_done`` runs on the ingest thread once it is committed; ``folded``:
        a snapshot is still in flight, so this cell is recorded together with the next
        checkpoint (``catch_up``, or the next cell's) instead of waiting for it;
        ``deferred`` (only with ``defer_fork``): the checkpoint would fork, and the caller
        takes that snapshot later with ``catch_up`` (a kernel: once its idle status is out);
        meanwhile the cell is held as a folded one. ``on_done(result, error)`` is not called
        for a folded or deferred cell. A snapshot that fails leaves its names for the next
        checkpoint, which catches up.

        Raises:
            StoreError: an inline checkpoint could not write the store (nothing committed).
        """
        job = self._job
        if job is not None and not job.done and not job.is_ingesting():
            self.fold(namespace, cell or CellInfo(), status=status, duration=duration)
            return "folded"
        self.settle()
        options = background or BackgroundOptions()
        held = self._folded, self._folded_names
        work = self._plan_checkpoint(namespace, cell, status, duration)
        if defer_fork and self._forks(namespace, work, options):
            self._folded, self._folded_names = held  # the plan is made again by catch_up
            self.fold(namespace, cell or CellInfo(), status=status, duration=duration)
            return "deferred"
        return self._start(namespace, work, on_done, options)

    def catch_up(
        self,
        namespace: Namespace,
        *,
        on_done: CheckpointCallback,
        background: BackgroundOptions | None = None,
    ) -> CheckpointStart | None:
        """Checkpoint the cells folded while a snapshot was in flight; None if there are none."""
        work = self._plan_folded(namespace)
        if work is None:
            return None
        return self._start(namespace, work, on_done, background or BackgroundOptions())

    @property
    def background_pid(self) -> int | None:
        """Return the process id of the snapshot in flight, None when there is none."""
        job = self._job
        return job.pid if job is not None and not job.done else None

    @property
    def folded_cells(self) -> int:
        """How many executed cells wait for a checkpoint (folded into the next one)."""
        return len(self._folded)

    @property
    def folded_seconds(self) -> float:
        """How long the cells waiting for a checkpoint ran, together."""
        return sum(run[2] for run in self._folded)

    def settle(self) -> None:
        """Wait for the checkpoint in flight (if any) to be committed or abandoned."""
        job = self._job
        if job is not None and not job.is_ingesting():
            job.wait_or_stop()
            self._job = None

    def _settle_and_record(self, namespace: Namespace) -> None:
        """Before the namespace is moved: commit the cells run since the last commit."""
        work = self._plan_folded(namespace)
        if work is not None:
            self._checkpoint_inline(namespace, work)
        else:  # only silent executions: what they may have changed stays to be examined
            self._unrecorded |= self._folded_names
            self._folded_names = set()

    def _plan_folded(self, namespace: Namespace) -> CheckpointWork | None:
        """Settle, then plan a checkpoint of the folded cells; None when there are none."""
        self.settle()
        return self._plan_checkpoint(namespace, None, "ok", 0.0) if self._folded else None

    def fold(
        self, namespace: Namespace, cell: CellInfo, *, status: str = "ok", duration: float = 0.0
    ) -> None:
        """Record a cell with the next checkpoint (``catch_up`` or the next cell's).

        Keeps what it may have changed in place; rebinding is seen by then anyway.
        """
        self._keep_names_read(namespace, cell.source or cell.code)
        self._folded.append((cell, "error" if status == "error" else "ok", duration))

    def _start(
        self,
        namespace: Namespace,
        work: CheckpointWork,
        on_done: CheckpointCallback,
        options: BackgroundOptions,
    ) -> CheckpointStart:
        if not self._forks(namespace, work, options):
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
                stall_seconds=options.stall_seconds,
            )
        except OSError:
            # No fork (out of processes or memory): done here, as if never offered.
            on_done(self._checkpoint_inline(namespace, work), None)
            return "inline"
        self._identities.record(namespace, work.touched)  # the snapshot was taken now
        return "forked"

    def _forks(self, namespace: Namespace, work: CheckpointWork,
               options: BackgroundOptions) -> bool:
        """Whether this work runs in a forked snapshot (never for values that stalled one)."""
        return not self._never_fork & work.candidates and should_fork(namespace, work, options)

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
        if isinstance(error, CheckpointStalledError):
            # Something among them blocks after a fork: they are saved in the kernel from now.
            self._never_fork |= work.candidates
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
        # one flat table when many names are looked up (Run All of thousands of names)
        lookup = self._tree.as_dict().get if len(touched) > _FLAT_LOOKUP else self._tree.get
        candidates, deleted = self._candidates(namespace, touched, lookup)
        return CheckpointWork(
            candidates=candidates,
            deleted=deleted,
            touched=touched,
            base=head,
            cell=_joined([run[0] for run in runs]) if len(runs) > 1 else last,
            status="error" if any(run[1] == "error" for run in runs) else "ok",
            duration=sum(run[2] for run in runs),
            at=time.time(),
            previous={n: lookup(n) for n in candidates},
            started=started,
        )

    def _checkpoint_inline(self, namespace: Namespace, work: CheckpointWork) -> CheckpointResult:
        try:
            transaction = self._store.transaction()
            produced = self._produce(namespace, work, transaction.add_chunk_if_new)
            commit = self._apply(work, transaction, produced)
        except BaseException:
            # Nothing committed: the next checkpoint examines these names again (those
            # folded cells touched in place included).
            self._unrecorded |= work.touched
            raise
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
        self._keep_names_read(namespace, source)

    def _keep_names_read(self, namespace: Namespace, source: str | None) -> None:
        """Keep the names code may read (every name if unknown) for the next plan to examine.

        Kept apart from ``_unrecorded`` (no wait for a snapshot in flight, which updates it);
        merged by the next plan or checkout.
        """
        read = names_read(source, namespace) if source else None
        self._folded_names |= set(namespace) if read is None else read

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
                origin = self._origins.get(token) or describe_cell(work.cell)
                captured = replace(captured, reason=f"{captured.reason}{MADE_BY}{origin}")
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
                self._origins[covar.token] = describe_cell(work.cell)
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

    def _candidates(
        self,
        namespace: Namespace,
        touched: set[str],
        lookup: Callable[[str], CovarId | None] | None = None,
    ) -> tuple[set[str], set[str]]:
        """Return the names to serialize after ``touched`` changed, and the names deleted."""
        lookup = lookup or self._tree.get
        present = {n for n in touched if n in namespace and self._is_tracked(n)}
        deleted = {n for n in touched if n not in present and lookup(n) is not None}
        candidates = present | {
            n for n in self._related(touched, lookup) if n in namespace and self._is_tracked(n)
        }
        return candidates, deleted

    def _related(
        self, names: set[str], lookup: Callable[[str], CovarId | None]
    ) -> set[str]:
        """Return the co-members of ``names`` and the names whose streams refer to them."""
        related: set[str] = set()
        members_of = self._members
        for name in names:
            covar_of = lookup(name)
            if covar_of is not None:
                related.update(members_of.get(covar_of, ()))
        for covar_of, refs in self._covar_refs.items():
            if names.isdisjoint(refs):
                continue
            members = members_of.get(covar_of, ())
            if any(lookup(m) == covar_of for m in members):
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
