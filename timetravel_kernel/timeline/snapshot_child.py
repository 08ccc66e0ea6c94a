"""Snapshot child: what runs in the forked copy of the kernel (timeline layer).

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
import os
import pickle
import select
import signal
import stat
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timetravel_kernel.store.codec import encode_chunk, set_compression_threads
from timetravel_kernel.store.objects import covar_id, encode_covar
from timetravel_kernel.store.spool import (
    ABSENT,
    CHUNK,
    COVAR,
    DONE,
    FAILED,
    FRAME,
    SpoolHeader,
    SpoolWriter,
    absent_payload,
    chunk_payload,
    spool_name,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping
    from pathlib import Path

    from timetravel_kernel.ids import ChunkId, CovarId
    from timetravel_kernel.state.chunking import ChunkSink
    from timetravel_kernel.store import Covar

    CurrentIds = Callable[[Collection[str]], Mapping[str, CovarId]]
    """The co-variable version each name has in the state the snapshot builds on."""

    Produce = Callable[[Collection[str], ChunkSink], list[tuple[Covar, tuple[object, ...]]]]
    """Serializes the named names of the snapshot's namespace, new chunks to the sink."""

__all__ = ["ACK", "PLAN", "STALL_POLL", "SnapshotChild", "SnapshotSpool"]

PLAN = 1
"""Control frame: the names to examine, their versions now, the chunks saved since (pickled)."""
ACK = 2
"""Control frame: the commit is durable; the child may leave."""
STALL_POLL = 0.25
"""Seconds between checks of a silent child's CPU time, and of the parent's life."""


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


class SnapshotChild:
    """What runs in the forked process (see the module docstring); ``run`` never returns."""

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
            if plan is None or not self._send(*plan) or not self._wait_for(ACK):
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
        if message is None or message[0] != PLAN:
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
            if not poller.poll(STALL_POLL * 1000):
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
                    select.select([], [self._data_fd], [], STALL_POLL)
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
                self._frame(CHUNK, chunk_payload(chunk_id, encode_chunk(data, itemsize)))
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
                self._frame(ABSENT, absent_payload(absent))
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
