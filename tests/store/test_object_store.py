from __future__ import annotations

from pathlib import Path

import pytest

from timetravel_kernel.errors import MissingObjectError, StoreCorruptError, StoreFormatError
from timetravel_kernel.ids import ChunkId, hash_bytes
from timetravel_kernel.store import (
    BufferRef,
    MemoryBackend,
    NamespaceTree,
    ObjectStore,
    RocksBackend,
)
from timetravel_kernel.store.keys import decode_key, encode_key
from timetravel_kernel.store.refs import REF_FORMAT, REF_HEAD, ref_key

from ..factories import make_commit, make_covar


def chunk(data: bytes) -> tuple[ChunkId, bytes]:
    return ChunkId(hash_bytes(data)), data


def commit_one(store: ObjectStore, payload: bytes, *, set_head: bool = True):
    transaction = store.transaction()
    chunk_id, data = chunk(payload)
    written = transaction.add_chunk_if_new(chunk_id, memoryview(data))
    covar = make_covar(buffers=(BufferRef(len(data), chunks=(chunk_id,)),), refs=())
    covar_of = transaction.add_covar(covar)
    tree, records = NamespaceTree.empty().updated({"x": covar_of})
    transaction.add_tree_records(records)
    commit = transaction.commit(make_commit(parent=None, tree=tree.root_id), set_head=set_head)
    return commit, written, chunk_id


def test_commit_is_readable_and_moves_head() -> None:
    store = ObjectStore(MemoryBackend())
    commit, written, chunk_id = commit_one(store, b"payload" * 10)
    assert written == 71  # too small to compress: kept raw behind its encoding tag
    assert store.load_commit(commit.id) == commit
    assert store.read_ref(REF_HEAD) == commit.id
    assert store.load_chunk(chunk_id) == b"payload" * 10
    assert commit.bytes_written >= 71


def test_compressible_chunks_are_stored_compressed_and_read_back_exactly() -> None:
    backend = MemoryBackend()
    store = ObjectStore(backend)
    payload = bytes(range(256)) * 1024
    _, written, chunk_id = commit_one(store, payload)
    assert written < len(payload) // 10
    assert len(backend.get(encode_key("chunk", chunk_id)) or b"") == written
    assert store.load_chunk(chunk_id) == payload


def test_existing_chunks_are_not_written_again() -> None:
    store = ObjectStore(MemoryBackend())
    commit_one(store, b"same")
    _, written, _ = commit_one(store, b"same")
    assert written == 0


def test_corrupt_chunk_is_detected_on_read() -> None:
    backend = MemoryBackend()
    store = ObjectStore(backend)
    _, _, chunk_id = commit_one(store, b"precious data")
    backend.write_batch([(encode_key("chunk", chunk_id), b"\x00precious dat4")])
    with pytest.raises(StoreCorruptError, match="corrupt"):
        store.load_chunk(chunk_id)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda stored: b"\x07" + stored[1:], "unknown encoding tag 7"),
        (lambda stored: stored[:1] + bytes(16) + stored[17:], "cannot be decoded"),
        (lambda stored: stored[: len(stored) // 2], "cannot be decoded"),
        (lambda stored: b"", "unknown encoding tag None"),
    ],
    ids=["tag", "header", "truncated", "empty"],
)
def test_undecodable_chunk_records_are_reported_as_corrupt(damage, reason) -> None:
    backend = MemoryBackend()
    store = ObjectStore(backend)
    _, _, chunk_id = commit_one(store, bytes(range(256)) * 64)
    key = encode_key("chunk", chunk_id)
    backend.write_batch([(key, damage(backend.get(key)))])
    with pytest.raises(StoreCorruptError, match=f"chunk {chunk_id.hex()} is corrupt.*{reason}"):
        store.load_chunk(chunk_id)


def test_missing_objects_raise_missing_object_error() -> None:
    store = ObjectStore(MemoryBackend())
    with pytest.raises(MissingObjectError):
        store.load_chunk(ChunkId(hash_bytes(b"never")))
    with pytest.raises(KeyError):
        store.load_commit(hash_bytes(b"never"))  # type: ignore[arg-type]


def test_read_buffer_joins_chunks_writably() -> None:
    store = ObjectStore(MemoryBackend())
    transaction = store.transaction()
    pieces = [chunk(b"a" * 10), chunk(b"b" * 5)]
    for chunk_id, data in pieces:
        transaction.add_chunk_if_new(chunk_id, data)
    transaction.commit(make_commit(parent=None), set_head=False)
    joined = store.read_buffer(BufferRef(15, chunks=tuple(c for c, _ in pieces)), 10)
    assert joined == bytearray(b"a" * 10 + b"b" * 5)
    with pytest.raises(StoreCorruptError):
        store.read_buffer(BufferRef(16, chunks=tuple(c for c, _ in pieces)), 10)


def test_incompatible_format_is_refused() -> None:
    backend = MemoryBackend()
    backend.write_batch([(ref_key(REF_FORMAT), b"99")])
    with pytest.raises(StoreFormatError, match="format 99"):
        ObjectStore(backend)


def test_garbage_collection_keeps_reachable_and_drops_orphans(tmp_path: Path) -> None:
    store = ObjectStore(RocksBackend(tmp_path / "db"))
    _, _, kept = commit_one(store, b"reachable" * 1000)
    orphan_id, orphan = chunk(b"orphan from a crash" * 1000)
    store.backend.write_batch([(encode_key("chunk", orphan_id), orphan)])
    report = store.collect_garbage()
    assert report.objects == 1
    assert report.bytes >= len(orphan)
    assert store.load_chunk(kept) == b"reachable" * 1000
    with pytest.raises(MissingObjectError):
        store.load_chunk(orphan_id)
    store.close()


def commit_names(store: ObjectStore, values: dict[str, list[bytes]]):
    """Commit one covariable per name, its buffer cut into the given chunks."""
    transaction = store.transaction()
    changes = {}
    for name, parts in values.items():
        ids = []
        for part in parts:
            chunk_id, data = chunk(part)
            transaction.add_chunk_if_new(chunk_id, data)
            ids.append(chunk_id)
        buffers = (BufferRef(3, inline=b"abc"), BufferRef(sum(map(len, parts)), chunks=tuple(ids)))
        changes[name] = transaction.add_covar(make_covar(members=(name,), types=("bytes",),
                                                         buffers=buffers, refs=()))
    tree, records = NamespaceTree.empty().updated(changes)
    transaction.add_tree_records(records)
    return transaction.commit(make_commit(parent=None, tree=tree.root_id), set_head=True)


def test_what_commits_reach_comes_once_each_record_before_what_it_refers_to() -> None:
    store = ObjectStore(MemoryBackend())
    first = commit_names(store, {"a": [b"1" * 100, b"2" * 50]})
    second = commit_names(store, {"a": [b"1" * 100, b"2" * 50], "b": [b"3" * 30]})
    reached = list(store.iter_reachable([first, second]))
    keys = [key for key, _ in reached]
    stored = {key for key, _ in store.backend.scan_prefix(b"")
              if decode_key(key)[0] in ("tree", "covar", "chunk")}
    assert len(keys) == len(set(keys)) and set(keys) == stored
    # The first commit's root, its bucket, a's covariable and chunks; then only what the second
    # adds (a's covariable and chunks are not walked again).
    assert [decode_key(key)[0] for key in keys] == [
        "tree", "tree", "covar", "chunk", "chunk", "tree", "tree", "covar", "chunk"]
    assert keys[0] == encode_key("tree", first.tree) and keys[5] == encode_key("tree", second.tree)
    # A chunk stands for its share of its buffer; the small records for nothing.
    assert [size for _, size in reached] == [0, 0, 0, 75, 75, 0, 0, 0, 30]


def test_a_skipped_record_is_not_walked_into() -> None:
    store = ObjectStore(MemoryBackend())
    first = commit_names(store, {"a": [b"1" * 100, b"2" * 50]})
    second = commit_names(store, {"a": [b"1" * 100, b"2" * 50], "b": [b"3" * 30]})
    covar_a = encode_key("covar", store.load_tree(first.tree).get("a"))
    rest = [key for key, _ in store.iter_reachable([second], skip={covar_a})]
    assert covar_a not in rest
    assert [decode_key(key)[0] for key in rest].count("chunk") == 1  # b's alone
    assert list(store.iter_reachable([first], skip={encode_key("tree", first.tree)})) == []


def test_verify_reads_every_chunk_a_kept_commit_reaches(tmp_path: Path) -> None:
    store = ObjectStore(RocksBackend(tmp_path / "db"))
    commit_names(store, {"a": [b"1" * 100, b"2" * 50], "b": [b"1" * 100]})
    orphan_id, _ = chunk(b"orphan")
    store.backend.write_batch([(encode_key("chunk", orphan_id), b"not even a chunk")])
    assert store.verify() == 2  # the orphan is not read
    damaged, _ = chunk(b"2" * 50)
    store.backend.write_batch([(encode_key("chunk", damaged), b"\x00" + b"3" * 50)])
    with pytest.raises(StoreCorruptError):
        store.verify()
    store.close()


def test_large_commits_stream_chunks_before_the_durable_batch(tmp_path: Path) -> None:
    store = ObjectStore(RocksBackend(tmp_path / "db"))
    transaction = store.transaction()
    ids = []
    for i in range(80):  # 80 x 256 KiB = 20 MiB: more than one unlogged batch
        chunk_id, data = chunk(bytes([i]) * 262_144)
        transaction.add_chunk_if_new(chunk_id, data)
        ids.append(chunk_id)
    commit = transaction.commit(make_commit(parent=None), set_head=True)
    store.close()
    again = ObjectStore(RocksBackend(tmp_path / "db"))
    assert again.read_ref(REF_HEAD) == commit.id
    assert all(again.load_chunk(c)[:1] == bytes([i]) for i, c in enumerate(ids))
    again.close()
