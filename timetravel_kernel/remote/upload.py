"""PackWriter: upload records as packs and their signed indexes, a few at once (remote layer).

What a push sends (``unsent_records``: the closures of the local commits the remote lacks,
HEAD's first) and how: packs are made as the records are read, sealed (every record checked
against its id, the pack and its blocks hashed) and uploaded by ``_UPLOAD_THREADS`` threads at
once; the indexes follow in pack order, each naming the one before, and every
``SUMMARY_DEPTH``-th index is followed by a summary. Nothing is reachable until the caller
swaps the ref.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from timetravel_kernel.errors import MissingObjectError, StoreCorruptError
from timetravel_kernel.remote.packs import (
    MAX_PACK_BYTES,
    SUMMARY_DEPTH,
    PackIndex,
    block_digests,
    encode_index,
    index_name,
    pack_name,
    pack_records,
    record_problem,
    walk_indexes,
)
from timetravel_kernel.remote.signing import sign_document
from timetravel_kernel.store.keys import KEY_PREFIXES, encode_key, is_kind
from timetravel_kernel.store.objects import decode_commit
from timetravel_kernel.store.refs import REF_HEAD

if TYPE_CHECKING:
    from collections.abc import Callable, Container, Iterator, Mapping

    from timetravel_kernel.remote.signing import Signer
    from timetravel_kernel.remote.transport import Transport
    from timetravel_kernel.store.object_store import ObjectStore

__all__ = ["PackWriter", "unsent_records"]

# Packs sealed and uploaded at once: while one waits on the network, the next is read from the
# store, checked and hashed (SHA-256 and the decoders release the GIL). At most this many
# packs, plus the one being filled, are in memory.
_UPLOAD_THREADS = 4


def _read_local(read: Callable[[bytes], bytes | None], key: bytes) -> bytes:
    """Return a record of the local store that a push sends.

    Raises:
        MissingObjectError: it is absent.
    """
    value = read(key)
    if value is None:
        raise MissingObjectError(f"record {key[1:].hex()} is missing from the local store; run "
                                 "`timetravel gc` and push again")
    return value


def unsent_records(store: ObjectStore, remote_keys: Container[bytes]
                   ) -> tuple[list[tuple[bytes, bytes | None]], int]:
    """Return every record reachable from a local commit that the remote lacks.

    A record on the remote arrived with everything it refers to (pushes send closures), so
    the store's walk skips what the remote holds (``remote_keys``). HEAD's closure and commit
    come first (they fill the first packs, what a new machine's kernel fetches before its
    first cell), the other commits last. Chunks come without their value (None): the uploader
    reads them a pack at a time. Also returns about how many bytes all take (chunks counted
    by their decoded size).
    """
    backend = store.backend
    commits = {k: bytes(v) for k, v in backend.scan_prefix(KEY_PREFIXES["commit"])
               if k not in remote_keys}
    head = store.read_ref(REF_HEAD)
    head_key = encode_key("commit", head) if head else b""
    head_part = [(head_key, commits.pop(head_key))] if head_key in commits else []
    records: dict[bytes, bytes | None] = {}
    expected = 0
    for part in (head_part, list(commits.items())):
        reaching = [decode_commit(data) for _, data in part]
        for key, size in store.iter_reachable(reaching, skip=remote_keys):
            if key not in records:  # the other commits reach some of HEAD's again
                records[key] = None if is_kind(key, "chunk") else _read_local(backend.get, key)
                expected += size
        records.update(part)  # each part's commits after their closure
    expected += sum(len(v) for v in records.values() if v is not None)
    return list(records.items()), expected


def _depth(name: str | None, uploaded: list[tuple[str, PackIndex]],
           known: Mapping[str, PackIndex]) -> int:
    index = dict(uploaded).get(name or "") or known.get(name or "")
    return index.depth if index is not None else 0


class PackWriter:
    """Uploads one notebook's packs and indexes.

    Args:
        transport: where they go.
        folder: the notebook's folder on the transport.
        signer: signs the indexes.
    """

    def __init__(self, transport: Transport, folder: str, signer: Signer) -> None:
        self.transport = transport
        self.folder = folder
        self.signer = signer

    def upload(self, store: ObjectStore, records: list[tuple[bytes, bytes | None]],
               latest: str | None, known: Mapping[str, PackIndex], expected: int,
               progress: Callable[[int, int], None] | None) -> list[tuple[str, PackIndex]]:
        """Upload packs and their indexes, chained to ``latest``; return them, oldest first.

        ``known`` are the indexes read or written before (for depths and summaries);
        ``expected`` is about the bytes the records take (for ``progress``: chunks are read
        only as their pack is made). A part that fails fails the upload: parts not started are
        dropped, running ones finish, and nothing of it is reachable.
        """
        uploaded: list[tuple[str, PackIndex]] = []
        done = 0
        pool = ThreadPoolExecutor(_UPLOAD_THREADS, thread_name_prefix="timetravel-push")
        sealing: deque[Future[tuple[str, int, dict[bytes, tuple[int, int]], tuple[str, ...]]]]
        sealing = deque()
        indexes: list[Future[None]] = []

        def chain(sealed: tuple[str, int, dict[bytes, tuple[int, int]], tuple[str, ...]]
                  ) -> None:
            nonlocal latest, done
            name, size, offsets, blocks = sealed
            index = PackIndex(pack=name, size=size, parents=(latest,) if latest else (),
                              records=offsets, depth=_depth(latest, uploaded, known) + 1,
                              blocks=blocks)
            latest, signed = self._signed_index(index)
            indexes.append(pool.submit(self._put_index, latest, signed))
            uploaded.append((latest, index))
            done += size
            if progress is not None:
                progress(done, max(expected, done))

        try:
            for pack, offsets in pack_records(self._record_values(store, records),
                                              MAX_PACK_BYTES):
                sealing.append(pool.submit(self._seal_and_put, pack, offsets))
                while len(sealing) >= _UPLOAD_THREADS:
                    chain(sealing.popleft().result())
            while sealing:
                chain(sealing.popleft().result())
            for put in indexes:
                put.result()
        finally:
            # After a failure, parts not started are dropped and running ones finish: nothing
            # of this push runs on after it returns.
            pool.shutdown(wait=True, cancel_futures=True)
        if latest is not None and _depth(latest, uploaded, known) >= SUMMARY_DEPTH:
            everything = {**known, **dict(uploaded)}
            with_packs = {n: i for n, i in walk_indexes(latest, everything.get) if i.pack}
            summary = PackIndex(pack="", size=0, parents=(), depth=0, embedded=with_packs)
            name, signed = self._signed_index(summary)
            self._put_index(name, signed)
            uploaded.append((name, summary))
        return uploaded

    @staticmethod
    def _record_values(store: ObjectStore, records: list[tuple[bytes, bytes | None]]
                       ) -> Iterator[tuple[bytes, bytes]]:
        """Yield each record with its value, reading chunks only now (a few packs' worth)."""
        for key, value in records:
            # Verified against its id when its pack is sealed (``_seal_and_put``), not by
            # RocksDB's slower checksum.
            yield key, _read_local(store.backend.get_unchecked, key) if value is None else value

    def _seal_and_put(self, pack: bytes, offsets: dict[bytes, tuple[int, int]]
                      ) -> tuple[str, int, dict[bytes, tuple[int, int]], tuple[str, ...]]:
        """Check every record against its id, hash the pack and upload it (in a thread).

        A record damaged in the local store is refused here, so it never reaches the remote.

        Raises:
            StoreCorruptError: a record does not match its id.
            RemoteError: the upload failed.
        """
        view = memoryview(pack)
        for key, (offset, length) in offsets.items():
            problem = record_problem(key, view[offset : offset + length])
            if problem is not None:
                raise StoreCorruptError(f"the local store {problem}; nothing was pushed (the "
                                        "state that needs it cannot be restored either)")
        name = pack_name(pack)
        self.transport.put_if_absent(f"{self.folder}/packs/{name}.pack", pack)
        return name, len(pack), offsets, block_digests(pack)

    def _signed_index(self, index: PackIndex) -> tuple[str, bytes]:
        """Return an index's name and its signed document."""
        body = encode_index(index)
        return index_name(body), sign_document(body, self.signer)

    def _put_index(self, name: str, signed: bytes) -> None:
        self.transport.put_if_absent(f"{self.folder}/indexes/{name}.idx", signed)
