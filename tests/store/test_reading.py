"""Reading buffers back: batched, decoded into place, on several threads, and still exact."""

from __future__ import annotations

import mmap
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from timetravel_kernel.errors import MissingObjectError, StoreCorruptError
from timetravel_kernel.ids import ChunkId
from timetravel_kernel.state.chunking import buffer_ref
from timetravel_kernel.store import BufferRef, MemoryBackend, ObjectStore, RocksBackend
from timetravel_kernel.store.keys import encode_key
from timetravel_kernel.store.reading import MAPPED_MIN, allocate

CHUNK = 4096


def store_buffer(store: ObjectStore, data: bytes, *, itemsize: int = 8,
                 content_defined: bool = False) -> BufferRef:
    """Write ``data``'s chunks (unlogged, as a checkpoint streams them) and return its ref."""
    transaction = store.transaction()
    ref = buffer_ref(memoryview(data), chunk_size=CHUNK, inline_limit=0, itemsize=itemsize,
                     content_defined=content_defined,
                     sink=lambda c, piece, size: transaction.add_chunk_if_new(c, piece, size))
    transaction._write_chunk_batch()
    return ref


@pytest.fixture(params=["rocks", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    backend = RocksBackend(tmp_path / "store") if request.param == "rocks" else MemoryBackend()
    opened = ObjectStore(backend, read_threads=3)
    yield opened
    opened.close()


def numbers(count: int) -> bytes:
    """Compressible and incompressible stretches alike (both encodings are read)."""
    smooth = np.linspace(0.0, 1.0, count // 2)
    noise = np.random.default_rng(7).random(count - count // 2)
    return np.concatenate([smooth, noise]).tobytes()


def test_a_buffer_of_many_runs_comes_back_exactly(store: ObjectStore) -> None:
    data = numbers(150_000)  # 1.2 MB: 293 chunks of 4 KiB, read by several tasks
    ref = store_buffer(store, data)
    block = store.read_buffer(ref, CHUNK)
    assert bytes(block) == data


def test_a_big_buffer_lives_in_its_own_mapping_and_is_given_back(tmp_path: Path) -> None:
    store = ObjectStore(RocksBackend(tmp_path / "store"), read_threads=2)
    data = numbers(MAPPED_MIN // 8 + 1000)
    ref = store_buffer(store, data)
    block = store.read_buffer(ref, CHUNK)
    assert isinstance(block, mmap.mmap) and len(block) == len(data)
    array = np.frombuffer(block, dtype=np.float64)
    assert array.tobytes() == data and array.flags.writeable
    assert isinstance(allocate(1000), bytearray)
    store.close()


def test_threads_that_read_release_the_gil_while_decoding(tmp_path: Path) -> None:
    # Not a timing: the pool exists and reads from threads other than the caller's.
    store = ObjectStore(RocksBackend(tmp_path / "store"), read_threads=2)
    seen: set[str] = set()
    original = store.backend.get_unchecked

    def recording(key: bytes) -> bytes | None:
        seen.add(threading.current_thread().name)
        return original(key)

    store.backend.get_unchecked = recording  # type: ignore[method-assign]
    store.read_buffer(store_buffer(store, numbers(100_000)), CHUNK)
    assert seen and all(name.startswith("timetravel-read") for name in seen)
    store.close()


def corrupt(store: ObjectStore, chunk_id: ChunkId) -> None:
    key = encode_key("chunk", chunk_id)
    stored = bytearray(store.backend.get(key))  # type: ignore[arg-type]
    stored[-1] ^= 0xFF
    store.backend.write_batch([(key, bytes(stored))])


@pytest.mark.parametrize("where", [0, 150, -1])
def test_a_corrupt_chunk_anywhere_fails_the_read(store: ObjectStore, where: int) -> None:
    ref = store_buffer(store, numbers(80_000))
    corrupt(store, ref.chunks[where])
    with pytest.raises(StoreCorruptError, match=f"chunk {ref.chunks[where].hex()} is corrupt"):
        store.read_buffer(ref, CHUNK)


def test_a_missing_chunk_fails_the_read(store: ObjectStore) -> None:
    ref = store_buffer(store, numbers(80_000))
    store.backend.write_batch((), [encode_key("chunk", ref.chunks[77])])
    with pytest.raises(MissingObjectError, match=ref.chunks[77].hex()):
        store.read_buffer(ref, CHUNK)


def test_a_chunk_of_the_wrong_size_fails_the_read(store: ObjectStore) -> None:
    data = numbers(20_000)
    ref = store_buffer(store, data)
    swapped = BufferRef(ref.size, chunks=(ref.chunks[-1], *ref.chunks[1:]))  # a short first
    with pytest.raises(StoreCorruptError, match="where its buffer has"):
        store.read_buffer(swapped, CHUNK)
    with pytest.raises(StoreCorruptError, match="cannot be made of"):
        store.read_buffer(ref, CHUNK * 2)


def test_a_stream_reads_in_order_with_chunks_of_any_size(store: ObjectStore) -> None:
    payload = {"words": [f"w{i}" * (i % 7) for i in range(40_000)], "blob": os.urandom(300_000)}
    stream = pickle.dumps(payload, protocol=5)
    ref = store_buffer(store, stream, itemsize=1, content_defined=True)
    assert len({len(store.load_chunk(c)) for c in ref.chunks}) > 1
    with store.open_stream(ref) as file:
        assert pickle.load(file) == payload
    with store.open_stream(ref) as file:
        assert file.read() == stream


def test_a_damaged_stream_raises_a_store_error_while_unpickling(store: ObjectStore) -> None:
    stream = pickle.dumps(list(range(100_000)), protocol=5)
    ref = store_buffer(store, stream, itemsize=1, content_defined=True)
    corrupt(store, ref.chunks[len(ref.chunks) // 2])
    with store.open_stream(ref) as file, pytest.raises(StoreCorruptError):
        pickle.load(file)
    short = BufferRef(ref.size + 1, chunks=ref.chunks[:1])
    with store.open_stream(short) as file, pytest.raises(StoreCorruptError, match="manifest"):
        file.read()


def test_a_forked_child_reads_without_the_parents_threads() -> None:
    # A memory backend: a forked child must never touch RocksDB's handle (NOTES.md).
    store = ObjectStore(MemoryBackend(), read_threads=2)
    data = numbers(100_000)
    ref = store_buffer(store, data)
    store.read_buffer(ref, CHUNK)  # the pool exists in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            ok = bytes(store.read_buffer(ref, CHUNK)) == data
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    os.close(read)
    store.close()
