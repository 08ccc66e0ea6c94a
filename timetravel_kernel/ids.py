"""Content ids: raw 16-byte xxh3_128 digests in keys, lowercase hex in the protocol."""

from __future__ import annotations

import binascii
from typing import NewType

import xxhash

__all__ = [
    "ID_SIZE",
    "ChunkId",
    "CommitId",
    "CovarId",
    "TreeId",
    "hash_bytes",
    "hex_to_id",
    "id_to_hex",
]

ID_SIZE = 16

ChunkId = NewType("ChunkId", bytes)
CovarId = NewType("CovarId", bytes)
CommitId = NewType("CommitId", bytes)
TreeId = NewType("TreeId", bytes)


def hash_bytes(data: bytes | memoryview) -> bytes:
    """Return the xxh3_128 digest that names ``data`` in the store."""
    return xxhash.xxh3_128_digest(data)


def id_to_hex(object_id: bytes) -> str:
    """Return the protocol form of a raw id."""
    return object_id.hex()


def hex_to_id(text: str) -> bytes:
    """Return the raw id for its hex form.

    Raises:
        ValueError: ``text`` is not 32 hex digits.
    """
    if len(text) != 2 * ID_SIZE:
        raise ValueError(f"an id has {2 * ID_SIZE} hex digits, got {len(text)}")
    try:
        return binascii.unhexlify(text)
    except binascii.Error as exc:
        raise ValueError(f"not a hex id: {text!r}") from exc
