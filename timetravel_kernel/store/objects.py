"""Stored records: covariable manifests, namespace trees and commits, with their encodings.

Every record is named by the xxh3_128 of its encoding (as git names objects by their hash), so
an unchanged value, an alias or a repeated state costs nothing to store again.
"""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import xxhash

from timetravel_kernel.errors import StoreCorruptError
from timetravel_kernel.ids import ID_SIZE, ChunkId, CommitId, CovarId, TreeId, hash_bytes

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "TREE_FANOUT",
    "BufferRef",
    "Commit",
    "Covar",
    "Serializer",
    "Status",
    "bucket_index",
    "covar_id",
    "decode_bucket",
    "decode_commit",
    "decode_covar",
    "decode_tree_root",
    "encode_bucket",
    "encode_commit",
    "encode_covar",
    "encode_tree_root",
]

Serializer = Literal["pickle", "dill", "unsaved"]
Status = Literal["ok", "error"]

# A namespace tree is split into this many buckets by name hash, so a cell that changes two of
# 3000 names rewrites two small buckets and a 1 KiB root, not the whole name table.
TREE_FANOUT = 64
_EMPTY_SLOT = bytes(ID_SIZE)
_HEADER = struct.Struct("<4sI")
_COVAR_MAGIC = b"TTV1"
_NAME_LEN = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class BufferRef:
    """One serialized buffer: held inline when small, else as a list of content chunks."""

    size: int
    inline: bytes | None = None
    chunks: tuple[ChunkId, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Covar:
    """A co-variable version: the names stored together and how to load them.

    ``buffers[0]`` is the pickle stream (the skeleton); the rest are its out-of-band buffers.
    ``refs`` are top-level names the stream refers to by name (notebook classes and
    functions), which must be in place before it loads. Chunked out-of-band buffers are cut
    every ``chunk_size`` bytes; the stream where its content says (chunks of any size). An
    ``unsaved`` covar has no buffers, a ``reason`` and a ``token`` that tells apart two
    unsaveable objects of the same kind; ``revival`` is set when every member described
    itself well enough to be reconnected (a file, a sqlite3 file connection, a lock, an event)
    instead of rebuilt by re-running.
    """

    members: tuple[str, ...]
    serializer: Serializer
    types: tuple[str, ...]
    nbytes: int
    buffers: tuple[BufferRef, ...] = ()
    refs: tuple[str, ...] = ()
    reason: str | None = None
    token: str | None = None
    chunk_size: int = 0
    revival: tuple[Mapping[str, object], ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """One checkpoint: the namespace tree after a cell, and the cell that led there.

    ``unsaved_made`` and ``unsaved_used`` are the lineage of unsaveable values: the names of
    those this cell made, and of those it may have used (read, advanced, written), so a rebuild
    knows which recorded cells to run again. ``cells`` is how many cells ran between the
    parent and this commit (more than one when they were folded into one checkpoint while a
    background one was still being saved); ``code`` is then theirs, in order.
    """

    parent: CommitId | None
    tree: TreeId
    code: str = ""
    cell_id: str | None = None
    execution_count: int | None = None
    cells: int = 1
    time: float = 0.0
    duration: float = 0.0
    status: Status = "ok"
    changed: tuple[str, ...] = ()
    bytes_written: int = 0
    unsaved_made: tuple[str, ...] = ()
    unsaved_used: tuple[str, ...] = ()
    id: CommitId = field(default=CommitId(b""), compare=False)


def encode_covar(covar: Covar) -> bytes:
    """Return the stored form of a covar: a JSON header, then inline bytes and chunk ids."""
    header = {
        "members": covar.members,
        "serializer": covar.serializer,
        "types": covar.types,
        "nbytes": covar.nbytes,
        "refs": covar.refs,
        "reason": covar.reason,
        "token": covar.token,
        "chunk_size": covar.chunk_size,
        "buffers": [[b.size, -1 if b.inline is not None else len(b.chunks)] for b in covar.buffers],
    }
    if covar.revival is not None:  # only when present: earlier versions keep their ids
        header["revival"] = covar.revival
    head = json.dumps(header, separators=(",", ":")).encode()
    body = [b.inline if b.inline is not None else b"".join(b.chunks) for b in covar.buffers]
    return b"".join([_HEADER.pack(_COVAR_MAGIC, len(head)), head, *body])


def covar_id(covar: Covar) -> CovarId:
    """Return the id a covar has in the store (the hash of its encoding)."""
    return CovarId(hash_bytes(encode_covar(covar)))


def decode_covar(data: bytes) -> Covar:
    """Return the covar from its stored form.

    Raises:
        StoreCorruptError: the bytes are not a covar manifest.
    """
    try:
        magic, head_len = _HEADER.unpack_from(data)
        if magic != _COVAR_MAGIC:
            raise ValueError("bad magic")
        offset = _HEADER.size + head_len
        header = json.loads(data[_HEADER.size : offset])
        buffers = []
        for size, count in header["buffers"]:
            if count < 0:
                buffers.append(BufferRef(size, inline=bytes(data[offset : offset + size])))
                offset += size
            else:
                ids = data[offset : offset + count * ID_SIZE]
                chunks = tuple(ChunkId(ids[i : i + ID_SIZE]) for i in range(0, len(ids), ID_SIZE))
                buffers.append(BufferRef(size, chunks=chunks))
                offset += count * ID_SIZE
        return Covar(
            members=tuple(header["members"]),
            serializer=header["serializer"],
            types=tuple(header["types"]),
            nbytes=header["nbytes"],
            buffers=tuple(buffers),
            refs=tuple(header["refs"]),
            reason=header["reason"],
            token=header["token"],
            chunk_size=header["chunk_size"],
            revival=tuple(header["revival"]) if header.get("revival") else None,
        )
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise StoreCorruptError(f"a covariable manifest is unreadable: {exc}") from exc


@functools.lru_cache(maxsize=1 << 16)
def bucket_index(name: str) -> int:
    """Return the tree bucket that holds ``name`` (cached: a checkpoint asks for every name)."""
    return xxhash.xxh3_64_intdigest(name.encode()) % TREE_FANOUT


def encode_bucket(entries: Mapping[str, CovarId]) -> bytes:
    """Return the stored form of one tree bucket (names sorted, so equal buckets hash equal)."""
    parts = []
    for name in sorted(entries):
        raw = name.encode()
        parts += [_NAME_LEN.pack(len(raw)), raw, entries[name]]
    return b"".join(parts)


def decode_bucket(data: bytes) -> dict[str, CovarId]:
    """Return the name -> covar id entries of one tree bucket."""
    entries: dict[str, CovarId] = {}
    offset = 0
    try:
        while offset < len(data):
            (length,) = _NAME_LEN.unpack_from(data, offset)
            offset += _NAME_LEN.size
            name = data[offset : offset + length].decode()
            offset += length
            entries[name] = CovarId(bytes(data[offset : offset + ID_SIZE]))
            offset += ID_SIZE
    except (struct.error, UnicodeDecodeError) as exc:
        raise StoreCorruptError(f"a namespace tree bucket is unreadable: {exc}") from exc
    return entries


def encode_tree_root(buckets: Sequence[TreeId | None]) -> bytes:
    """Return the stored form of a tree root: one bucket id (or zeros) per slot."""
    return b"".join(_EMPTY_SLOT if b is None else b for b in buckets)


def decode_tree_root(data: bytes) -> list[TreeId | None]:
    """Return the bucket ids of a tree root (None for an empty slot)."""
    if len(data) != TREE_FANOUT * ID_SIZE:
        raise StoreCorruptError("a namespace tree root has the wrong size")
    slots = [data[i : i + ID_SIZE] for i in range(0, len(data), ID_SIZE)]
    return [None if s == _EMPTY_SLOT else TreeId(bytes(s)) for s in slots]


def encode_commit(commit: Commit) -> bytes:
    """Return the stored form of a commit (its id is the hash of these bytes)."""
    record = {
        "parent": commit.parent.hex() if commit.parent else None,
        "tree": commit.tree.hex(),
        "code": commit.code,
        "cell_id": commit.cell_id,
        "execution_count": commit.execution_count,
        "time": commit.time,
        "duration": commit.duration,
        "status": commit.status,
        "changed": commit.changed,
        "bytes_written": commit.bytes_written,
    }
    # Only when present, so commits without lineage keep the ids they always had.
    if commit.unsaved_made:
        record["unsaved_made"] = commit.unsaved_made
    if commit.unsaved_used:
        record["unsaved_used"] = commit.unsaved_used
    if commit.cells != 1:
        record["cells"] = commit.cells
    return json.dumps(record, separators=(",", ":"), sort_keys=True).encode()


def decode_commit(data: bytes) -> Commit:
    """Return the commit from its stored form, with its id.

    Raises:
        StoreCorruptError: the bytes are not a commit.
    """
    try:
        record = json.loads(data)
        return Commit(
            parent=CommitId(bytes.fromhex(record["parent"])) if record["parent"] else None,
            tree=TreeId(bytes.fromhex(record["tree"])),
            code=record["code"],
            cell_id=record["cell_id"],
            execution_count=record["execution_count"],
            cells=int(record.get("cells", 1)),
            time=record["time"],
            duration=record["duration"],
            status=record["status"],
            changed=tuple(record["changed"]),
            bytes_written=record["bytes_written"],
            unsaved_made=tuple(record.get("unsaved_made", ())),
            unsaved_used=tuple(record.get("unsaved_used", ())),
            id=CommitId(hash_bytes(data)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreCorruptError(f"a commit record is unreadable: {exc}") from exc
