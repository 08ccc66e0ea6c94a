"""Spools: a cell's state written to a plain file when its kernel died first (store layer).

A background snapshot is a forked copy of the kernel that sends its records to the kernel
over a pipe. When the kernel dies before it has committed them (an OOM kill a second after
the cell), the snapshot finishes on its own: it writes the whole state of its cell to a spool
file beside the database, in the same frames it sends over the pipe, ending with a checksum,
and renames the file from ``.part`` to ``.spool`` once complete. The next opener commits every
complete spool (``ingest_spools``) before it looks for the state to restore, waiting a while
for writers that are still at work. So a state whose snapshot was taken is not lost with the
process that took it.

Frames are ``(kind: u8, length: u64)`` and the payload; the same codec serves the pipe.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import xxhash

from timetravel_kernel.errors import StoreCorruptError
from timetravel_kernel.ids import ID_SIZE, ChunkId, CommitId, CovarId
from timetravel_kernel.store.objects import Commit, Covar, decode_covar, encode_covar
from timetravel_kernel.store.refs import REF_HEAD
from timetravel_kernel.store.tree import NamespaceTree

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from timetravel_kernel.store.object_store import ObjectStore

__all__ = [
    "ABSENT",
    "CHUNK",
    "COVAR",
    "DONE",
    "FAILED",
    "FRAME",
    "HEADER",
    "IngestedSpool",
    "SpoolHeader",
    "SpoolWriter",
    "absent_payload",
    "chunk_payload",
    "decode_absent",
    "decode_chunk",
    "ingest_spools",
    "read_frames",
    "spool_name",
]

FRAME = struct.Struct("<BQ")
DONE = 0
"""Frame kind: the end; over a pipe empty, in a spool the checksum of everything before."""
CHUNK = 1
"""Frame kind: a chunk id and its stored (encoded) bytes."""
COVAR = 2
"""Frame kind: an encoded co-variable manifest."""
HEADER = 3
"""Frame kind: a spool's header (JSON: the cell, when it ran, the state it builds on)."""
ABSENT = 4
"""Frame kind: the names a snapshot was to examine that do not exist (JSON list)."""
FAILED = 255
"""Frame kind: the writer failed; the payload says why (UTF-8)."""
_READ_SIZE = 1 << 20
_PART = ".part"
_DONE_SUFFIX = ".spool"
_POLL_SECONDS = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolHeader:
    """The cell a spool's state follows, and where its commit goes.

    ``base`` is the last commit the kernel had made when the snapshot was taken: the spool's
    commit follows HEAD, or ``base`` when HEAD has moved past the crash since.
    """

    code: str
    cell_id: str | None
    execution_count: int | None
    status: str
    duration: float
    time: float
    base: str | None

    def encode(self) -> bytes:
        """Return the header frame's payload."""
        return json.dumps({
            "code": self.code, "cell_id": self.cell_id,
            "execution_count": self.execution_count, "status": self.status,
            "duration": self.duration, "time": self.time, "base": self.base,
        }).encode()

    @classmethod
    def decode(cls, data: bytes) -> SpoolHeader:
        """Parse a header frame's payload.

        Raises:
            StoreCorruptError: it is not a header this version writes.
        """
        try:
            fields = json.loads(data)
            return cls(code=str(fields["code"]), cell_id=fields["cell_id"],
                       execution_count=fields["execution_count"],
                       status="error" if fields["status"] == "error" else "ok",
                       duration=float(fields["duration"]), time=float(fields["time"]),
                       base=fields["base"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreCorruptError(f"a spool's header does not parse ({exc})") from None


def chunk_payload(chunk_id: ChunkId, stored: bytes) -> bytes:
    """Return a CHUNK frame's payload."""
    return chunk_id + stored


def decode_chunk(payload: memoryview | bytes) -> tuple[ChunkId, bytes]:
    """Return the chunk id and stored bytes a CHUNK frame carries."""
    return ChunkId(bytes(payload[:ID_SIZE])), bytes(payload[ID_SIZE:])


def absent_payload(names: Iterable[str]) -> bytes:
    """Return an ABSENT frame's payload."""
    return json.dumps(list(names)).encode()


def decode_absent(payload: memoryview | bytes) -> list[str]:
    """Return the names an ABSENT frame carries."""
    return [str(name) for name in json.loads(bytes(payload))]


def spool_name(session: str, seq: int, pid: int) -> str:
    """Return the file name process ``pid`` writes a spool under (they sort oldest first)."""
    return f"{session}-{seq:08d}-{pid}{_PART}"


def read_frames(read: Callable[[int], bytes]) -> Iterator[tuple[int, memoryview]]:
    """Yield ``(kind, payload)`` frames from a byte source until it ends (``read`` -> b"").

    The payload is a view valid until the next frame is asked for.
    """
    buffer = bytearray()
    while True:
        data = read(_READ_SIZE)
        if not data:
            if buffer:
                raise StoreCorruptError("the frames end in the middle of a frame")
            return
        buffer += data
        offset = 0
        while len(buffer) - offset >= FRAME.size:
            kind, size = FRAME.unpack_from(buffer, offset)
            end = offset + FRAME.size + size
            if len(buffer) < end:
                break
            payload = memoryview(buffer)[offset + FRAME.size : end]
            try:
                yield kind, payload
            finally:
                payload.release()
            offset = end
        del buffer[:offset]


class SpoolWriter:
    """Writes one spool file: header, chunks, manifests, then the checksum and the rename.

    Args:
        folder: the store's spool folder (created private if missing).
        name: the file's name while it is written (``spool_name``).
        header: the cell the state follows.
    """

    def __init__(self, folder: Path, name: str, header: SpoolHeader) -> None:
        folder.mkdir(mode=0o700, exist_ok=True)
        self._path = folder / name
        self._file: BinaryIO = open(self._path, "wb")  # noqa: SIM115 - closed by finish/abort
        os.fchmod(self._file.fileno(), 0o600)
        self._hash = xxhash.xxh3_128()
        self.write(HEADER, header.encode())

    def write(self, kind: int, payload: bytes | memoryview) -> None:
        """Append a frame (and count it in the checksum)."""
        head = FRAME.pack(kind, len(payload))
        self._hash.update(head)
        self._hash.update(payload)
        self._file.write(head)
        self._file.write(payload)

    def write_chunk(self, chunk_id: ChunkId, stored: bytes) -> None:
        """Append a chunk in its stored form."""
        self.write(CHUNK, chunk_payload(chunk_id, stored))

    def write_covar(self, covar: Covar) -> None:
        """Append a co-variable manifest."""
        self.write(COVAR, encode_covar(covar))

    def finish(self) -> Path:
        """Write the checksum, make the file durable and give it its final name."""
        digest = self._hash.digest()
        self._file.write(FRAME.pack(DONE, len(digest)))
        self._file.write(digest)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self._path.with_name(self._path.name.removesuffix(_PART) + _DONE_SUFFIX)
        os.replace(self._path, final)
        folder = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return final

    def abort(self) -> None:
        """Remove the unfinished file."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._path.unlink()


@dataclass(frozen=True, slots=True)
class IngestedSpool:
    """What opening a store did with one spool: its commit, or why it was dropped."""

    header: SpoolHeader | None
    commit: Commit | None
    problem: str | None = None


def _writer_alive(path: Path) -> bool:
    """Whether the process named in a ``.part`` file's name still runs."""
    try:
        pid = int(path.name.removesuffix(_PART).rsplit("-", 1)[1])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _wait_for_writers(folder: Path, wait_seconds: float) -> list[Path]:
    """Wait (at most ``wait_seconds``) while writers of ``.part`` files still run.

    Returns the ``.part`` files still being written when the wait ended; unfinished files of
    dead writers are removed (their state was never complete).
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        writing = []
        for part in sorted(folder.glob(f"*{_PART}")):
            if _writer_alive(part):
                writing.append(part)
            else:
                with contextlib.suppress(OSError):
                    part.unlink()
        if not writing or time.monotonic() >= deadline:
            return writing
        time.sleep(_POLL_SECONDS)


def _check_sum(path: Path) -> None:
    """Verify a spool's checksum without holding it in memory.

    Raises:
        StoreCorruptError: it is truncated or damaged.
    """
    digest = xxhash.xxh3_128()
    try:
        with open(path, "rb") as spool:
            for kind, payload in read_frames(spool.read):
                if kind == DONE:
                    if bytes(payload) != digest.digest() or spool.read(1):
                        break
                    return
                digest.update(FRAME.pack(kind, len(payload)))
                digest.update(payload)
    except StoreCorruptError as exc:
        raise StoreCorruptError(f"the spool {path.name} is damaged ({exc})") from None
    raise StoreCorruptError(f"the spool {path.name} is damaged (its checksum does not match)")


def _commit_spool(store: ObjectStore, path: Path, times: set[float]) -> IngestedSpool:
    """Commit one verified spool on top of HEAD (or its base, if HEAD moved on since)."""
    header: SpoolHeader | None = None
    covars: list[Covar] = []
    transaction = store.transaction()
    with open(path, "rb") as spool:
        for kind, payload in read_frames(spool.read):
            if kind == HEADER:
                header = SpoolHeader.decode(bytes(payload))
                if header.time in times:
                    return IngestedSpool(header, None, "already committed by its kernel")
            elif kind == CHUNK:
                transaction.add_encoded_chunk_if_new(*decode_chunk(payload))
            elif kind == COVAR:
                covars.append(decode_covar(bytes(payload)))
    if header is None:
        raise StoreCorruptError(f"the spool {path.name} has no header")
    missing = [c for covar in covars for b in covar.buffers for c in b.chunks
               if not transaction.has_chunk(c)]
    if missing:
        return IngestedSpool(header, None, f"{len(missing)} of its chunks are missing")
    changes: dict[str, CovarId | None] = {}
    made: list[str] = []
    for covar in covars:
        covar_id = transaction.add_covar(covar)
        changes.update(dict.fromkeys(covar.members, covar_id))
    tree, records = NamespaceTree.empty().updated(changes)
    transaction.add_tree_records(records)
    parent = _spool_parent(store, header)
    before = store.load_tree(parent.tree) if parent is not None else NamespaceTree.empty()
    changed = sorted({n for n, c in tree.items() if before.get(n) != c}
                     | {n for n, _ in before.items() if n not in tree})
    for covar in covars:
        if covar.serializer == "unsaved" and any(before.get(m) is None for m in covar.members):
            made.extend(covar.members)
    commit = Commit(parent=parent.id if parent is not None else None, tree=tree.root_id,
                    code=header.code, cell_id=header.cell_id,
                    execution_count=header.execution_count, time=header.time,
                    duration=header.duration,
                    status="error" if header.status == "error" else "ok",
                    changed=tuple(changed), unsaved_made=tuple(sorted(made)))
    return IngestedSpool(header, transaction.commit(commit, set_head=True))


def _spool_parent(store: ObjectStore, header: SpoolHeader) -> Commit | None:
    head_id = store.read_ref(REF_HEAD)
    head = store.load_commit(CommitId(head_id)) if head_id is not None else None
    if head is not None and head.time > header.time and header.base is not None:
        with contextlib.suppress(ValueError, StoreCorruptError, KeyError):
            return store.load_commit(CommitId(bytes.fromhex(header.base)))
    return head


def ingest_spools(store: ObjectStore, folder: Path | None, *,
                  wait_seconds: float = 60.0) -> list[IngestedSpool]:
    """Commit the spools snapshot processes of a dead kernel wrote, oldest first.

    Waits at most ``wait_seconds`` for writers still at work; a spool still being written
    after that stays for the next open. A damaged spool is moved aside (``.damaged``), never
    half-committed.
    """
    if folder is None or not folder.is_dir() or store.backend.read_only:
        return []
    _wait_for_writers(folder, wait_seconds)
    done = sorted(folder.glob(f"*{_DONE_SUFFIX}"))
    if not done:
        return []
    times = {commit.time for commit in store.iter_commits()}
    ingested = []
    for path in done:
        try:
            _check_sum(path)
            outcome = _commit_spool(store, path, times)
        except StoreCorruptError as exc:
            with contextlib.suppress(OSError):
                path.rename(path.with_suffix(".damaged"))
            ingested.append(IngestedSpool(None, None, str(exc)))
            continue
        if outcome.commit is not None:
            times.add(outcome.commit.time)
        ingested.append(outcome)
        path.unlink()
    return ingested

