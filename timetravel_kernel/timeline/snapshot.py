"""Snapshot: a forked copy of the kernel holds one cell's state until it is saved (timeline layer).

``fork()`` copies the process for the price of its page tables, and from then on the child
holds the cell's state exactly as it was, whatever the kernel runs next. The child serializes
the names it is told to (at once, or once the snapshots before it are saved: their results
decide what it must examine), sends manifests and new chunks to the kernel over a pipe, and
waits for the kernel's word that the commit is durable. If the kernel dies first, the child
writes the whole state of its cell to a spool file beside the store (``store/spool.py``),
which the next kernel commits: a state whose snapshot was taken outlives the kernel.

What the child may do is narrow (NOTES.md): it has only the forking thread, so it never touches
the parent's store handle, sockets or locks other threads may hold; it closes the sockets and
the other snapshots' pipes it inherited (a listening socket held by a survivor would keep the
restarted kernel from binding its ports), leaves the kernel's process group (the server kills
that group after a crash), uses one compression thread, ignores Ctrl-C, never runs the
parent's garbage collector over shared pages, and leaves with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import pickle
import select
import signal
import stat
import sys
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timetravel_kernel.errors import CheckpointProcessError, CheckpointStalledError
from timetravel_kernel.ids import ID_SIZE, ChunkId
from timetravel_kernel.store.codec import encode_chunk, set_compression_threads
from timetravel_kernel.store.objects import covar_id, decode_covar, encode_covar
from timetravel_kernel.store.spool import (
    ABSENT,
    CHUNK,
    COVAR,
    DONE,
    FAILED,
    FRAME,
    SpoolHeader,
    SpoolWriter,
    read_frames,
    spool_name,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping
    from pathlib import Path

    from timetravel_kernel.ids import CovarId
    from timetravel_kernel.state.chunking import ChunkSink
    from timetravel_kernel.store import Covar

    CurrentIds = Callable[[Collection[str]], Mapping[str, CovarId]]
    """The co-variable version each name has in the state the snapshot builds on."""

    Produce = Callable[[Collection[str], ChunkSink], list[tuple[Covar, tuple[object, ...]]]]
    """Serializes the named names of the snapshot's namespace, new chunks to the sink."""

__all__ = ["Snapshot", "SnapshotSpool", "decode_frame", "take_snapshot"]

_PLAN = 1
"""Control frame: the names to examine, their versions now, the chunks saved since (pickled)."""
_ACK = 2
"""Control frame: the commit is durable; the child may leave."""
_STALL_POLL = 0.25
"""Seconds between checks of a silent child's CPU time, and of the parent's life."""
_PIPE_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class SnapshotSpool:
    """Where a snapshot writes its state if its kernel dies: the folder, its place, the cell.

    The child names its file (``spool_name``: the kernel session, the snapshot's number and
    its own pid) and creates it as soon as it starts, so the next kernel knows to wait for it.
    """

    folder: Path
    session: str
    seq: int
    header: SpoolHeader


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
        self._control(_PLAN, payload)

    def acknowledge(self) -> None:
        """Tell the snapshot its commit is durable (it leaves), and reap it."""
        with contextlib.suppress(CheckpointProcessError):
            self._control(_ACK, b"")
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
        while not self._poller.poll(_STALL_POLL * 1000):
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
    child = _Child(produce=produce, everything=everything, names=names, current=current,
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


class _Child:
    """What runs in the forked process (see the module docstring)."""

    def __init__(self, *, produce: Produce, everything: Callable[[], Collection[str]],
                 names: Collection[str] | None, current: CurrentIds,
                 is_known_chunk: Callable[[ChunkId], bool],
                 spool: SnapshotSpool | None, orphan_seconds: float, data_fd: int,
                 control_fd: int, parent: int) -> None:
        self._produce = produce
        self._everything = everything
        self._names = names
        self._current = current
        self._is_known_chunk = is_known_chunk
        self._known: set[ChunkId] = set()
        self._spool = spool
        self._orphan_seconds = orphan_seconds
        self._data_fd = data_fd
        self._control_fd = control_fd
        self._parent = parent
        self._writer: SpoolWriter | None = None

    def run(self, close: set[int]) -> None:  # pragma: no cover - runs in the forked child
        """Serialize, send, wait for the kernel's word; spool if it died. Never returns."""
        code = 1
        try:
            self._enter(close)
            plan = self._plan()
            if plan is None or not self._send(*plan) or not self._wait_for(_ACK):
                self._write_spool()
            elif self._writer is not None:
                self._writer.abort()  # committed by the kernel: nothing to spool
            code = 0
        except BaseException as exc:
            if self._writer is not None:
                self._writer.abort()
            with contextlib.suppress(BaseException):
                self._frame(FAILED, f"{type(exc).__name__}: {exc}".encode()[:4096])
            code = 0  # reported in the frame
        finally:
            os._exit(code)

    def _enter(self, close: set[int]) -> None:  # pragma: no cover - forked child
        gc.disable()
        # The parent's stdout/stderr hand text to its IOPub thread over ZMQ, which does not
        # exist here (and ZMQ does not survive fork): whatever a reducer prints goes nowhere.
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives until os._exit
        warnings.simplefilter("ignore")
        # The parent froze its objects before forking; here they must be visible to
        # gc.get_referrers again (the serializer asks it), and no collection runs.
        gc.unfreeze()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # bounds an orphan's spooling
        # Closed before anything is opened here: a stale number in ``close`` could otherwise
        # name a file this process just opened.
        for fd in close:
            with contextlib.suppress(OSError):
                os.close(fd)
        _close_sockets()
        os.set_blocking(self._data_fd, False)
        if self._spool is not None:
            with contextlib.suppress(OSError):
                self._spool.folder.mkdir(mode=0o700, exist_ok=True)
                self._writer = SpoolWriter(self._spool.folder,
                                           spool_name(self._spool.session, self._spool.seq,
                                                      os.getpid()),
                                           self._spool.header)
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)  # last: whoever sees it knows the rest is done
        set_compression_threads(1)

    def _parent_alive(self) -> bool:
        return os.getppid() == self._parent

    def _plan(self) -> tuple[Collection[str], Mapping[str, CovarId]] | None:  # pragma: no cover
        """Return the names to examine and their versions; None when the kernel died first."""
        if self._names is not None:
            return self._names, self._current(self._names)
        message = self._read_control()
        if message is None or message[0] != _PLAN:
            return None
        names, current, known = pickle.loads(message[1])
        self._known.update(known)
        return names, current

    def _wait_for(self, kind: int) -> bool:  # pragma: no cover - forked child
        message = self._read_control()
        return message is not None and message[0] == kind

    def _read_control(self) -> tuple[int, bytes] | None:  # pragma: no cover - forked child
        """Read one control frame; None when the kernel died (or closed the pipe)."""
        buffer = b""
        poller = select.poll()
        poller.register(self._control_fd, select.POLLIN | select.POLLHUP)
        while True:
            if not poller.poll(_STALL_POLL * 1000):
                if not self._parent_alive():
                    return None
                continue
            data = os.read(self._control_fd, 1 << 20)
            if not data:
                return None
            buffer += data
            if len(buffer) >= FRAME.size:
                kind, size = FRAME.unpack_from(buffer)
                if len(buffer) >= FRAME.size + size:
                    return kind, buffer[FRAME.size : FRAME.size + size]

    def _frame(self, kind: int, payload: bytes | memoryview) -> None:  # pragma: no cover
        """Send a frame; BrokenPipeError once the kernel is gone (even if others hold the pipe).

        The pipe is non-blocking and written between looks at whether the parent lives: a
        process the user's code forked may hold a copy of the kernel's end.
        """
        for part in (FRAME.pack(kind, len(payload)), payload):
            view = memoryview(part)
            while view:
                try:
                    written = os.write(self._data_fd, view)
                except BlockingIOError:
                    select.select([], [self._data_fd], [], _STALL_POLL)
                    if not self._parent_alive():
                        raise BrokenPipeError("the kernel died") from None
                    continue
                view = view[written:]

    def _send(self, names: Collection[str],
              current: Mapping[str, CovarId]) -> bool:  # pragma: no cover - forked child
        """Send what changed of the state to the kernel; False when it died meanwhile.

        A co-variable whose version the kernel already has (the same manifest, no live
        token) is not sent: a cell that reads every name (``globals()``) costs the kernel
        only what it changed.
        """
        sent: set[ChunkId] = set()

        def send_chunk(chunk_id: ChunkId, data: memoryview, itemsize: int) -> int:
            # Chunks the kernel's store is known to hold are not sent again.
            if chunk_id not in sent and not self._is_known(chunk_id):
                sent.add(chunk_id)
                self._frame(CHUNK, chunk_id + encode_chunk(data, itemsize))
            return 0

        try:
            present: set[str] = set()
            for covar, _ in self._produce(names, send_chunk):
                present.update(covar.members)
                version = covar_id(covar)
                if covar.token is None and all(current.get(m) == version for m in covar.members):
                    continue
                self._frame(COVAR, encode_covar(covar))
            absent = sorted(set(names) - present)
            if absent:
                self._frame(ABSENT, json.dumps(absent).encode())
            self._frame(DONE, b"")
        except BrokenPipeError:
            return False
        return True

    def _is_known(self, chunk_id: ChunkId) -> bool:
        return chunk_id in self._known or self._is_known_chunk(chunk_id)

    def _write_spool(self) -> None:  # pragma: no cover - forked child
        """The kernel died before committing this state: write all of it to a spool file."""
        for fd in (self._data_fd, self._control_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        writer = self._writer
        if writer is None:
            return
        signal.alarm(max(1, int(self._orphan_seconds)))
        try:
            written: set[ChunkId] = set()

            def write_chunk(chunk_id: ChunkId, data: memoryview, itemsize: int) -> int:
                if chunk_id not in written and not self._is_known(chunk_id):
                    written.add(chunk_id)
                    writer.write_chunk(chunk_id, encode_chunk(data, itemsize))
                return 0

            for covar, _ in self._produce(self._everything(), write_chunk):
                writer.write_covar(covar)
            writer.finish()
        except BaseException:
            writer.abort()
            raise


def _close_sockets() -> None:  # pragma: no cover - forked child
    """Close every socket the child inherited (the kernel's ports, the user's connections).

    Closing the child's copy leaves the kernel's own untouched; a survivor holding the
    kernel's listening sockets would keep its restarted successor from binding them.
    """
    try:
        fds = [int(entry) for entry in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)


def decode_frame(kind: int, payload: memoryview) -> tuple[ChunkId, bytes] | Covar | list[str]:
    """Return what a chunk, manifest or absent-names frame carries."""
    if kind == CHUNK:
        return ChunkId(bytes(payload[:ID_SIZE])), bytes(payload[ID_SIZE:])
    if kind == COVAR:
        return decode_covar(bytes(payload))
    if kind == ABSENT:
        return [str(name) for name in json.loads(bytes(payload))]
    raise CheckpointProcessError(f"the checkpoint process sent a frame of unknown kind {kind}")
