"""ChunkReader: buffers read back from chunks on every core, into the memory values will own.

Where a restore's time went before (1 GB array and 0.5 GB frame, 2-core VM, page cache warm):
RocksDB's checksum of every blob value (a software CRC32C at ~1.2 GB/s), copying each decoded
chunk into the result, first touches of the result's fresh pages (~0.7 s per GB when faulted
4 KiB at a time), all in one thread; and every compressed record stayed alive, held by
python-blosc's header check (``store/codec.py``). Here:

* a buffer is allocated once, at its final size, as the block the loaded value will own (from
  ``MAPPED_MIN`` bytes a private anonymous mapping, freed to the system with the value);
* each task of a small thread pool takes a run of consecutive chunks: it reads each record
  (skipping RocksDB's checksum), decodes it straight into its slot (Blosc releases the GIL)
  and checks the slot against the chunk's id; at most ``threads`` records are in memory at
  once besides the block;
* a pickle stream is not assembled at all: ``open_stream`` hands the unpickler a file that
  decodes the next chunks ahead in the pool, so a stream costs a few chunks, not its size.

Any missing or damaged chunk fails the read (``MissingObjectError``, ``StoreCorruptError``),
never yields a wrong byte; the partly filled block is dropped.
"""

from __future__ import annotations

import io
import mmap
import os
import threading
from collections import deque
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, BinaryIO

from timetravel_kernel.errors import MissingObjectError, StoreCorruptError
from timetravel_kernel.ids import ChunkId, hash_bytes
from timetravel_kernel.store.codec import decode_chunk, decode_chunk_into
from timetravel_kernel.store.keys import encode_key

if TYPE_CHECKING:
    from timetravel_kernel.store.backend import Backend
    from timetravel_kernel.store.objects import BufferRef

__all__ = ["MAPPED_MIN", "ChunkReader", "WritableBuffer", "allocate", "load_chunk"]

WritableBuffer = bytearray | mmap.mmap
"""The block a loaded buffer lives in (what restored arrays own)."""

MAPPED_MIN = 4 << 20
"""Buffers from this size get their own mapping (numpy asks huge pages from 4 MiB too)."""
_RUN_CHUNKS = 32  # chunks per task: 8 MiB of 256 KiB chunks
_STREAM_AHEAD = 16  # chunks a stream decodes ahead of the unpickler
_STREAM_BUFFER = 256 << 10


def _corrupt(chunk_id: ChunkId, why: str) -> StoreCorruptError:
    return StoreCorruptError(
        f"chunk {chunk_id.hex()} is corrupt ({why}); the value cannot be restored from this "
        "store")


def _stored_chunk(backend: Backend, chunk_id: ChunkId) -> bytes:
    stored = backend.get_unchecked(encode_key("chunk", chunk_id))
    if stored is None:
        raise MissingObjectError(f"chunk {chunk_id.hex()} is missing from the store")
    return stored


def load_chunk(backend: Backend, chunk_id: ChunkId) -> bytearray | memoryview:
    """Return a chunk's bytes, decoded and verified against its id.

    Raises:
        MissingObjectError: the chunk is absent.
        StoreCorruptError: the record cannot be decoded or does not hash to the id.
    """
    try:
        data = decode_chunk(_stored_chunk(backend, chunk_id))
    except StoreCorruptError as error:
        raise _corrupt(chunk_id, str(error)) from None
    if hash_bytes(data) != chunk_id:
        raise _corrupt(chunk_id, "its bytes do not match its hash")
    return data


def _load_chunk_into(backend: Backend, chunk_id: ChunkId, slot: memoryview) -> None:
    """Decode a chunk into ``slot`` (exactly its size) and verify it there.

    Raises:
        MissingObjectError, StoreCorruptError: as ``load_chunk``.
    """
    try:
        decode_chunk_into(_stored_chunk(backend, chunk_id), slot)
    except StoreCorruptError as error:
        raise _corrupt(chunk_id, str(error)) from None
    if hash_bytes(slot) != chunk_id:
        raise _corrupt(chunk_id, "its bytes do not match its hash")


def allocate(size: int) -> WritableBuffer:
    """Return a zero-filled writable block of ``size`` bytes for a loaded buffer.

    From ``MAPPED_MIN`` bytes, a private anonymous mapping: its pages are faulted in by the
    decoder's first writes, in each reading thread, where ``bytearray(size)`` first writes
    zeros over all of it in one (1.0-1.2 GB/s restored against 1.3-1.6 here). Unmapping gives
    the memory back at once when the value dies. Huge pages are not asked for, although numpy
    asks them for its own arrays: on this project's VM they faulted in at 0.3-1.4 GB/s against
    4.2 GB/s for 4 KiB pages (fresh processes, 2 GB each).
    """
    if size < MAPPED_MIN or not hasattr(mmap, "MAP_PRIVATE"):
        return bytearray(size)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)


class ChunkReader:
    """Reads buffers and streams of chunks for one backend, on a few threads.

    Args:
        backend: where chunk records are read.
        threads: how many threads decode at once (1: everything in the calling thread).
    """

    def __init__(self, backend: Backend, *, threads: int) -> None:
        self._backend = backend
        self._threads = max(1, threads)
        self._executor: ThreadPoolExecutor | None = None
        self._owner = os.getpid()
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor | None:
        """Return the pool (made on first use), None when reads stay in the calling thread.

        A forked child (a background checkpoint) has none of the parent's threads: it reads
        in its own thread.
        """
        if self._threads == 1 or os.getpid() != self._owner:
            return None
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._threads,
                                                    thread_name_prefix="timetravel-read")
            return self._executor

    def close(self) -> None:
        """Stop the threads (a read in flight finishes first)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None and os.getpid() == self._owner:
            executor.shutdown(wait=True)

    def read_buffer(self, ref: BufferRef, chunk_size: int) -> WritableBuffer:
        """Return a buffer's bytes in one writable block (what the loaded value will own).

        ``chunk_size`` is the size every chunk but the last has (the covariable's).

        Raises:
            MissingObjectError: a chunk is absent.
            StoreCorruptError: a chunk is damaged, or the chunks do not make the buffer.
        """
        if ref.inline is not None:
            return bytearray(ref.inline)
        count = len(ref.chunks)
        if (count == 0 and ref.size) or (count and (
                chunk_size <= 0 or not (count - 1) * chunk_size < ref.size <= count * chunk_size)):
            raise StoreCorruptError(f"a buffer of {ref.size} bytes cannot be made of {count} "
                                    f"chunks of {chunk_size} bytes; its manifest is damaged")
        block = allocate(ref.size)
        view = memoryview(block)
        runs = [range(start, min(start + _RUN_CHUNKS, count))
                for start in range(0, count, _RUN_CHUNKS)]
        pool = self._pool() if len(runs) > 1 else None
        stop = threading.Event()
        if pool is None:
            for run in runs:
                self._fill(view, ref, chunk_size, run, stop)
            return block
        tasks = [pool.submit(self._fill, view, ref, chunk_size, run, stop) for run in runs]
        try:
            wait(tasks, return_when=FIRST_EXCEPTION)
        finally:
            stop.set()  # no-op when all are done; else the others stop at their next chunk
            for task in tasks:
                task.cancel()
            wait(tasks)
        for task in tasks:
            task.result()  # the first failure, in buffer order
        return block

    def _fill(self, view: memoryview, ref: BufferRef, chunk_size: int, run: range,
              stop: threading.Event) -> None:
        """Decode one run of consecutive chunks into their slots of ``view``."""
        for index in run:
            if stop.is_set():
                return
            offset = index * chunk_size
            _load_chunk_into(self._backend, ref.chunks[index],
                             view[offset : min(offset + chunk_size, ref.size)])

    def open_stream(self, ref: BufferRef) -> BinaryIO:
        """Return a file reading a buffer's bytes in order, decoded a few chunks ahead.

        Reading raises ``MissingObjectError`` or ``StoreCorruptError`` where a chunk is
        absent or damaged, or where the chunks do not add up to the buffer's size.
        """
        if ref.inline is not None:
            return io.BytesIO(ref.inline)
        return io.BufferedReader(_ChunkStream(self, ref), _STREAM_BUFFER)  # type: ignore[return-value]

    def _submit(self, chunk_id: ChunkId) -> Future[bytearray | memoryview]:
        """Start loading one chunk in the pool (at once in this thread when there is none)."""
        pool = self._pool()
        if pool is not None:
            return pool.submit(load_chunk, self._backend, chunk_id)
        done: Future[bytearray | memoryview] = Future()
        try:
            done.set_result(load_chunk(self._backend, chunk_id))
        except (MissingObjectError, StoreCorruptError) as error:
            done.set_exception(error)
        return done


class _ChunkStream(io.RawIOBase):
    """The bytes of a chunked buffer in order, ``_STREAM_AHEAD`` chunks loading ahead."""

    def __init__(self, reader: ChunkReader, ref: BufferRef) -> None:
        super().__init__()
        self._reader = reader
        self._size = ref.size
        self._pending = iter(ref.chunks)
        self._ahead: deque[Future[bytearray | memoryview]] = deque()
        self._piece = memoryview(b"")
        self._done = 0
        self._top_up()

    def _top_up(self) -> None:
        while len(self._ahead) < _STREAM_AHEAD:
            chunk_id = next(self._pending, None)
            if chunk_id is None:
                return
            self._ahead.append(self._reader._submit(chunk_id))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._piece:
            if not self._ahead:
                if self._done != self._size:
                    raise StoreCorruptError(f"a stream has {self._done} bytes, its manifest "
                                            f"says {self._size}")
                return 0
            self._piece = memoryview(self._ahead.popleft().result())
            self._done += len(self._piece)
            self._top_up()
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._piece))
        target[:count] = self._piece[:count]
        self._piece = self._piece[count:]
        return count

    def close(self) -> None:
        for task in self._ahead:
            task.cancel()
        self._ahead.clear()
        super().close()
