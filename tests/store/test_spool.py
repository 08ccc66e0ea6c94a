"""Spool files: what a dead kernel's snapshots leave, and how the next open commits them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from timetravel_kernel.ids import ChunkId, hash_bytes
from timetravel_kernel.store import BufferRef, Commit, Covar, ObjectStore, RocksBackend
from timetravel_kernel.store.codec import encode_chunk
from timetravel_kernel.store.spool import SpoolHeader, SpoolWriter, ingest_spools, spool_name
from timetravel_kernel.store.tree import NamespaceTree


def _header(count: int, at: float, base: str | None = None) -> SpoolHeader:
    return SpoolHeader(code=f"x = {count}", cell_id=None, execution_count=count, status="ok",
                       duration=0.1, time=at, base=base)


def _chunk(data: bytes) -> tuple[ChunkId, bytes]:
    return ChunkId(hash_bytes(data)), encode_chunk(data)


def _covar(name: str, chunk_id: ChunkId, size: int) -> Covar:
    return Covar(members=(name,), serializer="pickle", types=("bytes",), nbytes=size,
                 buffers=(BufferRef(size=size, chunks=(chunk_id,)),))


def _spool(folder: Path, seq: int, header: SpoolHeader, names: dict[str, bytes], *,
           pid: int | None = None, finish: bool = True, skip_chunks: bool = False) -> Path:
    writer = SpoolWriter(folder, spool_name("0001-kernel", seq, pid or os.getpid()), header)
    for name, data in names.items():
        chunk_id, stored = _chunk(data)
        if not skip_chunks:
            writer.write_chunk(chunk_id, stored)
        writer.write_covar(_covar(name, chunk_id, len(data)))
    if finish:
        return writer.finish()
    writer._file.close()  # left unfinished, as a writer that died mid-way leaves it
    return folder


@pytest.fixture
def store(tmp_path: Path):
    backend = RocksBackend(tmp_path / "store")
    store = ObjectStore(backend)
    transaction = store.transaction()
    empty, records = NamespaceTree.empty().updated({})
    transaction.add_tree_records(records)
    root = transaction.commit(Commit(parent=None, tree=empty.root_id, time=1.0), set_head=True)
    yield store, backend.spool_dir, root
    store.close()


def test_spools_become_one_commit_each_in_order_on_top_of_head(store) -> None:
    objects, folder, root = store
    _spool(folder, 1, _header(1, 10.0, root.id.hex()), {"x": b"a" * 5000})
    _spool(folder, 2, _header(2, 11.0, root.id.hex()), {"x": b"b" * 5000, "y": b"c" * 100})
    ingested = ingest_spools(objects, folder)
    first, second = (i.commit for i in ingested)
    assert first is not None and second is not None
    assert first.parent == root.id and second.parent == first.id
    assert (first.code, second.code) == ("x = 1", "x = 2")
    assert first.changed == ("x",) and second.changed == ("x", "y")
    assert objects.read_ref(b"HEAD") == second.id
    tree = objects.load_tree(second.tree)
    buffer = objects.load_covar(tree.get("y")).buffers[0]
    assert bytes(objects.read_buffer(buffer, 256 * 1024)) == b"c" * 100
    assert not list(folder.iterdir())  # committed spools are removed


def test_a_spool_whose_kernel_committed_it_first_is_dropped(store) -> None:
    objects, folder, root = store
    _spool(folder, 1, _header(1, root.time), {"x": b"a" * 10})  # the same cell, by its time
    (outcome,) = ingest_spools(objects, folder)
    assert outcome.commit is None and outcome.problem == "already committed by its kernel"
    assert objects.read_ref(b"HEAD") == root.id


def test_a_damaged_spool_is_moved_aside_never_half_committed(store) -> None:
    objects, folder, root = store
    path = _spool(folder, 1, _header(1, 10.0), {"x": b"a" * 5000})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    (outcome,) = ingest_spools(objects, folder)
    assert outcome.commit is None and "damaged" in str(outcome.problem)
    assert objects.read_ref(b"HEAD") == root.id
    assert [p.suffix for p in folder.iterdir()] == [".damaged"]


def test_a_spool_missing_chunks_is_not_committed(store) -> None:
    objects, folder, root = store
    _spool(folder, 1, _header(1, 10.0), {"x": b"never written" * 500}, skip_chunks=True)
    (outcome,) = ingest_spools(objects, folder)
    assert outcome.commit is None and "missing" in str(outcome.problem)
    assert objects.read_ref(b"HEAD") == root.id


def test_a_spool_older_than_head_branches_from_its_base(store) -> None:
    objects, folder, root = store
    later = objects.transaction().commit(
        Commit(parent=root.id, tree=NamespaceTree.empty().root_id, time=50.0, code="later"),
        set_head=True)
    _spool(folder, 1, _header(1, 10.0, root.id.hex()), {"x": b"a" * 10})
    (outcome,) = ingest_spools(objects, folder)
    assert outcome.commit is not None and outcome.commit.parent == root.id
    assert later.id != outcome.commit.id


def test_unfinished_spools_of_dead_writers_are_removed_and_live_ones_waited_for(
    store, tmp_path: Path
) -> None:
    objects, folder, _ = store
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    _spool(folder, 1, _header(1, 10.0), {"x": b"a"}, pid=int(dead.stdout), finish=False)
    # a writer still at work: this test process itself, finishing after a moment
    writer = SpoolWriter(folder, spool_name("0001-kernel", 2, os.getpid()), _header(2, 11.0))
    started = time.monotonic()
    assert ingest_spools(objects, folder, wait_seconds=0.3) == []
    assert time.monotonic() - started >= 0.3  # waited for the live writer
    assert [p.name.endswith(".part") for p in folder.iterdir()] == [True]  # left for later
    writer.finish()
    (outcome,) = ingest_spools(objects, folder)
    assert outcome.commit is not None and outcome.commit.code == "x = 2"
