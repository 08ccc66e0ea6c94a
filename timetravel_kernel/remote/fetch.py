"""PackReader: fetch packs from a remote, verified, into a local store (remote layer).

Two ways: every pack holding records the store lacks (a pull), or only the packs the latest
state needs (what a kernel on a new machine does before its first cell), found by walking
commit -> tree root -> buckets -> covariables -> chunks over the indexes, one level at a time.
Packs are fetched whole, a few at once in threads, and checked against the SHA-256 their signed
index names; every record against its id.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from timetravel_kernel.errors import MissingObjectError, RemoteCorruptError
from timetravel_kernel.remote.packs import PackIndex, read_pack
from timetravel_kernel.store.keys import encode_key
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

__all__ = ["PackReader"]

_FETCH_THREADS = 4


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
        """Fetch the packs holding what state ``head`` needs and store just those records.

        Walks commit -> tree root -> buckets -> covariables -> chunks, one level at a time,
        fetching (whole, verified) only the packs that hold records of the next level the
        store lacks. Returns the number of records stored and the head commit to write.
        """
        where = {key: index for index in indexes for key in index.records}
        cache: dict[bytes, bytes] = {}
        fetched: set[str] = set()
        level: list[tuple[bytes, str]] = [(encode_key("commit", head), "commit")]
        closure: dict[bytes, None] = {}  # ordered set
        while level:
            missing = [k for k, _ in level if k in cache or not store.backend.has(k)]
            unknown = [k for k in missing if k not in where]
            if unknown:
                raise RemoteCorruptError(f"record {unknown[0][1:].hex()} of the latest state "
                                         f"is in no pack at {self.url}; the history is damaged")
            packs = {where[k].pack: where[k] for k in missing
                     if k not in cache and where[k].pack not in fetched}
            for _, records in self.read_packs(list(packs.values())):
                cache.update(records)
            fetched.update(packs)
            closure.update(dict.fromkeys(missing))
            level = self._next_level(store, level, cache)
        records = [(k, cache[k]) for k in closure]
        batch = [(k, v) for k, v in records if k[:1] != b"k"]
        if batch:
            store.backend.write_batch(batch, durable=False)
        return len(records), [(k, v) for k, v in records if k[:1] == b"k"]

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

    def read_packs(self, indexes: list[PackIndex]
                    ) -> Iterator[tuple[PackIndex, dict[bytes, bytes]]]:
        """Yield each pack's verified records, in order, fetching a few at once in threads.

        Network waits and SHA-256 release the GIL; at most ``_FETCH_THREADS`` packs are in
        memory.
        """
        with ThreadPoolExecutor(_FETCH_THREADS, thread_name_prefix="timetravel-fetch") as pool:
            pending: deque[Future[dict[bytes, bytes]]] = deque(
                pool.submit(self._read_pack, index) for index in indexes[:_FETCH_THREADS])
            for position, index in enumerate(indexes):
                records = pending.popleft().result()
                following = position + _FETCH_THREADS
                if following < len(indexes):
                    pending.append(pool.submit(self._read_pack, indexes[following]))
                yield index, records

    def fetch_packs(self, store: ObjectStore, indexes: list[PackIndex],
                     progress: Callable[[int, int], None] | None
                     ) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Fetch, verify and store each pack holding records the store lacks.

        Commits are returned instead, to be written once everything they refer to is durable.
        """
        wanted = {id(i): [k for k in i.records if not store.backend.has(k)] for i in indexes}
        needed = [i for i in indexes if wanted[id(i)]]
        total = sum(i.size for i in needed)
        done = stored = 0
        commits: list[tuple[bytes, bytes]] = []
        for index, records in self.read_packs(needed):
            keys = wanted[id(index)]
            batch = [(k, records[k]) for k in keys if k[:1] != b"k"]
            commits += [(k, records[k]) for k in keys if k[:1] == b"k"]
            if batch:
                store.backend.write_batch(batch, durable=False)
            stored += len(keys)
            done += index.size
            if progress is not None:
                progress(done, total)
        return stored, commits

    def _read_pack(self, index: PackIndex) -> dict[bytes, bytes]:
        """Return one pack's records, verified."""
        found = self.transport.get(f"{self.folder}/packs/{index.pack}.pack")
        if found is None:
            raise RemoteCorruptError(f"pack {index.pack[:12]} is missing at {self.url}; the "
                                     "history there is damaged")
        return dict(read_pack(found.data, index))
