"""ObjectStore: chunks, covariables, trees and commits over a Backend (store layer).

A commit is made durable in two steps, as git writes objects before it moves a ref: large
chunks stream into the backend in bounded, unlogged batches (so a checkpoint never holds a
second copy of a big array), the backend is flushed, and then one synced batch writes the
small records, the commit and the refs. A crash at any instant leaves HEAD on a commit whose
objects are all present; chunks orphaned by a crash are reclaimed by ``collect_garbage``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from timetravel_kernel.errors import (
    MissingObjectError,
    StoreError,
    StoreFormatError,
)
from timetravel_kernel.ids import (
    ChunkId,
    CommitId,
    CovarId,
    TreeId,
    hash_bytes,
)
from timetravel_kernel.store.codec import encode_chunk
from timetravel_kernel.store.keys import encode_key
from timetravel_kernel.store.objects import (
    BufferRef,
    Commit,
    Covar,
    bucket_index,
    decode_bucket,
    decode_commit,
    decode_covar,
    decode_tree_root,
    encode_commit,
    encode_covar,
)
from timetravel_kernel.store.reading import ChunkReader, load_chunk
from timetravel_kernel.store.recent import RecentCommits
from timetravel_kernel.store.refs import FORMAT_VERSION, REF_FORMAT, REF_HEAD, read_ref, ref_key
from timetravel_kernel.store.tree import NamespaceTree

if TYPE_CHECKING:
    from collections.abc import Container, Iterable, Iterator, Mapping
    from typing import BinaryIO

    from timetravel_kernel.store.backend import Backend
    from timetravel_kernel.store.reading import WritableBuffer

__all__ = ["GarbageReport", "ObjectStore", "Transaction"]

@dataclass(frozen=True, slots=True)
class GarbageReport:
    """What ``collect_garbage`` removed, and the store's size on disk before and after."""

    objects: int
    bytes: int
    disk_before: int = 0
    disk_after: int = 0


class ObjectStore:
    """Typed access to the records of one store.

    Args:
        backend: where the bytes live; the store takes ownership and closes it.
        chunk_batch_bytes: new chunks are streamed to the backend in batches of this size,
            the most extra memory a commit needs.
        read_threads: how many threads read and decode a buffer's chunks at once (default:
            one per core, at most 4).

    Raises:
        StoreFormatError: the store was written by an incompatible format version.
    """

    def __init__(self, backend: Backend, *, chunk_batch_bytes: int = 4 << 20,
                 read_threads: int | None = None) -> None:
        self.backend = backend
        self.chunk_batch_bytes = chunk_batch_bytes
        self._reader = ChunkReader(
            backend, threads=read_threads or min(4, os.cpu_count() or 1))
        self._known_chunks: set[ChunkId] = set()
        self._durable_chunks: set[ChunkId] = set()
        self._durable_order: list[ChunkId] = []
        self.failures = 0
        """Writes that failed so far: chunks known before one may have been lost with it."""
        self._trees: dict[TreeId, NamespaceTree] = {}
        self._unflushed = False
        version = read_ref(backend, REF_FORMAT)
        if version is None and not backend.read_only:
            backend.write_batch([(ref_key(REF_FORMAT), FORMAT_VERSION)])
        elif version is not None and version != FORMAT_VERSION:
            newer = version.isdigit() and int(version) > int(FORMAT_VERSION)
            raise StoreFormatError(
                f"this store has format {version.decode(errors='replace')}, this version of "
                f"timetravel-kernel reads format {FORMAT_VERSION.decode()}; "
                + ("upgrade timetravel-kernel" if newer else "it was written by an older one")
                + " or move the store aside"
            )
        self._recent = RecentCommits(backend, self.has_commit)
        self.lost_commits = self._recent.lost
        """Commits earlier sessions wrote that a damaged log lost (``store/recent.py``)."""
        self.lost_more_than_noted = self._recent.lost_more_than_noted

    def note_commit(self, commit_id: CommitId) -> None:
        """Record a durable commit in the recent-commits note (see ``lost_commits``)."""
        self._recent.note(commit_id)

    def close(self) -> None:
        """Stop the reading threads and close the backend."""
        self._reader.close()
        self.backend.close()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Wrap a write: after a failure, forget which chunks are known to exist.

        Some of those answers may have come from unsynced memory that the failed write lost
        (RocksBackend reopens its database after a failure), and a commit must never refer to
        a chunk on the strength of a stale "present".
        """
        try:
            yield
        except StoreError:
            self._forget_known()
            raise

    def _forget_known(self) -> None:
        self._known_chunks.clear()
        self._durable_chunks.clear()
        self._durable_order.clear()
        self.failures += 1

    # -- chunks -------------------------------------------------------------------------
    def has_chunk(self, chunk_id: ChunkId) -> bool:
        """Return whether the chunk is stored (remembering positive answers)."""
        if chunk_id in self._known_chunks:
            return True
        if self.backend.has(encode_key("chunk", chunk_id)):
            # Present; durable unless unlogged batches are waiting for the next flush.
            self._note_known([chunk_id], durable=not self._unflushed)
            return True
        return False

    def _note_known(self, chunk_ids: Iterable[ChunkId], *, durable: bool) -> None:
        self._known_chunks.update(chunk_ids)
        if durable:
            new = [c for c in chunk_ids if c not in self._durable_chunks]
            self._durable_chunks.update(new)
            self._durable_order += new

    def known_mark(self) -> int:
        """Return a mark for ``known_since``: how many chunks are known durable now."""
        return len(self._durable_order)

    def known_since(self, mark: int) -> list[ChunkId]:
        """Return the chunks known durable since ``mark`` (none if a failure intervened).

        A snapshot taken before its turn learns these, so it does not send again what the
        snapshots before it saved.
        """
        return self._durable_order[mark:]

    def is_known_chunk(self, chunk_id: ChunkId) -> bool:
        """Return whether the chunk is known to be durably stored, without asking the backend.

        What a forked snapshot may ask: it must not touch the backend's handle, and what it
        skips must survive the kernel's death (its spool relies on it).
        """
        return chunk_id in self._durable_chunks

    def load_chunk(self, chunk_id: ChunkId) -> bytearray | memoryview:
        """Return a chunk's bytes, decoded and verified against its id.

        Raises:
            MissingObjectError: the chunk is absent.
            StoreCorruptError: the record cannot be decoded or does not hash to the id.
        """
        return load_chunk(self.backend, chunk_id)

    def read_buffer(self, ref: BufferRef, chunk_size: int) -> WritableBuffer:
        """Return an out-of-band buffer's bytes in one writable block (what values will own).

        Read by several threads, straight into the block (``store/reading.py``);
        ``chunk_size`` is the covariable's.

        The chunks read are then known to be stored: a snapshot (or a spool written after
        the kernel died) does not send them again.

        Raises:
            MissingObjectError: a chunk is absent.
            StoreCorruptError: a chunk is damaged or the chunks do not make the buffer.
        """
        block = self._reader.read_buffer(ref, chunk_size)
        self._note_known(ref.chunks, durable=not self._unflushed)
        return block

    def open_stream(self, ref: BufferRef) -> BinaryIO:
        """Return a file reading a pickle stream's bytes, a few chunks decoded ahead.

        Its reads raise ``MissingObjectError`` or ``StoreCorruptError`` like ``read_buffer``.
        """
        return self._reader.open_stream(ref)

    # -- records ------------------------------------------------------------------------
    def _get(self, kind: str, object_id: bytes, what: str) -> bytes:
        data = self.backend.get(encode_key(kind, object_id))  # type: ignore[arg-type]
        if data is None:
            raise MissingObjectError(f"{what} {object_id.hex()} is missing from the store")
        return data

    def load_covar(self, covar_id: CovarId) -> Covar:
        """Return a covariable manifest.

        Raises:
            MissingObjectError: it is absent.
            StoreCorruptError: it is unreadable.
        """
        return decode_covar(self._get("covar", covar_id, "covariable"))

    def load_tree(self, tree_id: TreeId) -> NamespaceTree:
        """Return the namespace tree with the given root id."""
        cached = self._trees.get(tree_id)
        if cached is not None:
            return cached
        bucket_ids = decode_tree_root(self._get("tree", tree_id, "tree"))
        buckets = tuple(
            {} if b is None else decode_bucket(self._get("tree", b, "tree bucket"))
            for b in bucket_ids
        )
        tree = NamespaceTree(buckets, tuple(bucket_ids), tree_id)
        self._trees[tree_id] = tree
        return tree

    def lookup_name(self, tree_id: TreeId, name: str) -> CovarId | None:
        """Return the covar version ``name`` has in a tree, reading one bucket at most.

        A name's history looks it up in every commit that changed it; reading the root and
        one bucket (not all 64) keeps that proportional to the number of versions.
        """
        cached = self._trees.get(tree_id)
        if cached is not None:
            return cached.get(name)
        bucket_id = decode_tree_root(self._get("tree", tree_id, "tree"))[bucket_index(name)]
        if bucket_id is None:
            return None
        return decode_bucket(self._get("tree", bucket_id, "tree bucket")).get(name)

    def remember_tree(self, tree: NamespaceTree) -> None:
        """Cache a tree built in this process, so loading it costs nothing."""
        self._trees[tree.root_id] = tree

    def load_commit(self, commit_id: CommitId) -> Commit:
        """Return a commit.

        Raises:
            MissingObjectError: no such commit.
        """
        return decode_commit(self._get("commit", commit_id, "commit"))

    def has_commit(self, commit_id: CommitId) -> bool:
        """Return whether the commit is stored."""
        return self.backend.has(encode_key("commit", commit_id))

    def iter_commits(self) -> Iterator[Commit]:
        """Yield every commit, in no particular order."""
        for _, data in self.backend.scan_prefix(encode_key("commit", b"")):
            yield decode_commit(data)

    def read_ref(self, name: bytes) -> bytes | None:
        """Return a ref's value, or None."""
        return read_ref(self.backend, name)

    def set_refs(self, refs: Mapping[bytes, bytes | None]) -> None:
        """Set (or delete, for None) refs in one durable batch."""
        puts = [(ref_key(k), v) for k, v in refs.items() if v is not None]
        deletes = [ref_key(k) for k, v in refs.items() if v is None]
        self.backend.write_batch(puts, deletes)

    def transaction(self) -> Transaction:
        """Start collecting the records of one commit."""
        return Transaction(self)

    def size_bytes(self) -> int:
        """Return the store's size."""
        return self.backend.size_bytes()

    def live_bytes(self) -> int:
        """Return the store's size without files the backend already replaced (budgets)."""
        return self.backend.live_bytes()

    # -- garbage ------------------------------------------------------------------------
    def thinned(self) -> set[CommitId]:
        """Return the commits whose state retention gave up.

        Their records stay, for the parent links; their trees, covariables and chunks go with
        the next collection.
        """
        prefix = encode_key("thinned", b"")
        return {CommitId(key[len(prefix):]) for key, _ in self.backend.scan_prefix(prefix)}

    def mark_thinned(self, commit_ids: Iterable[CommitId]) -> None:
        """Give up the state of these commits, in one durable batch."""
        self.backend.write_batch([(encode_key("thinned", c), b"") for c in commit_ids])

    def collect_garbage(self, *, compact: bool = True) -> GarbageReport:
        """Delete chunks, covariables and trees no kept commit reaches; compact the disk.

        Commits are kept (their states only when not thinned); what goes is what interrupted
        or crashed checkpoints left behind and what thinned states alone used. The report's
        sizes are measured on disk, after the backend compacted (``compact=False`` leaves
        that to a later ``backend.compact()``, which may run beside writes).
        """
        disk_before = self.size_bytes()
        live = {key for key, _ in self.iter_reachable(self._kept_commits())}
        dead: list[bytes] = []
        freed = 0
        for kind in ("chunk", "covar", "tree"):
            prefix = encode_key(kind, b"")  # type: ignore[arg-type]
            for key, value in self.backend.scan_prefix(prefix):
                if key not in live:
                    dead.append(key)
                    freed += len(key) + len(value)
        for start in range(0, len(dead), 10_000):
            self.backend.write_batch((), dead[start : start + 10_000])
        self._forget_known()  # chunks known before may be gone: checked again at commits
        self._trees.clear()
        if compact:
            self.backend.compact()
        return GarbageReport(len(dead), freed, disk_before, self.size_bytes())

    def verify(self) -> int:
        """Read back every object every kept commit reaches, checking each chunk's hash.

        Returns the number of chunks checked.

        Raises:
            MissingObjectError: an object a commit needs is absent.
            StoreCorruptError: an object is unreadable or a chunk does not match its id.
        """
        prefix = encode_key("chunk", b"")
        reached = self.iter_reachable(self._kept_commits())
        chunks = [key[len(prefix) :] for key, _ in reached if key.startswith(prefix)]
        for chunk_id in chunks:
            self.load_chunk(ChunkId(chunk_id))
        return len(chunks)

    def _kept_commits(self) -> Iterator[Commit]:
        """Return, lazily, the commits whose state is kept (not thinned)."""
        thinned = self.thinned()
        return (commit for commit in self.iter_commits() if commit.id not in thinned)

    def iter_reachable(self, commits: Iterable[Commit], *, skip: Container[bytes] = frozenset()
                       ) -> Iterator[tuple[bytes, int]]:
        """Yield the key of every tree, covariable and chunk the commits reach, each once.

        Keys come commit by commit, each record before the ones it refers to (tree root,
        bucket, covariable, its chunks). A key in ``skip`` is neither yielded nor walked into:
        whoever holds a record holds what it reaches (a remote, ``remote/sync.py``). With each
        key comes about the bytes it stands for: a chunk's share of its buffer (decoded), 0 for
        the small records.

        Raises:
            MissingObjectError: a record the walk needs is absent.
            StoreCorruptError: a record is unreadable.
        """
        seen: set[bytes] = set()

        def new(key: bytes) -> bool:
            if key in seen or key in skip:
                return False
            seen.add(key)
            return True

        for commit in commits:
            root = encode_key("tree", commit.tree)
            if not new(root):
                continue
            yield root, 0
            tree = self.load_tree(commit.tree)
            for bucket_id, bucket in zip(tree.bucket_ids, tree.buckets, strict=True):
                if bucket_id is None or not new(key := encode_key("tree", bucket_id)):
                    continue
                yield key, 0
                for covar_id in bucket.values():
                    if not new(key := encode_key("covar", covar_id)):
                        continue
                    yield key, 0
                    for buffer in self.load_covar(covar_id).buffers:
                        share = buffer.size // max(1, len(buffer.chunks))
                        for chunk_id in buffer.chunks:
                            if new(key := encode_key("chunk", chunk_id)):
                                yield key, share


class Transaction:
    """The records of one commit, written by ``commit`` as one durable step.

    Args:
        store: the object store to write to.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._records: dict[bytes, bytes] = {}
        self._chunk_batch: list[tuple[bytes, bytes]] = []
        self._chunk_batch_bytes = 0
        self._pending_chunks: set[ChunkId] = set()
        self.bytes_written = 0

    def has_chunk(self, chunk_id: ChunkId) -> bool:
        """Return whether the chunk is stored or queued in this transaction."""
        return chunk_id in self._pending_chunks or self._store.has_chunk(chunk_id)

    def add_chunk_if_new(
        self, chunk_id: ChunkId, data: bytes | memoryview, itemsize: int = 1
    ) -> int:
        """Queue a chunk unless the store has it; return the bytes this adds on disk.

        ``itemsize`` is the width of the items the bytes hold (8 for float64), which the
        compression's byte shuffle groups by.
        """
        if chunk_id in self._pending_chunks or self._store.has_chunk(chunk_id):
            return 0
        # Encoding copies now, so the user's array may change before the batch is written.
        return self.add_encoded_chunk_if_new(chunk_id, encode_chunk(data, itemsize))

    def add_encoded_chunk_if_new(self, chunk_id: ChunkId, stored: bytes) -> int:
        """Queue a chunk already in its stored form (``encode_chunk``) unless the store has it.

        Returns the bytes this adds on disk.
        """
        if chunk_id in self._pending_chunks or self._store.has_chunk(chunk_id):
            return 0
        self._pending_chunks.add(chunk_id)
        self._chunk_batch.append((encode_key("chunk", chunk_id), stored))
        self._chunk_batch_bytes += len(stored)
        self.bytes_written += len(stored)
        if self._chunk_batch_bytes >= self._store.chunk_batch_bytes:
            self._write_chunk_batch()
        return len(stored)

    def _write_chunk_batch(self) -> None:
        if not self._chunk_batch:
            return
        with self._store._writing():
            self._store.backend.write_batch(self._chunk_batch, durable=False)
        self._store._unflushed = True
        self._chunk_batch = []
        self._chunk_batch_bytes = 0

    def add_covar(self, covar: Covar) -> CovarId:
        """Queue a covariable manifest; return its id."""
        data = encode_covar(covar)
        new_id = CovarId(hash_bytes(data))
        self.add_encoded_covar(new_id, data)
        return new_id

    def add_encoded_covar(self, covar_id: CovarId, data: bytes) -> None:
        """Queue a manifest already encoded (``encode_covar``) under its id, unless stored."""
        key = encode_key("covar", covar_id)
        if key not in self._records and not self._store.backend.has(key):
            self._records[key] = data
            self.bytes_written += len(data)

    def add_tree_records(self, records: Mapping[TreeId, bytes]) -> None:
        """Queue the bucket and root records of an updated tree."""
        for tree_id, data in records.items():
            self._records[encode_key("tree", tree_id)] = data
            self.bytes_written += len(data)

    def commit(self, commit: Commit, *, set_head: bool) -> Commit:
        """Write everything queued and the commit (and HEAD); return the commit with its id.

        Small chunks ride in the final batch; large ones were streamed and are flushed first,
        so the synced batch never makes reachable an object a crash could lose.
        """
        final = replace(commit, bytes_written=self.bytes_written)
        data = encode_commit(final)
        final = replace(final, id=CommitId(hash_bytes(data)))
        puts: list[tuple[bytes, bytes]] = list(self._chunk_batch)
        with self._store._writing():
            if self._store._unflushed:
                self._store.backend.flush()
                self._store._unflushed = False
            puts += self._records.items()
            puts.append((encode_key("commit", final.id), data))
            if set_head:
                puts.append((ref_key(REF_HEAD), final.id))
            self._store.backend.write_batch(puts)
            self._store.note_commit(final.id)
        self._store._note_known(self._pending_chunks, durable=True)
        return final
