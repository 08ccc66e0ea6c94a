"""Checkpoints nobody waits for: a forked copy-on-write snapshot does the work (timeline layer).

``fork()`` gives a consistent snapshot of the whole process for the price of its page tables.
The child serializes, hashes and compresses the state it sees and sends the results through a
pipe; a thread of the parent ingests them into the store and commits. The kernel goes idle as
soon as the child exists, and the user's next cell runs while the child works.

What the child may do is narrow (NOTES.md): it has only the forking thread, so it never touches
the parent's store handle, sockets or locks other threads may hold; it uses one compression
thread, ignores Ctrl-C (an interrupt is sent to the whole process group), dies with the parent,
never runs the parent's garbage collector over shared pages, and leaves with ``os._exit``.
Nothing it does is durable: only the parent commits, so a kill of either process at any
instant leaves the last durable commit.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import io
import itertools
import os
import select
import signal
import struct
import sys
import threading
import time
import types
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from timetravel_kernel.errors import CheckpointProcessError, CheckpointStalledError
from timetravel_kernel.ids import ID_SIZE, ChunkId
from timetravel_kernel.store.codec import encode_chunk, set_compression_threads
from timetravel_kernel.store.objects import decode_covar, encode_covar

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from timetravel_kernel.ids import CovarId
    from timetravel_kernel.state.chunking import ChunkSink
    from timetravel_kernel.store import Commit, Covar
    from timetravel_kernel.store.object_store import Transaction
    from timetravel_kernel.store.objects import Status
    from timetravel_kernel.timeline.results import CellInfo

    Produced = list[tuple[Covar, tuple[object, ...]]]
    """Each co-variable's manifest and the live values it was made from."""

__all__ = [
    "FORK_UNSAFE_MODULES",
    "BackgroundOptions",
    "CheckpointMode",
    "CheckpointWork",
    "ForkedJob",
    "can_fork",
    "estimated_size",
    "fork_checkpoint",
    "memory_available",
    "should_fork",
]

CheckpointMode = Literal["auto", "background", "sync"]

_FRAME = struct.Struct("<BQ")
_DONE = 0
"""Frame kind: the child finished; everything it produced was sent before."""
_FAILED = 255
"""Frame kind: the child failed; the payload says why (UTF-8)."""
_CHUNK = 1
"""Frame kind: a chunk id and its stored (encoded) bytes."""
_COVAR = 2
"""Frame kind: an encoded co-variable manifest."""
_READ_SIZE = 1 << 20
_STALL_POLL = 0.25
"""Seconds between checks of a silent child's CPU time."""
_PIPE_SIZE = 1 << 20
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class BackgroundOptions:
    """When a checkpoint runs in a forked snapshot.

    Args:
        mode: ``auto`` forks unless the values to examine are few, plain and small (those take
            about a millisecond inline, less than a fork) or memory is short; ``background``
            forks whenever the platform can; ``sync`` never forks.
        min_bytes: in ``auto``, the estimated size of the examined values from which a fork
            pays for itself.
        max_inline_names: in ``auto``, how many names a checkpoint may examine inline.
        hang_seconds: a child that sends nothing for this long is killed and reported.
        stall_seconds: a child that sends nothing and uses no CPU for this long is blocked
            (a library's lock or thread pool that does not survive a fork, such as OpenMP's
            after xgboost or lightgbm trained): it is killed and its names are checkpointed in
            the kernel from then on.
        memory_headroom: the memory guard: fork only when the system has at least this many
            bytes available beyond twice the examined values (copy-on-write growth).
    """

    mode: CheckpointMode = "auto"
    min_bytes: int = 1 << 20
    max_inline_names: int = 64
    hang_seconds: float = 300.0
    stall_seconds: float = 3.0
    memory_headroom: int = 64 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointWork:
    """What one checkpoint examines, decided in the kernel before any snapshot is taken."""

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


def can_fork() -> bool:
    """Return whether this platform gives copy-on-write snapshots by ``fork`` (Linux only)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def memory_available() -> int | None:
    """Return the bytes the system can still give without swapping, None if unknown."""
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _resident_bytes() -> int:
    """Return this process's resident memory (0 if unknown)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def estimated_size(value: object) -> int:
    """Return a cheap estimate of the bytes a value holds (never its deep size).

    Arrays, frames and series report their buffers; builtin containers their own table; an
    object whose size cannot be asked cheaply counts as small.
    """
    try:
        nbytes = getattr(value, "nbytes", None)
        if isinstance(nbytes, int):
            return nbytes
        usage = getattr(value, "memory_usage", None)
        if callable(usage) and hasattr(value, "columns"):  # a data frame: shallow usage
            return int(usage(index=True, deep=False).sum())
        if type(value).__module__ == "builtins":
            return sys.getsizeof(value)
    except Exception:
        return 0
    return 0


FORK_UNSAFE_MODULES = frozenset({"xgboost", "lightgbm", "catboost"})
"""Libraries whose objects serialize through an OpenMP pool, which hangs in a forked child
once the parent has used it (checked here: xgboost and lightgbm models after training)."""
_PLAIN_ATOMS = (int, float, complex, bool, type(None), str, bytes)
_PLAIN_CONTAINERS = (list, tuple, dict, set, frozenset)
_CHEAP_KINDS = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                # refused at once (not saveable): inline, they are reported under their cell
                types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType, io.IOBase,
                threading.Thread, type(threading.Lock()), type(threading.RLock()))
_RESOURCE_MODULES = frozenset({"socket", "ssl", "select", "sqlite3", "threading", "queue",
                               "subprocess", "io", "_io", "_thread", "_socket", "_sqlite3"})
"""Standard-library modules of resources: refused, or reduced by a description, at once."""
_PLAIN_BUDGET = 2048
"""Objects looked at to decide that values are plain (a decision must cost microseconds)."""
_PLAIN_STRING = 1 << 16
_PLAIN_ROWS = 1000
"""Rows of a pandas object small enough to save inline (its buffers under 64 KiB too)."""


def _plain(value: object, budget: int, seen: set[int] | None = None) -> int:
    """Return what is left of ``budget`` after finding ``value`` plain, or -1 if it is not.

    Plain: builtin atoms (short strings), notebook functions, classes and modules, small numpy
    arrays and scalars, small pandas frames, series and indexes, builtin containers of plain
    values and instances whose state is their plain ``__dict__``: each pickles in microseconds.
    Generators, files, threads, locks, sockets and database connections count too: they are
    refused (or described) as fast, and inline their notice appears under their cell.
    ``seen``: containers already counted (cycles, shared objects).
    """
    if budget <= 0:
        return -1
    kind = type(value)
    if kind in _PLAIN_ATOMS:
        return budget - 1 if kind not in (str, bytes) or len(value) < _PLAIN_STRING else -1
    if isinstance(value, _CHEAP_KINDS) or kind.__module__ in _RESOURCE_MODULES:
        return budget - 1
    seen = set() if seen is None else seen
    if id(value) in seen:
        return budget
    seen.add(id(value))
    if kind.__module__ == "numpy":
        small = getattr(value, "nbytes", _PLAIN_STRING) < _PLAIN_STRING
        objects = getattr(getattr(value, "dtype", None), "hasobject", True)
        return budget - 1 if small and not objects else -1
    if kind.__module__.partition(".")[0] == "pandas":
        return budget - 1 if _small_table(value) else -1
    state = getattr(value, "__dict__", None)
    if type(state) is dict and kind.__reduce_ex__ is object.__reduce_ex__ and (
        kind.__reduce__ is object.__reduce__ and kind.__getstate__ is object.__getstate__
    ):
        return _plain(state, budget - 1, seen)
    if kind not in _PLAIN_CONTAINERS or len(value) >= budget:  # type: ignore[arg-type]
        return -1
    budget -= 1
    # a dict's keys and values, not its item tuples: those are made on the fly, and the id of
    # a freed one comes back for the next (``seen`` would skip it)
    items = (itertools.chain(value.keys(), value.values())  # type: ignore[attr-defined]
             if kind is dict else value)
    for item in items:
        budget = _plain(item, budget, seen)
        if budget < 0:
            return -1
    return budget


def _small_table(value: object) -> bool:
    """Whether a pandas frame, series or index is small: saved inline in under a millisecond.

    A fork costs 5-15 ms; a frame of a few rows (a summary, a ``describe()``, a lookup table)
    is serialized faster than that. Object columns count 8 bytes an element here, so the rows
    are bounded too.
    """
    try:
        rows = len(value)  # type: ignore[arg-type]
        # 0: no buffers to ask about (a group-by, a resampler): not known to be small
        return rows <= _PLAIN_ROWS and 0 < estimated_size(value) < _PLAIN_STRING
    except Exception:
        return False


def should_fork(
    namespace: Mapping[str, object], work: CheckpointWork, options: BackgroundOptions
) -> bool:
    """Return whether a checkpoint runs in a forked snapshot (see BackgroundOptions).

    In ``auto``, values whose pickling cost cannot be known cheaply (a model, an instance of
    a notebook class, a big array or frame) are forked: guessing wrong inline costs the user
    its whole serialization, guessing wrong forked costs a fork (a few milliseconds). Values
    of libraries whose serialization blocks after a fork are never forked.
    """
    if options.mode == "sync" or not work.candidates or not can_fork():
        return False
    values = [dict.get(namespace, n) for n in work.candidates]  # type: ignore[arg-type]
    if any(type(v).__module__.partition(".")[0] in FORK_UNSAFE_MODULES for v in values):
        return False
    size: int | None = None
    if options.mode == "auto" and len(values) <= options.max_inline_names:
        size = sum(estimated_size(v) for v in values)
        budget = _PLAIN_BUDGET if size < options.min_bytes else -1
        seen: set[int] = set()
        for value in values:
            budget = _plain(value, budget, seen)
            if budget < 0:
                break
        else:
            return False
    available = memory_available()
    if available is None or available >= 2 * _resident_bytes() + options.memory_headroom:
        return True  # copy-on-write cannot copy more than the kernel holds
    if size is None:
        size = sum(estimated_size(v) for v in values)
    return available >= 2 * size + options.memory_headroom


def _cpu_ticks(pid: int) -> int | None:
    """Return the CPU time a process has used (clock ticks), None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _enter_child(parent: int) -> None:
    """Make the forked child safe to run: see the module docstring."""
    gc.disable()
    # The parent's stdout/stderr hand text to its IOPub thread over ZMQ, which does not exist
    # here (and ZMQ does not survive fork): whatever a reducer prints or warns goes nowhere.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives until os._exit
    warnings.simplefilter("ignore")
    # The parent froze its objects before forking; here they must be visible to
    # gc.get_referrers again (the serializer asks it), and no collection runs.
    gc.unfreeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    set_compression_threads(1)


class ForkedJob:
    """One forked child producing frames, and the parent thread consuming them.

    Args:
        produce: runs in the child with a sink for ``(kind, payload)`` frames (kinds 1-254).
        consume: runs in the parent's ingest thread for each frame, in order.
        finish: runs in the parent's ingest thread last, with None or the reason it failed.
        hang_seconds: silence after which the child is killed.
        stall_seconds: silence without CPU use after which the child is killed.
    """

    def __init__(
        self,
        produce: Callable[[Callable[[int, bytes | memoryview], None]], None],
        consume: Callable[[int, memoryview], None],
        finish: Callable[[BaseException | None], None],
        *,
        hang_seconds: float,
        stall_seconds: float = BackgroundOptions.stall_seconds,
    ) -> None:
        self._consume = consume
        self._finish = finish
        self._hang_seconds = hang_seconds
        self._stall_seconds = stall_seconds
        self._done = threading.Event()
        self._forked = threading.Event()
        self._stopped_for_hanging = False
        self.pid = 0  # until forked; still 0 after a failed fork: the ingest thread leaves
        read_fd, write_fd = os.pipe()
        self._read_fd = read_fd
        with contextlib.suppress(OSError, AttributeError):
            import fcntl

            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        # Started before the fork: once forked, every page the parent writes is copied, and
        # starting a thread then takes 1-3 ms of the user's time instead of ~0.2.
        self._thread = threading.Thread(target=self._ingest, name="timetravel-ingest",
                                        daemon=True)
        self._thread.start()
        gc.freeze()  # the parent's collector must not write into every shared page meanwhile
        parent = os.getpid()
        try:
            pid = os.fork()
        except BaseException:
            gc.unfreeze()
            os.close(write_fd)
            self._forked.set()
            raise
        if pid == 0:  # pragma: no cover - runs in the child, checked by the tests' results
            os.close(read_fd)
            _run_child(produce, write_fd, parent)
        gc.unfreeze()
        os.close(write_fd)
        self.pid = pid
        self._forked.set()

    def is_ingesting(self) -> bool:
        """Return whether the caller is this job's own ingest thread (which must not wait)."""
        return threading.current_thread() is self._thread

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the job is committed or abandoned; return whether it is over."""
        return self._done.wait(timeout)

    def wait_or_stop(self) -> None:
        """Wait until the job is over; past ``hang_seconds`` of waiting, kill its child first."""
        if not self.wait(self._hang_seconds):
            self._stopped_for_hanging = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.wait()

    @property
    def done(self) -> bool:
        """Whether the job is over (committed or abandoned)."""
        return self._done.is_set()

    def _ingest(self) -> None:
        self._forked.wait()
        if not self.pid:  # the fork failed: the caller has the error
            os.close(self._read_fd)
            self._done.set()
            return
        error: BaseException | None = None
        try:
            self._read_frames()
        except BaseException as exc:  # reported through finish, never raised in a thread
            error = exc
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        finally:
            os.close(self._read_fd)
            status = self._reap()
        if error is None and status != 0:
            error = CheckpointProcessError(f"the checkpoint process ended with status {status}")
        try:
            self._finish(error)
        finally:
            self._done.set()

    def _hang_error(self) -> CheckpointProcessError:
        return CheckpointProcessError(
            f"the checkpoint process sent nothing for {self._hang_seconds:.0f} s and was "
            "stopped")

    def _reap(self) -> int:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return 0
        return os.waitstatus_to_exitcode(status)

    def _read_frames(self) -> None:
        buffer = bytearray()
        poller = select.poll()
        poller.register(self._read_fd, select.POLLIN | select.POLLHUP)
        silent_since = time.monotonic()
        cpu, cpu_since = _cpu_ticks(self.pid), silent_since
        while True:
            if not poller.poll(_STALL_POLL * 1000):
                now = time.monotonic()
                if now - silent_since >= self._hang_seconds:
                    raise self._hang_error()
                ticks = _cpu_ticks(self.pid)
                if ticks != cpu:
                    cpu, cpu_since = ticks, now
                elif now - cpu_since >= self._stall_seconds:
                    raise CheckpointStalledError(
                        f"the checkpoint process was blocked for {self._stall_seconds:g} s "
                        "(a library that does not work after fork?) and was stopped")
                continue
            silent_since = cpu_since = time.monotonic()
            data = os.read(self._read_fd, _READ_SIZE)
            if not data:
                if self._stopped_for_hanging:  # wait_or_stop killed it: say why
                    raise self._hang_error()
                raise CheckpointProcessError("the checkpoint process died before it finished")
            buffer += data
            offset = 0
            while len(buffer) - offset >= _FRAME.size:
                kind, size = _FRAME.unpack_from(buffer, offset)
                end = offset + _FRAME.size + size
                if len(buffer) < end:
                    break
                payload = memoryview(buffer)[offset + _FRAME.size : end]
                try:
                    if kind == _DONE:
                        return
                    if kind == _FAILED:
                        raise CheckpointProcessError(bytes(payload).decode(errors="replace"))
                    self._consume(kind, payload)
                finally:
                    payload.release()
                offset = end
            del buffer[:offset]


def _run_child(
    produce: Callable[[Callable[[int, bytes | memoryview], None]], None], write_fd: int,
    parent: int,
) -> None:  # pragma: no cover - runs in the forked child
    """Run ``produce`` in the child and leave with ``os._exit``, whatever happens."""
    code = 1
    try:
        _enter_child(parent)

        def send(kind: int, payload: bytes | memoryview) -> None:
            _write_all(write_fd, _FRAME.pack(kind, len(payload)))
            _write_all(write_fd, payload)

        try:
            produce(send)
            send(_DONE, b"")
            code = 0
        except BrokenPipeError:
            code = 1  # the parent is gone
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                send(_FAILED, f"{type(exc).__name__}: {exc}".encode()[:4096])
            code = 0  # reported in the frame
    finally:
        os._exit(code)



def fork_checkpoint(
    *,
    produce: Callable[[ChunkSink], Produced],
    is_known_chunk: Callable[[ChunkId], bool],
    transaction: Transaction,
    values: dict[str, object],
    finish: Callable[[tuple[Transaction, Produced] | None, BaseException | None], None],
    hang_seconds: float,
    stall_seconds: float = BackgroundOptions.stall_seconds,
) -> ForkedJob:
    """Fork a snapshot that runs ``produce``; the parent's ingest thread fills ``transaction``.

    ``values`` are the examined names' values as the snapshot sees them: the parent keeps
    them for its live cache. ``finish`` gets the transaction and the manifests with their
    values (to commit), or the reason the snapshot failed.

    Raises:
        OSError: no process could be forked.
    """
    covars: list[Covar] = []

    def run_in_child(send: Callable[[int, bytes | memoryview], None]) -> None:
        # The child's copy of ``values`` must not count as a reference to them (a big dict
        # nothing else refers to is pickled in groups).
        values.clear()
        sent: set[ChunkId] = set()

        def send_chunk(chunk_id: ChunkId, data: memoryview, itemsize: int) -> int:
            # Chunks the parent's store is known to hold are not sent again.
            if chunk_id not in sent and not is_known_chunk(chunk_id):
                sent.add(chunk_id)
                send(_CHUNK, chunk_id + encode_chunk(data, itemsize))
            return 0

        for covar, _ in produce(send_chunk):
            send(_COVAR, encode_covar(covar))

    def consume(kind: int, payload: memoryview) -> None:
        if kind == _CHUNK:
            chunk_id = ChunkId(bytes(payload[:ID_SIZE]))
            transaction.add_encoded_chunk_if_new(chunk_id, bytes(payload[ID_SIZE:]))
        elif kind == _COVAR:
            covars.append(decode_covar(bytes(payload)))

    def done(error: BaseException | None) -> None:
        if error is not None:
            finish(None, error)
            return
        try:
            produced = [(c, tuple(values[m] for m in c.members)) for c in covars]
        except KeyError as exc:  # a manifest naming what was not examined: a bug, reported
            finish(None, CheckpointProcessError(f"the snapshot saved an unexpected name {exc}"))
            return
        finish((transaction, produced), None)

    return ForkedJob(run_in_child, consume, done, hang_seconds=hang_seconds,
                     stall_seconds=stall_seconds)
