"""Checkpointer: plan, produce and apply one checkpoint over the live state (timeline layer).

A checkpoint is three steps. *Plan*: from the names a cell may have touched, the names to
examine (their co-members, and names whose streams refer to them), read off the live state
as it is after every earlier checkpoint was applied. *Produce*: serialize those names that
exist into manifests and new chunks; it only reads, so it runs in the kernel or in a forked
snapshot alike. *Apply*: write the manifests, tree and commit in one synced batch and update
the live state. When each step runs, and where, is the recorder's decision
(``timeline/recorder.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from timetravel_kernel.errors import TimelineError
from timetravel_kernel.ids import CovarId, hash_bytes
from timetravel_kernel.state import build_covar, capture
from timetravel_kernel.store import Commit, Covar, NamespaceTree
from timetravel_kernel.store.objects import encode_covar
from timetravel_kernel.timeline.livestate import MADE_BY
from timetravel_kernel.timeline.results import CellInfo, CheckpointResult, describe_cell

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from timetravel_kernel.state import TimelineOptions
    from timetravel_kernel.state.chunking import ChunkSink
    from timetravel_kernel.store import ObjectStore
    from timetravel_kernel.store.object_store import Transaction
    from timetravel_kernel.store.objects import Status
    from timetravel_kernel.timeline.livestate import LiveState

    Produced = list[tuple[Covar, tuple[object, ...]]]
    """Each co-variable's manifest and the live values it was made from."""

__all__ = ["CheckpointWork", "Checkpointer", "Namespace", "joined_cells"]

Namespace = dict[str, object]
_FLAT_LOOKUP = 256
"""Touched names from which a plan reads the tree through one flat table."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointWork:
    """What one checkpoint examines and records.

    ``names`` are examined where they exist (tracked names only); ``touched`` names that no
    longer exist are deleted. ``root`` marks a session's root commit, which does not move
    HEAD.
    """

    names: frozenset[str]
    touched: frozenset[str]
    cell: CellInfo
    status: Status
    duration: float
    at: float
    started: float
    root: bool = False


def joined_cells(cells: list[tuple[CellInfo, Status, float]]) -> tuple[CellInfo, Status, float]:
    """Return cells run one after the other as one (a state that could not be saved alone).

    Only a failed checkpoint leaves a cell without a state of its own: the next state then
    holds it too, and says so (``cells``, and the cells' code in order).
    """
    if len(cells) == 1:
        return cells[0]
    last = cells[-1][0]
    cell = CellInfo(code="\n\n".join(c.code for c, _, _ in cells), source=last.source,
                    cell_id=last.cell_id, execution_count=last.execution_count,
                    cells=sum(c.cells for c, _, _ in cells))
    status: Status = "error" if any(s == "error" for _, s, _ in cells) else "ok"
    return cell, status, sum(d for _, _, d in cells)


class Checkpointer:
    """Plans, produces and applies checkpoints of one timeline.

    Args:
        live: the live state it reads plans from and applies commits to.
        store: where commits are written.
        options: what to save.
        on_commit: told every commit once it is durable (the timeline's history index).
    """

    def __init__(self, live: LiveState, store: ObjectStore, options: TimelineOptions,
                 on_commit: Callable[[Commit], None]) -> None:
        self._live = live
        self._store = store
        self._options = options
        self._on_commit = on_commit

    def plan(self, touched: Collection[str], cell: CellInfo, *, status: Status = "ok",
             duration: float = 0.0, at: float | None = None) -> CheckpointWork:
        """Decide what a checkpoint examines: the touched names and what they are tied to.

        Names the live state holds as unrecorded (a failed checkpoint, a kept value) are
        examined too. Call with ``live.lock`` held, after every earlier checkpoint applied.
        """
        started = time.perf_counter()
        live = self._live
        self._require_head()
        all_touched = set(touched) | live.unrecorded
        # one flat table when many names are looked up (Run All of thousands of names)
        lookup = live.tree.as_dict().get if len(all_touched) > _FLAT_LOOKUP else live.tree.get
        names = {n for n in all_touched | live.related(all_touched, lookup) if live.is_tracked(n)}
        return CheckpointWork(names=frozenset(names), touched=frozenset(all_touched), cell=cell,
                              status="error" if status == "error" else "ok",
                              duration=duration, at=time.time() if at is None else at,
                              started=started)

    def root_work(self, namespace: Namespace) -> CheckpointWork:
        """Return the work of a session's root commit: every tracked name, HEAD unmoved."""
        names = frozenset(n for n in namespace if self._live.is_tracked(n))
        return CheckpointWork(names=names, touched=frozenset(namespace), cell=CellInfo(),
                              status="ok", duration=0.0, at=time.time() if names else 0.0,
                              started=time.perf_counter(), root=True)

    def checkpoint(self, namespace: Namespace, work: CheckpointWork) -> CheckpointResult:
        """Produce and apply here and now (the kernel waits).

        Raises:
            StoreError: the store cannot be written (nothing was committed; the names are
                examined again by the next checkpoint).
        """
        live = self._live
        try:
            transaction = self._store.transaction()
            produced = self.produce(namespace, work.names, transaction.add_chunk_if_new)
            with live.lock:
                result = self.apply(work, transaction, produced)
        except BaseException:
            self.forget(work)
            raise
        live.identities.record(namespace, None if work.root else work.touched)
        return result

    def forget(self, work: CheckpointWork) -> None:
        """Nothing of ``work`` was committed: the next checkpoint examines its names again."""
        with self._live.lock:
            self._live.unrecorded |= work.touched | work.names

    def produce(self, namespace: Namespace, names: Collection[str], sink: ChunkSink) -> Produced:
        """Serialize the examined names that exist into manifests, new chunks to ``sink``.

        Reads the live state, never changes it: it runs in a forked snapshot as well as here.
        An unsaveable value's manifest carries its reason and a token naming the live object;
        the cell that made it is added when the manifest is applied.
        """
        present = [n for n in names if n in namespace]
        produced = []
        for captured in capture(namespace, present, self._options):
            token = None
            if captured.serialized is None:
                # The same live object keeps one token, so its version (and id) stays stable.
                token = self._live.cache.token_for(captured.values)
            covar = build_covar(captured, self._options, sink=sink, token=token)
            produced.append((covar, captured.values))
        return produced

    def apply(self, work: CheckpointWork, transaction: Transaction, produced: Produced, *,
              present: Collection[str] | None = None) -> CheckpointResult:
        """Write the produced manifests and the commit; then update the live state.

        ``present``: the examined names that exist, when ``produced`` leaves out unchanged
        co-variables (a snapshot sends only what changed); by default its members. Call with
        ``live.lock`` held. The commit follows the live HEAD as it is now (every earlier
        checkpoint applied).
        """
        live = self._live
        tree = NamespaceTree.empty() if work.root else live.tree
        parent = None if work.root else self._require_head()
        transaction.add_tree_records(live.pending_tree)
        changes: dict[str, CovarId | None] = {}
        made: set[str] = set()
        unsaved: dict[str, str] = {}
        found: set[str] = set()
        for covar, values in produced:
            covar = self._with_origin(covar, work.cell, made)
            data = encode_covar(covar)
            new_id = CovarId(hash_bytes(data))
            live.cache.put(new_id, covar, values)
            found.update(covar.members)
            if all(tree.get(m) == new_id for m in covar.members):
                continue  # unchanged: stored already, and its bookkeeping known
            transaction.add_encoded_covar(new_id, data)
            live.note_covar(new_id, covar)
            for member in covar.members:
                if tree.get(member) != new_id:
                    changes[member] = new_id
                    if covar.reason is not None:
                        unsaved[member] = covar.reason
        present = found if present is None else set(present)
        changes.update(dict.fromkeys(
            n for n in work.touched
            if n not in present and live.is_tracked(n) and tree.get(n) is not None))
        new_tree, records = tree.updated(changes) if changes or work.root else (tree, {})
        transaction.add_tree_records(records)
        used = live.unsaved_members(new_tree, work.touched) - made
        cell = work.cell
        commit = transaction.commit(Commit(
            parent=parent.id if parent is not None else None,
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
        ), set_head=not work.root)
        # Committed: from here on only in-memory bookkeeping, which cannot fail.
        live.pending_tree = {}
        self._store.remember_tree(new_tree)
        live.tree = new_tree
        live.head = commit
        live.redo.clear()
        live.unrecorded -= work.touched | work.names
        self._on_commit(commit)
        return CheckpointResult(commit=commit, unsaved=unsaved,
                                seconds=time.perf_counter() - work.started)

    def _with_origin(self, covar: Covar, cell: CellInfo, made: set[str]) -> Covar:
        """Name the cell that made an unsaveable value in its reason (what rebuilds it)."""
        if covar.token is None:
            return covar
        origins = self._live.origins
        origin = origins.get(covar.token)
        if origin is None:
            origin = origins[covar.token] = describe_cell(cell)
            made.update(covar.members)
        return replace(covar, reason=f"{covar.reason}{MADE_BY}{origin}")

    def _require_head(self) -> Commit:
        head = self._live.head
        if head is None:
            raise TimelineError("the timeline has no session: call start(namespace) first")
        return head
