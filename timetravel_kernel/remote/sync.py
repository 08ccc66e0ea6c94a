"""Remote: push, pull and garbage-collect one notebook's history on a transport (remote layer).

Layout under the transport's root, for notebook ``NB``::

    NB/packs/<sha256>.pack     immutable records, created only if absent
    NB/indexes/<sha256>.idx    signed: the pack's hash, its records, the previous index(es)
    NB/refs/main               signed: the latest state and the newest index, replaced only by
                               compare-and-swap

A push uploads packs, then their indexes, then swaps the ref: until the swap nothing new is
reachable, so a push cut short is invisible (its objects are garbage for ``collect_garbage``
after a grace period). A push that finds states on the remote that the local store lacks is
refused ("pull first"); a pull stores the union of both histories (they are trees of commits,
so merging loses nothing) and moves the local HEAD only when the local store was behind.
The local store stays the source of truth for the running kernel.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timetravel_kernel.errors import (
    MissingObjectError,
    RemoteConflictError,
    RemoteCorruptError,
    RemoteNotFoundError,
    RemoteTrustError,
)
from timetravel_kernel.ids import CommitId
from timetravel_kernel.remote.fetch import PackReader
from timetravel_kernel.remote.packs import PackIndex, decode_index, index_name, walk_indexes
from timetravel_kernel.remote.signing import sign_document, split_signed_document
from timetravel_kernel.remote.upload import PackWriter, unsent_records
from timetravel_kernel.store.keys import is_kind
from timetravel_kernel.store.objects import decode_commit
from timetravel_kernel.store.refs import REF_HEAD, ref_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from timetravel_kernel.remote.signing import Signer
    from timetravel_kernel.remote.transport import Transport
    from timetravel_kernel.store.object_store import ObjectStore

__all__ = ["PullReport", "PushReport", "Remote", "RemoteGarbageReport", "RemoteRef"]

_REF_FORMAT = 1
_DAY = 86400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteRef:
    """The remote's ref: the state a new machine restores, and the newest index."""

    head: str | None
    index: str | None
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PushReport:
    """What a push sent (``requests`` and ``bytes_sent`` include reading the ref)."""

    records: int
    commits: int
    packs: int
    bytes_sent: int
    requests: int
    head: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PullReport:
    """What a pull stored, and whether the local HEAD moved to the remote's."""

    records: int
    commits: int
    bytes_received: int
    requests: int
    head: str | None
    head_moved: bool


@dataclass(frozen=True, slots=True)
class RemoteGarbageReport:
    """Objects ``collect_garbage`` deleted, and unreferenced ones kept for the grace period."""

    deleted: int
    kept_in_grace: int


class Remote:
    """One notebook's history on a transport, and what this process knows of it.

    Args:
        transport: where the objects live.
        notebook: the notebook's name on the remote (see ``notebook_remote_name``).
        signer: signs what is pushed and checks what is read.
        trust: accept indexes and refs whose signature does not verify (records are still
            checked against their ids and packs against their hashes).
        branch: the ref's name.
    """

    def __init__(self, transport: Transport, notebook: str, *, signer: Signer,
                 trust: bool = False, branch: str = "main") -> None:
        self.transport = transport
        self.notebook = notebook.strip("/")
        self.signer = signer
        self.trust = trust
        self._ref_path = f"{self.notebook}/refs/{branch}"
        self._lock = threading.Lock()
        self._indexes: dict[str, PackIndex] = {}
        self._remote_keys: set[bytes] = set()

    @property
    def url(self) -> str:
        """Where this history lives, for messages (no credentials)."""
        return f"{self.transport.url.rstrip('/')}/{self.notebook}"

    # -- reading ------------------------------------------------------------------------
    def _verified_body(self, data: bytes, what: str, *, verify: bool = True) -> bytes:
        body, signature = split_signed_document(data, what)
        if verify and not self.trust and not self.signer.is_valid(body, signature):
            raise RemoteTrustError(
                f"{what} at {self.url} is not signed with this machine's key, so its states "
                "are not loaded (loading a state can run code). Use the same signing key on "
                "both machines (the remote's key_file option), or pass --trust "
                "(TimeTravelKernel.remote_trust) if you trust everyone who can write there")
        return body

    def read_ref(self, *, verify: bool = True) -> tuple[RemoteRef | None, str | None]:
        """Return the remote's ref and its version tag ((None, None) when nothing was pushed).

        Raises:
            RemoteTrustError: the ref's signature does not verify (and not ``trust``).
            RemoteCorruptError: the ref is unreadable.
        """
        found = self.transport.get(self._ref_path)
        if found is None:
            return None, None
        body = self._verified_body(found.data, "the history's ref", verify=verify)
        try:
            record = json.loads(body)
            ref = RemoteRef(head=record["head"], index=record["index"], time=record["time"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteCorruptError(f"the ref at {self.url} is unreadable: {exc}") from exc
        return ref, found.tag

    def _learn(self, ref: RemoteRef | None, *, verify: bool = True
               ) -> list[tuple[str, PackIndex]]:
        """Read the indexes reachable from ``ref`` that this process has not seen, newest first.

        Nothing is remembered until ``_remember``: an operation that fails half-way must find
        the same indexes new next time.
        """
        def read(name: str) -> PackIndex | None:
            return None if name in self._indexes else self._read_index(name, verify=verify)

        walk = walk_indexes(ref.index if ref else None, read)
        return [(name, index) for name, index in walk if name not in self._indexes]

    def _read_index(self, name: str, *, verify: bool) -> PackIndex:
        """Read one index and check it against its name (and its signature, with ``verify``).

        Raises:
            RemoteCorruptError: it is missing, damaged or unreadable.
            RemoteTrustError: its signature does not verify (and not ``trust``).
        """
        found = self.transport.get(f"{self.notebook}/indexes/{name}.idx")
        if found is None:
            raise RemoteCorruptError(f"pack index {name[:12]} is missing at {self.url}; the "
                                     "history there is damaged")
        body = self._verified_body(found.data, f"pack index {name[:12]}", verify=verify)
        if index_name(body) != name:
            raise RemoteCorruptError(f"pack index {name[:12]} at {self.url} does not match "
                                     "its name (tampered with or damaged)")
        return decode_index(body, name[:12])

    def _remember(self, indexes: list[tuple[str, PackIndex]]) -> None:
        for name, index in indexes:
            self._indexes[name] = index
            self._remote_keys.update(index.records)

    # -- push ---------------------------------------------------------------------------
    def push(self, store: ObjectStore, *, progress: Callable[[int, int], None] | None = None
             ) -> PushReport:
        """Send the records the remote lacks and move its ref to the local HEAD.

        Raises:
            RemoteConflictError: the remote has states this store lacks, or moved during the
                push: pull first, then push again.
            RemoteError: the remote cannot be used (subclasses say why).
        """
        with self._lock:
            requests, sent = self.transport.requests, self.transport.bytes_sent
            ref, tag = self.read_ref()
            learned = self._learn(ref)
            lacking = [k for _, index in learned for k in index.commit_keys()
                       if not store.backend.has(k)]
            if lacking:
                raise RemoteConflictError(
                    f"{self.url} has {len(lacking)} states this store lacks (pushed from "
                    "elsewhere): pull first, then push again")
            self._remember(learned)
            head = store.read_ref(REF_HEAD)
            records, expected = unsent_records(store, self._remote_keys)
            head_hex = head.hex() if head else None
            latest = ref.index if ref else None
            uploaded: list[tuple[str, PackIndex]] = []
            if records or ref is None or ref.head != head_hex:
                uploaded = PackWriter(self.transport, self.notebook, self.signer).upload(
                    store, records, latest, self._indexes, expected, progress)
                latest = uploaded[-1][0] if uploaded else latest
                new_ref = json.dumps({"format": _REF_FORMAT, "head": head_hex, "index": latest,
                                      "time": time.time()}).encode()
                try:
                    self.transport.put_if_tag(self._ref_path, sign_document(new_ref, self.signer),
                                              tag)
                except RemoteConflictError:
                    raise RemoteConflictError(
                        f"{self.url} moved while pushing (another machine pushed): pull first, "
                        "then push again") from None
                self._remember(uploaded)
            return PushReport(
                records=len(records), commits=sum(1 for k, _ in records if is_kind(k, "commit")),
                packs=len(uploaded), bytes_sent=self.transport.bytes_sent - sent,
                requests=self.transport.requests - requests, head=head_hex)

    # -- pull ---------------------------------------------------------------------------
    def pull(self, store: ObjectStore, *, move_head: bool = True, only_head: bool = False,
             commit_lock: AbstractContextManager[object] | None = None,
             progress: Callable[[int, int], None] | None = None) -> PullReport:
        """Store the remote's records this store lacks; move HEAD if the store was behind.

        Args:
            store: the local store.
            move_head: set HEAD to the remote's when the local one is unset or its ancestor.
            only_head: fetch only what the remote's latest state needs, and of the commits only
                that one (a kernel on a new machine restores it at once; its history follows
                with the next full pull, which the next push asks for).
            commit_lock: held while the commits (and HEAD) are written: records go in first,
                without it, so a kernel's checkpoints wait only for that last small batch.
            progress: called with (bytes done, bytes in all) after each pack.

        Raises:
            RemoteNotFoundError: nothing was ever pushed for this notebook.
            RemoteTrustError, RemoteCorruptError: nothing unverified is stored.
            RemoteError: the remote cannot be used.
        """
        with self._lock:
            requests, received = self.transport.requests, self.transport.bytes_received
            ref, _ = self.read_ref()
            if ref is None:
                raise RemoteNotFoundError(f"no history has been pushed to {self.url}")
            learned = self._learn(ref)
            indexes = [i for _, i in learned if i.pack]
            reader = PackReader(self.transport, self.notebook, self.url)
            if only_head and ref.head:
                stored, commits = reader.fetch_closure(store, bytes.fromhex(ref.head),
                                                       [*self._indexes.values(), *indexes])
            else:
                stored, commits = reader.fetch_packs(store, indexes, progress)
            puts = list(commits)
            moved = False
            if move_head and ref.head and self._is_behind(store, bytes.fromhex(ref.head), commits):
                puts.append((ref_key(REF_HEAD), bytes.fromhex(ref.head)))
                moved = True
            if puts:
                store.backend.flush()
                with commit_lock or nullcontext():
                    store.backend.write_batch(puts)
            if not only_head:
                self._remember(learned)
            return PullReport(records=stored, commits=len(commits),
                              bytes_received=self.transport.bytes_received - received,
                              requests=self.transport.requests - requests, head=ref.head,
                              head_moved=moved)

    def _is_behind(self, store: ObjectStore, remote_head: bytes,
                   incoming: list[tuple[bytes, bytes]]) -> bool:
        """Return whether the local HEAD is unset or an ancestor of the remote's HEAD."""
        local = store.read_ref(REF_HEAD)
        if local is None:
            return True
        if local == remote_head:
            return False
        new = {k[1:]: decode_commit(v) for k, v in incoming}
        current: bytes | None = remote_head
        while current is not None:
            if current == local:
                return True
            commit = new.get(current)
            if commit is None:
                try:
                    commit = store.load_commit(CommitId(current))
                except MissingObjectError:
                    return False
            current = commit.parent
        return False

    # -- garbage --------------------------------------------------------------------------
    def collect_garbage(self, *, grace_seconds: float = _DAY, now: float | None = None
                        ) -> RemoteGarbageReport:
        """Delete packs and indexes the ref does not reach, once older than the grace period.

        The grace period protects pushes in flight elsewhere: their packs and indexes exist
        before the ref names them.
        """
        with self._lock:
            ref, _ = self.read_ref(verify=False)
            known = {**self._indexes, **dict(self._learn(ref, verify=False))}
            live = dict(walk_indexes(ref.index if ref else None, known.get))
            live_packs = {index.pack for index in live.values() if index.pack}
            now = time.time() if now is None else now
            deleted = kept = 0
            for folder, keep in (("packs", live_packs), ("indexes", live)):
                for info in list(self.transport.list(f"{self.notebook}/{folder}/")):
                    stem = info.path.rsplit("/", 1)[-1].split(".", 1)[0]
                    if stem in keep:
                        continue
                    if now - info.modified < grace_seconds:
                        kept += 1
                        continue
                    self.transport.delete(info.path)
                    deleted += 1
            return RemoteGarbageReport(deleted, kept)
