"""PackReader: fetch packs from a remote, verified, into a local store (remote layer).

Two ways: every record the store lacks (a pull), or only what the latest state needs (what a
kernel on a new machine, or ``clone``, does first), found by walking commit -> tree root ->
buckets -> covariables -> chunks over the indexes, one level at a time. A pack is fetched whole
(and checked against the SHA-256 its signed index names) when all of it is wanted, else only
the 64 KiB blocks holding the wanted records, ranges less than ``COALESCE_GAP`` apart read as
one (each block checked against the SHA-256 the signed index names for it); a few packs at once
in threads. Every record is also checked against its id.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from timetravel_kernel.errors import MissingObjectError, RemoteCorruptError
from timetravel_kernel.remote.packs import PackIndex, block_spans, read_pack, read_ranges
from timetravel_kernel.store.keys import encode_key, is_kind
from timetravel_kernel.store.objects import (
    decode_bucket,
    decode_commit,
    decode_covar,
    decode_tree_root,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from timetravel_kernel.remote.transport import Transport
    from timetravel_kernel.store.object_store import ObjectStore

__all__ = ["COALESCE_GAP", "PackReader"]

_FETCH_THREADS = 4
# Ranges closer than this are read as one (what obstore does by default): a request costs about
# as much as a megabyte on S3-like storage.
COALESCE_GAP = 1 << 20


class PackReader:
    """Reads one notebook's packs.

    Args:
        transport: where they live.
        folder: the notebook's folder on the transport.
        url: how messages name the history.
    """

    def __init__(self, transport: Transport, folder: str, url: str) -> None:
        self.transport = transport
        self.folder = folder
        self.url = url

    def fetch_closure(self, store: ObjectStore, head: bytes, indexes: list[PackIndex]
                       ) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Fetch what state ``head`` needs and store just those records.

        Walks commit -> tree root -> buckets -> covariables -> chunks, one level at a time,
        reading only the records of the next level the store lacks. Chunks (the bulk, and
        the last level) go into the store as each pack arrives, one unlogged batch per pack;
        the small records of the other levels are kept until the end. Returns the number of
        records stored and the head commit to write.
        """
        where = {key: index for index in indexes for key in index.records}
        cache: dict[bytes, bytes] = {}
        level: list[tuple[bytes, str]] = [(encode_key("commit", head), "commit")]
        closure: dict[bytes, None] = {}  # ordered set
        stored = 0
        while level:
            missing = [k for k, _ in level if k in cache or not store.backend.has(k)]
            unknown = [k for k in missing if k not in where]
            if unknown:
                raise RemoteCorruptError(f"record {unknown[0][1:].hex()} of the latest state "
                                         f"is in no pack at {self.url}; the history is damaged")
            wanted: dict[str, tuple[PackIndex, list[bytes]]] = {}
            for key in missing:
                if key not in cache:
                    wanted.setdefault(where[key].pack, (where[key], []))[1].append(key)
            chunks = {k for k, kind in level if kind == "chunk"}.intersection(missing)
            # Chunks read earlier as neighbours of small records, then the rest as it comes.
            stored += _store_now(store, [(k, cache.pop(k)) for k in chunks if k in cache])
            for _, records in self.read_packs(list(wanted.values())):
                stored += _store_now(store, [(k, v) for k, v in records.items() if k in chunks])
                # The other records read may be the next level's; at the chunk level (the
                # last) other chunks in a pack read whole are dropped, not held.
                cache.update((k, v) for k, v in records.items()
                             if not chunks or not is_kind(k, "chunk"))
            closure.update(dict.fromkeys(k for k in missing if k not in chunks))
            level = self._next_level(store, level, cache)
        records = [(k, cache[k]) for k in closure]
        batch = [(k, v) for k, v in records if not is_kind(k, "commit")]
        if batch:
            store.backend.write_batch(batch, durable=False)
        return stored + len(records), [(k, v) for k, v in records if is_kind(k, "commit")]

    @staticmethod
    def _next_level(store: ObjectStore, level: list[tuple[bytes, str]],
                    cache: dict[bytes, bytes]) -> list[tuple[bytes, str]]:
        """Return the records the given ones refer to (chunks refer to nothing)."""
        children: list[tuple[bytes, str]] = []
        for key, kind in level:
            if kind == "chunk":
                continue
            value = cache.get(key)
            if value is None:
                value = store.backend.get(key)
            if value is None:
                raise MissingObjectError(f"record {key[1:].hex()} vanished during a pull")
            if kind == "commit":
                children.append((encode_key("tree", decode_commit(value).tree), "root"))
            elif kind == "root":
                children += [(encode_key("tree", b), "bucket")
                             for b in decode_tree_root(value) if b is not None]
            elif kind == "bucket":
                children += [(encode_key("covar", c), "covar")
                             for c in set(decode_bucket(value).values())]
            else:
                children += [(encode_key("chunk", c), "chunk")
                             for b in decode_covar(value).buffers for c in b.chunks]
        return list(dict.fromkeys(children))

    def read_packs(self, wanted: list[tuple[PackIndex, list[bytes]]]
                    ) -> Iterator[tuple[PackIndex, dict[bytes, bytes]]]:
        """Yield the verified records of each (pack, wanted keys), in order, a few at once.

        Network waits and SHA-256 release the GIL; at most ``_FETCH_THREADS`` packs are in
        memory. All the records read come, not only the wanted ones (a pack read whole, the
        neighbours inside a range).
        """
        with ThreadPoolExecutor(_FETCH_THREADS, thread_name_prefix="timetravel-fetch") as pool:
            pending: deque[Future[dict[bytes, bytes]]] = deque(
                pool.submit(self._read, *item) for item in wanted[:_FETCH_THREADS])
            for position, (index, _) in enumerate(wanted):
                records = pending.popleft().result()
                following = position + _FETCH_THREADS
                if following < len(wanted):
                    pending.append(pool.submit(self._read, *wanted[following]))
                yield index, records

    def fetch_packs(self, store: ObjectStore, indexes: list[PackIndex],
                     progress: Callable[[int, int], None] | None
                     ) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Fetch, verify and store every record of ``indexes`` the store lacks.

        Commits are returned instead, to be written once everything they refer to is durable.
        """
        wanted = [(i, [k for k in i.records if not store.backend.has(k)]) for i in indexes]
        needed = [(i, keys) for i, keys in wanted if keys]
        total = sum(i.size for i, _ in needed)
        done = stored = 0
        commits: list[tuple[bytes, bytes]] = []
        for (index, records), (_, keys) in zip(self.read_packs(needed), needed, strict=True):
            batch = [(k, records[k]) for k in keys if not is_kind(k, "commit")]
            commits += [(k, records[k]) for k in keys if is_kind(k, "commit")]
            if batch:
                store.backend.write_batch(batch, durable=False)
            stored += len(keys)
            done += index.size
            if progress is not None:
                progress(done, total)
        return stored, commits

    def _read(self, index: PackIndex, keys: list[bytes]) -> dict[bytes, bytes]:
        """Return the records ``keys`` of one pack and any others read with them, verified."""
        path = f"{self.folder}/packs/{index.pack}.pack"
        ranges = [index.records[k] for k in keys]
        if len(keys) < len(index.records) and index.blocks:
            spans = block_spans(ranges, index, COALESCE_GAP)
            parts = self.transport.get_ranges(path, spans)
            found = None if parts is None else read_ranges(spans, parts, index)
        else:
            whole = self.transport.get(path)
            found = None if whole is None else dict(read_pack(whole.data, index))
        if found is None:
            raise RemoteCorruptError(f"pack {index.pack[:12]} is missing at {self.url}; the "
                                     "history there is damaged")
        return found


def _store_now(store: ObjectStore, records: list[tuple[bytes, bytes]]) -> int:
    """Write records unlogged (a later flush and synced commit make them reachable)."""
    if records:
        store.backend.write_batch(records, durable=False)
    return len(records)
