"""Key layout of the store: one prefix byte per record kind, then the raw id or ref name."""

from __future__ import annotations

from typing import Literal

__all__ = ["KEY_PREFIXES", "Kind", "decode_key", "encode_key", "is_kind"]

Kind = Literal["chunk", "covar", "tree", "commit", "ref", "thinned"]

KEY_PREFIXES: dict[Kind, bytes] = {
    "chunk": b"c",
    "covar": b"v",
    "tree": b"t",
    "commit": b"k",
    "ref": b"r",
    "thinned": b"x",  # a commit whose state was given up by retention (store/object_store.py)
}
_KINDS: dict[int, Kind] = {prefix[0]: kind for kind, prefix in KEY_PREFIXES.items()}


def encode_key(kind: Kind, suffix: bytes) -> bytes:
    """Return the key of record ``suffix`` (an id, or a ref name) of the given kind."""
    return KEY_PREFIXES[kind] + suffix


def is_kind(key: bytes, kind: Kind) -> bool:
    """Return whether ``key`` is the key of a record of ``kind``."""
    return key[:1] == KEY_PREFIXES[kind]


def decode_key(key: bytes) -> tuple[Kind, bytes]:
    """Return the kind and suffix of a key.

    Raises:
        ValueError: the key has no known prefix.
    """
    try:
        return _KINDS[key[0]], key[1:]
    except (KeyError, IndexError) as exc:
        raise ValueError(f"not a time-travel key: {key[:20]!r}") from exc
