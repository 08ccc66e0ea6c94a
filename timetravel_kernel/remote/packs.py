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
from dataclasses import dataclass, field

from timetravel_kernel.errors import RemoteCorruptError, StoreCorruptError
from timetravel_kernel.ids import hash_bytes
from timetravel_kernel.store.codec import decode_chunk
from timetravel_kernel.store.keys import KEY_PREFIXES

__all__ = [
    "MAX_PACK_BYTES",
    "SUMMARY_DEPTH",
    "PackIndex",
    "decode_index",
    "encode_index",
    "pack_name",
    "read_pack",
    "read_ranges",
    "record_digests",
    "split_into_packs",
    "verify_record",
]

# One request per 16 MiB: measured on loopback SeaweedFS, larger bodies gain nothing and
# smaller ones pay ~13 ms per request (NOTES.md).
MAX_PACK_BYTES = 16 << 20
# A new machine reads at most this many indexes one after another (each a request, ~20 ms on
# S3) before a summary; a summary costs the size of all indexes once per this many pushes.
SUMMARY_DEPTH = 32
_FORMAT = 1
_SYNCED_KINDS = {KEY_PREFIXES[k][0] for k in ("chunk", "covar", "tree", "commit")}
_COMMIT_PREFIX = KEY_PREFIXES["commit"][0]


@dataclass(frozen=True, slots=True, kw_only=True)
class PackIndex:
    """What one pack holds: ``records`` maps a store key to (offset, length) in the pack.

    ``digests`` maps a key to the SHA-256 of its record, so that a reader can fetch single
    records by byte range and still check them against the signed index (store ids are
    xxh3, not made to resist forgery). ``depth`` counts the indexes since the last summary.
    A summary has no pack (``pack`` is empty), no parents, and ``embedded`` holds every earlier
    index by name.
    """

    pack: str
    size: int
    parents: tuple[str, ...]
    records: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    depth: int = 1
    embedded: dict[str, PackIndex] = field(default_factory=dict)
    digests: dict[bytes, str] = field(default_factory=dict)

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
        "records": [[k.hex(), off, length, *([index.digests[k]] if k in index.digests else [])]
                    for k, (off, length) in index.records.items()],
    }
    if index.embedded:
        record["embedded"] = {n: _index_record(i) for n, i in sorted(index.embedded.items())}
    return record


def _parse_index(record: dict[str, object], name: str) -> PackIndex:
    if record["format"] != _FORMAT:
        raise RemoteCorruptError(
            f"pack index {name} has format {record['format']}; upgrade timetravel-kernel")
    records: dict[bytes, tuple[int, int]] = {}
    digests: dict[bytes, str] = {}
    for key, offset, length, *digest in record["records"]:  # type: ignore[attr-defined]
        records[bytes.fromhex(key)] = (int(offset), int(length))
        if digest:
            digests[bytes.fromhex(key)] = str(digest[0])
    embedded = record.get("embedded") or {}
    return PackIndex(pack=str(record["pack"]), size=int(record["size"]),  # type: ignore[call-overload]
                     parents=tuple(str(p) for p in record["parents"]),  # type: ignore[attr-defined]
                     records=records, depth=int(record.get("depth", 1)),  # type: ignore[call-overload]
                     embedded={str(n): _parse_index(i, name)
                               for n, i in embedded.items()},  # type: ignore[attr-defined]
                     digests=digests)


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


def split_into_packs(
    records: list[tuple[bytes, bytes]], max_bytes: int = MAX_PACK_BYTES
) -> list[tuple[bytes, dict[bytes, tuple[int, int]]]]:
    """Return packs (bytes, key -> (offset, length)) holding ``records``, each ~``max_bytes``."""
    packs: list[tuple[bytes, dict[bytes, tuple[int, int]]]] = []
    parts: list[bytes] = []
    offsets: dict[bytes, tuple[int, int]] = {}
    size = 0
    for key, value in records:
        if parts and size + len(value) > max_bytes:
            packs.append((b"".join(parts), offsets))
            parts, offsets, size = [], {}, 0
        offsets[key] = (size, len(value))
        parts.append(value)
        size += len(value)
    if parts:
        packs.append((b"".join(parts), offsets))
    return packs


def record_digests(pack: bytes, offsets: dict[bytes, tuple[int, int]]) -> dict[bytes, str]:
    """Return the SHA-256 of each record of a pack, for its index."""
    view = memoryview(pack)
    return {key: hashlib.sha256(view[offset : offset + length]).hexdigest()
            for key, (offset, length) in offsets.items()}


def pack_name(pack: bytes) -> str:
    """Return the name of a pack: its SHA-256 (cryptographic, as the signed index vouches)."""
    return hashlib.sha256(pack).hexdigest()


def verify_record(key: bytes, value: bytes) -> None:
    """Check that a record's bytes match the id in its key.

    Raises:
        RemoteCorruptError: they do not, or the key is not a record that travels.
    """
    if not key or key[0] not in _SYNCED_KINDS:
        raise RemoteCorruptError(f"a pack holds a record {key[:1]!r} that never travels")
    try:
        content = decode_chunk(value) if key[:1] == KEY_PREFIXES["chunk"] else value
    except StoreCorruptError as exc:
        raise RemoteCorruptError(f"record {key[1:].hex()} from the remote: {exc}") from None
    if hash_bytes(content) != key[1:]:
        raise RemoteCorruptError(
            f"record {key[1:].hex()} from the remote does not match its id; nothing from that "
            "pack was stored")


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


def read_ranges(spans: list[tuple[int, int]], data: list[bytes], index: PackIndex,
                keys: list[bytes]) -> dict[bytes, bytes]:
    """Return the records ``keys`` cut from byte ranges of a pack, each verified.

    ``spans`` are the (start, end) ranges read and ``data`` their bytes; every record is
    checked against the SHA-256 its signed index names, then against its id.

    Raises:
        RemoteCorruptError: a range is short or a record does not match its index or id.
    """
    records: dict[bytes, bytes] = {}
    for key in keys:
        offset, length = index.records[key]
        position = next(i for i, (start, end) in enumerate(spans) if start <= offset < end)
        start = offset - spans[position][0]
        value = bytes(data[position][start : start + length])
        if len(value) != length or hashlib.sha256(value).hexdigest() != index.digests.get(key):
            raise RemoteCorruptError(
                f"record {key[1:].hex()} read from pack {index.pack[:12]} does not match its "
                "signed index (tampered with or damaged); nothing from that pack was stored")
        verify_record(key, value)
        records[key] = value
    return records
