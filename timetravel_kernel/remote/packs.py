"""Packs and their indexes: how records travel to a remote (remote layer).

A push writes its records, exactly as the local store holds them, into one or more immutable
pack files named by their SHA-256, each described by a small signed index (which records it
holds, at which offsets, and the pack's hash). Indexes name the index(es) that were the remote's
latest before them, so the indexes form a graph like commits do: the remote's ref names only the
newest, and a reader walks back until it meets indexes it knows. A push is therefore a handful
of requests, not one per chunk, and an index is small enough to read before any pack.

So that a new machine never walks a long chain one request at a time, every
``SUMMARY_DEPTH``-th push also writes a summary index: no pack of its own, no parents, and a
copy of every index before it; a reader stops there.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from timetravel_kernel.errors import RemoteCorruptError, StoreCorruptError
from timetravel_kernel.ids import hash_bytes
from timetravel_kernel.store.codec import decode_chunk
from timetravel_kernel.store.keys import KEY_PREFIXES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = [
    "BLOCK_BYTES",
    "MAX_PACK_BYTES",
    "SUMMARY_DEPTH",
    "PackIndex",
    "block_digests",
    "block_spans",
    "decode_index",
    "encode_index",
    "index_name",
    "pack_name",
    "pack_records",
    "read_pack",
    "read_ranges",
    "record_problem",
    "verify_record",
    "walk_indexes",
]

# One request per 16 MiB: measured on loopback SeaweedFS, larger bodies gain nothing and
# smaller ones pay ~13 ms per request (NOTES.md).
MAX_PACK_BYTES = 16 << 20
# A new machine reads at most this many indexes one after another (each a request, ~20 ms on
# S3) before a summary; a summary costs the size of all indexes once per this many pushes.
SUMMARY_DEPTH = 32
# Ranged reads fetch and verify whole blocks of this size: ~70 bytes of index per 64 KiB of
# pack, and at most a block read beyond each end of a range.
BLOCK_BYTES = 64 << 10
_FORMAT = 1
_SYNCED_KINDS = {KEY_PREFIXES[k][0] for k in ("chunk", "covar", "tree", "commit")}
_COMMIT_PREFIX = KEY_PREFIXES["commit"][0]


@dataclass(frozen=True, slots=True, kw_only=True)
class PackIndex:
    """What one pack holds: ``records`` maps a store key to (offset, length) in the pack.

    ``blocks`` holds the SHA-256 of each ``BLOCK_BYTES`` block of the pack, so that a reader
    can fetch some records by byte range (whole blocks) and still check them against the
    signed index (store ids are xxh3, not made to resist forgery); a digest per block, not per
    record, keeps indexes of many small records small. ``depth`` counts the indexes since the
    last summary.
    A summary has no pack (``pack`` is empty), no parents, and ``embedded`` holds every earlier
    index by name.
    """

    pack: str
    size: int
    parents: tuple[str, ...]
    records: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    depth: int = 1
    embedded: dict[str, PackIndex] = field(default_factory=dict)
    blocks: tuple[str, ...] = ()

    def commit_keys(self) -> list[bytes]:
        """Return the keys of the commits this pack holds."""
        return [k for k in self.records if k[0] == _COMMIT_PREFIX]


def _index_record(index: PackIndex) -> dict[str, object]:
    record: dict[str, object] = {
        "format": _FORMAT,
        "pack": index.pack,
        "size": index.size,
        "parents": list(index.parents),
        "depth": index.depth,
        "records": [[k.hex(), off, length] for k, (off, length) in index.records.items()],
    }
    if index.blocks:
        record["blocks"] = list(index.blocks)
    if index.embedded:
        record["embedded"] = {n: _index_record(i) for n, i in sorted(index.embedded.items())}
    return record


def _parse_index(record: dict[str, object], name: str) -> PackIndex:
    if record["format"] != _FORMAT:
        raise RemoteCorruptError(
            f"pack index {name} has format {record['format']}; upgrade timetravel-kernel")
    records = {bytes.fromhex(k): (int(o), int(n))
               for k, o, n in record["records"]}  # type: ignore[attr-defined]
    embedded = record.get("embedded") or {}
    return PackIndex(pack=str(record["pack"]), size=int(record["size"]),  # type: ignore[call-overload]
                     parents=tuple(str(p) for p in record["parents"]),  # type: ignore[attr-defined]
                     records=records, depth=int(record.get("depth", 1)),  # type: ignore[call-overload]
                     embedded={str(n): _parse_index(i, name)
                               for n, i in embedded.items()},  # type: ignore[attr-defined]
                     blocks=tuple(str(b) for b in record.get("blocks") or ()))  # type: ignore[attr-defined]


def encode_index(index: PackIndex) -> bytes:
    """Return the index body (unsigned), compact JSON with keys in hex."""
    return json.dumps(_index_record(index), separators=(",", ":")).encode()


def decode_index(body: bytes, name: str) -> PackIndex:
    """Return the index from its body.

    Raises:
        RemoteCorruptError: the body is not an index of a format this version reads.
    """
    try:
        return _parse_index(json.loads(body), name)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RemoteCorruptError(f"pack index {name} is unreadable: {exc}") from exc


def index_name(body: bytes) -> str:
    """Return the name of an index: the SHA-256 of its body (unsigned)."""
    return hashlib.sha256(body).hexdigest()


def walk_indexes(start: str | None, read: Callable[[str], PackIndex | None]
                 ) -> Iterator[tuple[str, PackIndex]]:
    """Yield every index reachable from ``start``, each once, newest first.

    The one walk of the index graph (what a reader learns, what a summary holds, what garbage
    collection keeps). ``read`` returns an index by name, or None where the walk stops (an
    index known already). A summary's copies come as they are and are not followed: a summary
    holds every index before it.
    """
    queue = deque([start] if start else [])
    seen: set[str] = set()
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        index = read(name)
        if index is None:
            continue
        yield name, index
        queue.extend(index.parents)
        for copied, copy in index.embedded.items():
            if copied not in seen:
                seen.add(copied)
                yield copied, copy


def pack_records(
    records: Iterable[tuple[bytes, bytes]], max_bytes: int = MAX_PACK_BYTES
) -> Iterator[tuple[bytes, dict[bytes, tuple[int, int]]]]:
    """Yield packs (bytes, key -> (offset, length)) holding ``records``, each ~``max_bytes``.

    Lazy: a pack is made once its records are read, so a push holds a few packs, not its
    history.
    """
    parts: list[bytes] = []
    offsets: dict[bytes, tuple[int, int]] = {}
    size = 0
    for key, value in records:
        if parts and size + len(value) > max_bytes:
            yield b"".join(parts), offsets
            parts, offsets, size = [], {}, 0
        offsets[key] = (size, len(value))
        parts.append(value)
        size += len(value)
    if parts:
        yield b"".join(parts), offsets


def block_digests(pack: bytes) -> tuple[str, ...]:
    """Return the SHA-256 of each ``BLOCK_BYTES`` block of a pack, for its index."""
    view = memoryview(pack)
    return tuple(hashlib.sha256(view[start : start + BLOCK_BYTES]).hexdigest()
                 for start in range(0, len(pack), BLOCK_BYTES))


def pack_name(pack: bytes) -> str:
    """Return the name of a pack: its SHA-256 (cryptographic, as the signed index vouches)."""
    return hashlib.sha256(pack).hexdigest()


def record_problem(key: bytes, value: bytes | memoryview) -> str | None:
    """Return why a record's bytes do not match the id in its key (None: they match)."""
    if not key or key[0] not in _SYNCED_KINDS:
        return f"holds a record {key[:1]!r} that never travels"
    try:
        content = decode_chunk(value) if key[:1] == KEY_PREFIXES["chunk"] else value
    except StoreCorruptError as exc:
        return f"holds record {key[1:].hex()}, which {exc}"
    if hash_bytes(content) != key[1:]:
        return f"holds record {key[1:].hex()}, which does not match its id"
    return None


def verify_record(key: bytes, value: bytes | memoryview) -> None:
    """Check that a record's bytes (read from a remote) match the id in its key.

    Raises:
        RemoteCorruptError: they do not, or the key is not a record that travels.
    """
    problem = record_problem(key, value)
    if problem is not None:
        raise RemoteCorruptError(f"a pack from the remote {problem}; nothing from that pack "
                                 "was stored")


def read_pack(pack: bytes, index: PackIndex) -> list[tuple[bytes, bytes]]:
    """Return the records of a pack, each verified against its id and the pack's hash.

    Raises:
        RemoteCorruptError: the pack is not the one its index names, or a record is damaged.
    """
    if len(pack) != index.size or pack_name(pack) != index.pack:
        raise RemoteCorruptError(
            f"pack {index.pack[:12]} does not match its index (tampered with or damaged); "
            "nothing from it was stored")
    records = []
    for key, (offset, length) in index.records.items():
        value = pack[offset : offset + length]
        verify_record(key, value)
        records.append((key, value))
    return records


def read_ranges(spans: list[tuple[int, int]], data: list[bytes], index: PackIndex
                ) -> dict[bytes, bytes]:
    """Return every record of a pack that lies inside the byte ranges read, each verified.

    ``spans`` are (start, end) ranges on block boundaries (see ``block_spans``) and ``data``
    their bytes; each block is checked against the SHA-256 the signed index names for it, then
    each record against its id. Every record the ranges hold comes, not only the wanted ones
    (a reader walking level by level needs them next, and they were paid for).

    Raises:
        RemoteCorruptError: a range is short or does not match the index, or a record its id.
    """
    records: dict[bytes, bytes] = {}
    for (start, end), part in zip(spans, data, strict=True):
        blocks = range(start // BLOCK_BYTES, -(-end // BLOCK_BYTES))
        if len(part) != end - start or any(
                hashlib.sha256(part[b * BLOCK_BYTES - start : (b + 1) * BLOCK_BYTES - start]
                               ).hexdigest() != index.blocks[b] for b in blocks):
            raise RemoteCorruptError(
                f"bytes {start}-{end} of pack {index.pack[:12]} do not match its signed index "
                "(tampered with or damaged); nothing from that pack was stored")
        for key, (offset, length) in index.records.items():
            if start <= offset and offset + length <= end:
                value = bytes(part[offset - start : offset - start + length])
                verify_record(key, value)
                records[key] = value
    return records


def block_spans(ranges: list[tuple[int, int]], index: PackIndex, gap: int
                ) -> list[tuple[int, int]]:
    """Return (start, end) spans of whole blocks covering the (offset, length) ranges.

    Spans less than ``gap`` apart are merged: a request costs about as much as a megabyte.
    """
    spans: list[tuple[int, int]] = []
    for offset, length in sorted(ranges):
        start = offset // BLOCK_BYTES * BLOCK_BYTES
        end = min(-(-(offset + length) // BLOCK_BYTES) * BLOCK_BYTES, index.size)
        if spans and start - spans[-1][1] <= gap:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans
