"""Recorder: when each cell's checkpoint runs, and the order in which they commit (timeline layer).

Every executed cell gets a state of its own. This is the one place that decides how:

* **inline**, before the cell's reply, when nothing is being saved and the names to examine
  are few, plain and small (about a millisecond: less than a fork) or ``sync`` is asked for;
* otherwise a **snapshot**: the process is forked (right after the cell's idle status, when
  the kernel asks for it so), and the forked copy holds the cell's state while the kernel
  runs on. Snapshots queue up in the order of their cells and one thread commits them in that
  order. The first in the queue was planned when it was taken; a later one learns what to
  examine when its turn comes, from the state the snapshots before it left (its own touched
  names, their co-members then, and whatever a failed one could not save), so its commit is
  exact whatever ran in between. At most ``max_pending`` snapshots wait, and only while the
  system has memory for their copy-on-write growth: past that, the next cell's snapshot waits
  for a free place (back-pressure) instead of merging cells.

A checkpoint that fails leaves its names to the next one, whose state then holds both cells
and says so (``cells``). Nothing here raises into the caller's cell: outcomes go to the
callback, from the caller's thread (inline) or the commit thread (snapshots).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from timetravel_kernel.errors import CheckpointProcessError, CheckpointStalledError
from timetravel_kernel.state import names_read, touched_names
from timetravel_kernel.store.objects import decode_covar
from timetravel_kernel.store.spool import (
    ABSENT,
    CHUNK,
    COVAR,
    SpoolHeader,
    decode_absent,
    decode_chunk,
)
from timetravel_kernel.timeline.background import (
    BackgroundOptions,
    can_fork,
    has_memory_for_snapshot,
    should_fork,
)
from timetravel_kernel.timeline.checkpointing import joined_cells
from timetravel_kernel.timeline.snapshot import SnapshotSpool, take_snapshot

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from timetravel_kernel.ids import ChunkId, CovarId
    from timetravel_kernel.store import Covar, ObjectStore
    from timetravel_kernel.store.objects import Status
    from timetravel_kernel.timeline.checkpointing import Checkpointer, CheckpointWork, Namespace
    from timetravel_kernel.timeline.livestate import LiveState
    from timetravel_kernel.timeline.results import CellInfo, CheckpointResult
    from timetravel_kernel.timeline.snapshot import Snapshot

    CheckpointCallback = Callable[[CheckpointResult | None, BaseException | None], None]
    """Gets a checkpoint's result, or the reason nothing was committed."""

__all__ = ["RecordStart", "Recorder"]

RecordStart = Literal["saved", "failed", "saving", "due"]
"""What ``record`` did: committed inline, failed inline, snapshot taken, snapshot due."""


@dataclass
class _Cell:
    """A recorded cell on its way to a commit."""

    namespace: Namespace
    cell: CellInfo
    status: Status
    duration: float
    at: float
    touched: frozenset[str]
    options: BackgroundOptions
    on_done: CheckpointCallback
    work: CheckpointWork | None = None
    snapshot: Snapshot | None = None
    values: dict[str, object] = field(default_factory=dict)
    known_mark: int = 0
    failures: int = 0


class Recorder:
    """Records each executed cell as its own commit (see the module docstring).

    Args:
        live: the live state the plans read and the commits update.
        checkpointer: plans, produces and applies checkpoints.
        store: the object store (known chunks, the spool folder).
        session: names this session's spool files (they sort in the order of sessions).
    """

    def __init__(self, live: LiveState, checkpointer: Checkpointer, store: ObjectStore,
                 *, session: str) -> None:
        self._live = live
        self._checkpointer = checkpointer
        self._store = store
        self._session = session
        self._queue: deque[_Cell] = deque()
        self._changed = threading.Condition(live.lock)
        self._failed: list[tuple[CellInfo, Status, float]] = []
        self._read_since_snapshot: set[str] = set()
        self._due: _Cell | None = None
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._closing = False

    # -- what the kernel calls ------------------------------------------------------------
    def record(self, namespace: Namespace, cell: CellInfo, *, on_done: CheckpointCallback,
               status: str = "ok", duration: float = 0.0,
               background: BackgroundOptions | None = None, later: bool = False) -> RecordStart:
        """Record the state after a cell as its own commit, without making the caller wait.

        ``saved``: committed here (small, or ``sync``); ``saving``: a forked snapshot holds the
        state and ``on_done`` runs on the commit thread once it is durable; ``due`` (only
        with ``later``): the snapshot is taken by ``take_due_snapshot`` (a kernel: once its
        idle status is out); ``failed``: an inline checkpoint failed (told to ``on_done``;
        the next checkpoint examines its names again and holds this cell too).
        """
        options = background or BackgroundOptions()
        self.take_due_snapshot()  # an earlier cell's comes first (a subshell's cell ended)
        touched = self._touched(namespace, cell)
        item = _Cell(namespace=namespace, cell=cell, status="error" if status == "error" else "ok",
                     duration=duration, at=time.time(), touched=touched, options=options,
                     on_done=on_done)
        if options.mode == "sync" or not can_fork():
            self.settle()
        with self._live.lock:
            if not self._queue:
                item.work = self._plan(item)
                if not self._forks(item):
                    return self._inline(item)
        if later:
            self._due = item
            return "due"
        return self._take(item)

    def checkpoint_now(self, namespace: Namespace, cell: CellInfo, *, status: str = "ok",
                       duration: float = 0.0) -> CheckpointResult:
        """Commit the state after a cell here and now, after what is queued (``sync``).

        Raises:
            StoreError: the store cannot be written (nothing was committed; the next
                checkpoint examines the names again).
        """
        outcome: list[tuple[CheckpointResult | None, BaseException | None]] = []
        self.record(namespace, cell, on_done=lambda *done: outcome.append(done), status=status,
                    duration=duration, background=BackgroundOptions(mode="sync"))
        result, error = outcome[0]
        if error is not None:
            raise error
        assert result is not None
        return result

    def take_due_snapshot(self) -> None:
        """Take the snapshot ``record`` left due (no-op when there is none)."""
        item, self._due = self._due, None
        if item is not None:
            self._take(item)

    def note_unrecorded(self, namespace: Namespace, source: str | None) -> None:
        """Remember what code run without a checkpoint (a silent execution) may have changed.

        Rebinding is seen anyway; an in-place change is not, so the names the code may read
        are examined by the next checkpoint (and reloaded by the next checkout).
        """
        read = names_read(source, namespace) if source else None
        self._read_since_snapshot |= set(namespace) if read is None else read

    def take_unrecorded(self) -> set[str]:
        """Return (and forget) the names silent code read since the last snapshot."""
        names, self._read_since_snapshot = self._read_since_snapshot, set()
        return names

    @property
    def saving(self) -> tuple[CellInfo, ...]:
        """The cells whose states are not durable yet, oldest first."""
        with self._live.lock:
            cells = [item.cell for item in self._queue]
        return (*cells, *((self._due.cell,) if self._due is not None else ()))

    @property
    def snapshot_pids(self) -> tuple[int, ...]:
        """The process ids of the snapshots not yet saved (for tests and tools)."""
        with self._live.lock:
            return tuple(i.snapshot.pid for i in self._queue if i.snapshot is not None)

    def settle(self) -> None:
        """Wait until every cell recorded so far is committed (or its failure reported).

        From the commit thread itself (a callback) this returns at once.
        """
        if threading.current_thread() is self._thread:
            return
        self.take_due_snapshot()
        with self._changed:
            while self._queue:
                self._changed.wait()

    def close(self) -> None:
        """Commit what is queued, then stop the commit thread."""
        self.settle()
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()

    # -- deciding -------------------------------------------------------------------------
    def _touched(self, namespace: Namespace, cell: CellInfo) -> frozenset[str]:
        """The names this cell may have changed, and what silent code read since."""
        source = cell.source or cell.code
        return frozenset(touched_names(namespace, self._live.identities, source)
                         | self.take_unrecorded())

    def _plan(self, item: _Cell) -> CheckpointWork:
        """Plan on the live state as the snapshots before left it (``live.lock`` held)."""
        cell, status, duration = joined_cells([*self._failed,
                                               (item.cell, item.status, item.duration)])
        return self._checkpointer.plan(item.touched, cell, status=status, duration=duration,
                                       at=item.at)

    def _forks(self, item: _Cell) -> bool:
        """Whether a planned checkpoint runs in a snapshot (never for values that stalled one)."""
        work = item.work
        assert work is not None
        return (self._live.never_fork.isdisjoint(work.names)
                and should_fork(item.namespace, work.names, item.options))

    def _inline(self, item: _Cell) -> RecordStart:
        """Checkpoint here and now; report the outcome to the item's callback."""
        work = item.work
        assert work is not None
        try:
            result = self._checkpointer.checkpoint(item.namespace, work)
        except Exception as exc:  # the outcome goes to the callback: never fails the cell
            self._failed.append((item.cell, item.status, item.duration))
            item.on_done(None, exc)
            return "failed"
        self._failed.clear()
        item.on_done(result, None)
        return "saved"

    def _take(self, item: _Cell) -> RecordStart:
        """Fork the item's snapshot and queue it; back-pressure first when there is no room."""
        options = item.options
        if len(self._queue) >= options.max_pending or not has_memory_for_snapshot(options):
            self._wait_for_room(options)
            with self._live.lock:
                if not self._queue and item.work is None:
                    item.work = self._plan(item)
            if not self._queue and not self._forks(item):
                return self._inline(item)
        live = self._live
        names = item.work.names if item.work is not None else None
        namespace = item.namespace
        with live.lock:
            self._seq += 1
            seq = self._seq
            inherited = [fd for queued in self._queue if queued.snapshot is not None
                         for fd in queued.snapshot.fds]
            base = live.head.id.hex() if live.head is not None else None
        item.known_mark = self._store.known_mark()
        item.failures = self._store.failures
        try:
            item.snapshot = take_snapshot(
                produce=lambda chosen, sink: self._checkpointer.produce(namespace, chosen, sink),
                everything=lambda: [n for n in namespace if live.is_tracked(n)],
                names=names,
                current=self._current_ids,
                is_known_chunk=self._store.is_known_chunk,
                spool=self._spool(item, seq, base),
                inherited=inherited,
                orphan_seconds=options.orphan_seconds,
            )
        except OSError:
            # No fork (out of processes or memory): saved here once the queue is empty.
            self.settle()
            with live.lock:
                item.work = self._plan(item)
            return self._inline(item)
        live.identities.record(namespace, item.touched)  # the snapshot was taken now
        item.values = dict(namespace)  # what it holds, for the live cache once committed
        with self._changed:
            self._queue.append(item)
            self._changed.notify_all()
            self._start_thread()
        return "saving"

    def _current_ids(self, names: Collection[str]) -> dict[str, CovarId]:
        """The version each name has in the live tree (what a snapshot's plan builds on)."""
        tree = self._live.tree
        return {n: covar_of for n in names if (covar_of := tree.get(n)) is not None}

    def _spool(self, item: _Cell, seq: int, base: str | None) -> SnapshotSpool | None:
        folder = self._store.backend.spool_dir
        if folder is None:
            return None
        cell = item.cell
        header = SpoolHeader(code=cell.code, cell_id=cell.cell_id,
                             execution_count=cell.execution_count, status=item.status,
                             duration=item.duration, time=item.at, base=base)
        return SnapshotSpool(folder, self._session, seq, header)

    def _wait_for_room(self, options: BackgroundOptions) -> None:
        """Wait until a snapshot may be taken: a free place, and memory for its growth."""
        with self._changed:
            while self._queue and (len(self._queue) >= options.max_pending
                                   or not has_memory_for_snapshot(options)):
                self._changed.wait(0.1)

    # -- committing -----------------------------------------------------------------------
    def _start_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._commit_all, name="timetravel-commit",
                                            daemon=True)
            self._thread.start()

    def _commit_all(self) -> None:
        """The commit thread: commit queued snapshots in order until the recorder closes."""
        while True:
            with self._changed:
                while not self._queue and not self._closing:
                    self._changed.wait()
                if not self._queue:
                    return
                item = self._queue[0]
            try:
                outcome = self._commit(item)
            except BaseException as exc:  # a bug: reported, and the thread goes on
                outcome = None, exc
            with self._changed:
                self._queue.popleft()
                self._changed.notify_all()
            _report(item, *outcome)  # once out of the queue: ``saving`` counts the others

    def _commit(self, item: _Cell) -> tuple[CheckpointResult | None, BaseException | None]:
        """Plan (if its turn decides it), receive and apply one snapshot; return the outcome."""
        snapshot = item.snapshot
        assert snapshot is not None
        live = self._live
        try:
            with live.lock:
                late = item.work is None
                if late:
                    item.work = self._plan(item)
                    current = self._current_ids(item.work.names)
            work = item.work
            assert work is not None
            if late:
                snapshot.send_plan(work.names, current, self._store.known_since(item.known_mark))
            transaction = self._store.transaction()
            covars: list[Covar] = []
            absent: list[str] = []

            def consume(kind: int, payload: memoryview) -> None:
                if kind == COVAR:
                    covars.append(decode_covar(bytes(payload)))
                elif kind == CHUNK:
                    transaction.add_encoded_chunk_if_new(*decode_chunk(payload))
                elif kind == ABSENT:
                    absent.extend(decode_absent(payload))
                else:
                    raise CheckpointProcessError(
                        f"the checkpoint process sent a frame of unknown kind {kind}")

            snapshot.receive(consume, hang_seconds=item.options.hang_seconds,
                             stall_seconds=item.options.stall_seconds)
            if self._store.failures != item.failures:
                _check_chunks(covars, transaction.has_chunk)
            produced = [(c, tuple(item.values[m] for m in c.members)) for c in covars]
            with live.lock:
                result = self._checkpointer.apply(work, transaction, produced,
                                                  present=work.names.difference(absent))
                self._failed.clear()
        except BaseException as exc:  # reported through the callback, never raised here
            snapshot.stop()
            return None, self._fail(item, exc)
        finally:
            item.values = {}
        snapshot.acknowledge()
        return result, None

    def _fail(self, item: _Cell, error: BaseException) -> BaseException:
        """Leave a failed snapshot's names and cell to the next checkpoint; return the error."""
        live = self._live
        with live.lock:
            if item.work is not None:
                live.unrecorded |= item.work.touched | item.work.names
                if isinstance(error, CheckpointStalledError):
                    # Something among them blocks after a fork: saved in the kernel from now.
                    live.never_fork |= item.work.names
            else:
                live.unrecorded |= item.touched
            self._failed.append((item.cell, item.status, item.duration))
        if isinstance(error, KeyError):
            return CheckpointProcessError(f"the snapshot saved an unexpected name {error}")
        return error


def _check_chunks(covars: list[Covar], has_chunk: Callable[[ChunkId], bool]) -> None:
    """Check every chunk the manifests need is stored (a failed write may have lost some).

    Raises:
        CheckpointProcessError: some are missing (the next checkpoint saves them again).
    """
    missing = sum(1 for covar in covars for buffer in covar.buffers for chunk in buffer.chunks
                  if not has_chunk(chunk))
    if missing:
        raise CheckpointProcessError(
            f"{missing} chunks this state needs were lost by a failed write; the next cell's "
            "state saves them again")


def _report(item: _Cell, result: CheckpointResult | None, error: BaseException | None) -> None:
    """Hand an outcome to the cell's callback; a failing callback must not stop the thread."""
    with contextlib.suppress(Exception):
        item.on_done(result, error)

