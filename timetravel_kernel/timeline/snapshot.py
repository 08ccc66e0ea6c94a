"""Snapshot: a forked copy of the kernel holds one cell's state until it is saved (timeline layer).

``fork()`` copies the process for the price of its page tables, and from then on the child
holds the cell's state exactly as it was, whatever the kernel runs next. The child serializes
the names it is told to (at once, or once the snapshots before it are saved: their results
decide what it must examine), sends manifests and new chunks to the kernel over a pipe, and
waits for the kernel's word that the commit is durable. If the kernel dies first, the child
writes the whole state of its cell to a spool file beside the store (``store/spool.py``),
which the next kernel commits: a state whose snapshot was taken outlives the kernel.
What runs in the child is in ``timeline/snapshot_child.py``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import select
import signal
import time
from typing import TYPE_CHECKING

from timetravel_kernel.errors import CheckpointProcessError, CheckpointStalledError
from timetravel_kernel.store.spool import DONE, FAILED, FRAME, read_frames, spool_name
from timetravel_kernel.timeline.snapshot_child import (
    ACK,
    PLAN,
    STALL_POLL,
    SnapshotChild,
    SnapshotSpool,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from timetravel_kernel.ids import ChunkId, CovarId
    from timetravel_kernel.timeline.snapshot_child import CurrentIds, Produce

__all__ = ["Snapshot", "SnapshotSpool", "take_snapshot"]

_PIPE_SIZE = 1 << 20


def _cpu_ticks(pid: int) -> int | None:
    """Return the CPU time a process has used (clock ticks), None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as proc_stat:
            fields = proc_stat.read().rpartition(b")")[2].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


class Snapshot:
    """The kernel's handle on one forked snapshot (see the module docstring).

    Created by ``take_snapshot``; the recorder's commit thread drives it: ``send_plan`` when
    its turn comes (unless planned at the fork), ``receive`` its frames, ``acknowledge``
    once committed, or ``stop`` it.
    """

    def __init__(self, pid: int, data_fd: int, control_fd: int,
                 spool: SnapshotSpool | None) -> None:
        self.pid = pid
        self._data_fd = data_fd
        self._control_fd = control_fd
        self._spool = spool
        self._reaped = False

    @property
    def fds(self) -> tuple[int, ...]:
        """The kernel's ends of the pipes (a later snapshot closes its copies of them)."""
        return tuple(fd for fd in (self._data_fd, self._control_fd) if fd >= 0)

    def send_plan(self, names: Collection[str], current: Mapping[str, CovarId],
                  known: list[ChunkId]) -> None:
        """Tell a snapshot taken before its turn what to examine, and what it builds on.

        ``current``: the version each of those names has now (the snapshot sends only the
        co-variables that differ); ``known``: the chunks saved since it was taken.

        Raises:
            CheckpointProcessError: the snapshot process is gone.
        """
        payload = pickle.dumps((sorted(names), dict(current), known),
                               protocol=pickle.HIGHEST_PROTOCOL)
        self._control(PLAN, payload)

    def acknowledge(self) -> None:
        """Tell the snapshot its commit is durable (it leaves), and reap it."""
        with contextlib.suppress(CheckpointProcessError):
            self._control(ACK, b"")
        self._close()
        self._reap(block=True)

    def stop(self) -> None:
        """Kill the snapshot (it failed, hung, or is not wanted) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._close()
        self._reap(block=True)
        if self._spool is not None:  # its unfinished spool file, if it made one
            with contextlib.suppress(OSError):
                (self._spool.folder / spool_name(self._spool.session, self._spool.seq,
                                                 self.pid)).unlink()

    def _control(self, kind: int, payload: bytes) -> None:
        try:
            _write_all(self._control_fd, FRAME.pack(kind, len(payload)) + payload)
        except OSError as exc:
            raise CheckpointProcessError("the checkpoint process died before its turn") from exc

    def receive(self, consume: Callable[[int, memoryview], None], *, hang_seconds: float,
                stall_seconds: float) -> None:
        """Hand each chunk, manifest and absent-names frame to ``consume`` until it is done.

        Manifests come only for co-variables that differ from the versions the snapshot was
        told of: the names examined that exist, absent ones aside, and are not sent are
        unchanged.

        Raises:
            CheckpointProcessError: the snapshot failed, died, or sent nothing for
                ``hang_seconds`` (it is killed then).
            CheckpointStalledError: it sent nothing and used no CPU for ``stall_seconds``.
        """
        reader = _PipeReader(self, hang_seconds=hang_seconds, stall_seconds=stall_seconds)
        for kind, payload in read_frames(reader.read):
            if kind == DONE:
                return
            if kind == FAILED:
                raise CheckpointProcessError(bytes(payload).decode(errors="replace"))
            consume(kind, payload)
        status = self._reap(block=True)
        raise CheckpointProcessError(
            "the checkpoint process died before it finished"
            + (f" (status {status})" if status else ""))

    def _close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._data_fd = self._control_fd = -1

    def _reap(self, *, block: bool) -> int:
        if self._reaped:
            return 0
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self._reaped = True
            return 0
        if pid == 0:
            return 0
        self._reaped = True
        return os.waitstatus_to_exitcode(status)


class _PipeReader:
    """Reads a snapshot's pipe, killing it when it hangs or stalls."""

    def __init__(self, snapshot: Snapshot, *, hang_seconds: float,
                 stall_seconds: float) -> None:
        self._snapshot = snapshot
        self._hang_seconds = hang_seconds
        self._stall_seconds = stall_seconds
        self._poller = select.poll()
        self._poller.register(snapshot._data_fd, select.POLLIN | select.POLLHUP)
        self._silent_since = time.monotonic()
        self._cpu = _cpu_ticks(snapshot.pid)
        self._cpu_since = self._silent_since

    def read(self, size: int) -> bytes:
        while not self._poller.poll(STALL_POLL * 1000):
            now = time.monotonic()
            if now - self._silent_since >= self._hang_seconds:
                self._snapshot.stop()
                raise CheckpointProcessError(
                    f"the checkpoint process sent nothing for {self._hang_seconds:.0f} s and "
                    "was stopped")
            ticks = _cpu_ticks(self._snapshot.pid)
            if ticks != self._cpu:
                self._cpu, self._cpu_since = ticks, now
            elif now - self._cpu_since >= self._stall_seconds:
                self._snapshot.stop()
                raise CheckpointStalledError(
                    f"the checkpoint process was blocked for {self._stall_seconds:g} s (a "
                    "library that does not work after fork?) and was stopped")
        self._silent_since = self._cpu_since = time.monotonic()
        return os.read(self._snapshot._data_fd, size)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def take_snapshot(
    *,
    produce: Produce,
    everything: Callable[[], Collection[str]],
    names: Collection[str] | None,
    current: CurrentIds,
    is_known_chunk: Callable[[ChunkId], bool],
    spool: SnapshotSpool | None,
    inherited: Collection[int],
    orphan_seconds: float,
) -> Snapshot:
    """Fork a snapshot of the process as it is now; return the kernel's handle on it.

    ``names``: what to examine, when known now (otherwise ``send_plan`` says it later), and
    ``current`` gives their versions, read in the child (the state it builds on is the
    kernel's now). ``everything``: every saved name, what an orphaned snapshot writes to
    ``spool``.
    ``inherited``: the kernel's ends of other snapshots' pipes, which the child closes.

    Raises:
        OSError: no process could be forked (nothing is left behind).
    """
    data_read, data_write = os.pipe()
    try:
        control_read, control_write = os.pipe()
    except OSError:
        os.close(data_read)
        os.close(data_write)
        raise
    with contextlib.suppress(OSError, AttributeError):
        import fcntl

        fcntl.fcntl(data_write, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    child = SnapshotChild(produce=produce, everything=everything, names=names, current=current,
                   is_known_chunk=is_known_chunk, spool=spool, orphan_seconds=orphan_seconds,
                   data_fd=data_write, control_fd=control_read, parent=os.getpid())
    gc.freeze()  # the parent's collector must not write into every shared page meanwhile
    try:
        pid = os.fork()
    except BaseException:
        gc.unfreeze()
        for fd in (data_read, data_write, control_read, control_write):
            os.close(fd)
        raise
    if pid == 0:  # pragma: no cover - runs in the child, checked by the tests' results
        # An inherited number may already name one of our own pipes: the commit thread may
        # have closed a saved snapshot's pipes since the list was made, and os.pipe reused them.
        child.run({data_read, control_write, *inherited} - {data_write, control_read})
    gc.unfreeze()
    os.close(data_write)
    os.close(control_read)
    return Snapshot(pid, data_read, control_write, spool)
