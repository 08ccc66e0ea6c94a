"""Named references: HEAD, the redo stack, the format version and the session marker."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from timetravel_kernel.errors import StoreCorruptError
from timetravel_kernel.ids import ID_SIZE, CommitId
from timetravel_kernel.store.keys import encode_key

if TYPE_CHECKING:
    from timetravel_kernel.store.backend import Backend

__all__ = [
    "FORMAT_VERSION",
    "REF_FORMAT",
    "REF_HEAD",
    "REF_REDO",
    "REF_RESTORING",
    "REF_SESSION",
    "SessionMarker",
    "decode_commit_stack",
    "decode_session",
    "encode_commit_stack",
    "encode_session",
    "read_ref",
    "ref_key",
]

FORMAT_VERSION = b"2"  # 2: chunk records carry an encoding tag (store/codec.py)
REF_HEAD = b"HEAD"
REF_REDO = b"REDO"
REF_FORMAT = b"FORMAT"
REF_SESSION = b"SESSION"
# The commit a restore is loading, set before and cleared after: left set, the process died
# while restoring, and the next one does not try the same restore again unasked.
REF_RESTORING = b"RESTORING"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionMarker:
    """Whether the last process that wrote the store closed it cleanly."""

    state: Literal["open", "closed"]
    pid: int
    started: float


def ref_key(name: bytes) -> bytes:
    """Return the store key of a ref."""
    return encode_key("ref", name)


def read_ref(backend: Backend, name: bytes) -> bytes | None:
    """Return the value of a ref, or None when it is unset."""
    return backend.get(ref_key(name))


def encode_commit_stack(ids: list[CommitId]) -> bytes:
    """Return the stored form of a stack of commit ids (the redo stack)."""
    return b"".join(ids)


def decode_commit_stack(data: bytes | None) -> list[CommitId]:
    """Return the commit ids of a stored stack (empty when unset)."""
    if not data:
        return []
    if len(data) % ID_SIZE:
        raise StoreCorruptError("the redo stack ref is unreadable")
    return [CommitId(data[i : i + ID_SIZE]) for i in range(0, len(data), ID_SIZE)]


def encode_session(marker: SessionMarker) -> bytes:
    """Return the stored form of a session marker."""
    return json.dumps(asdict(marker)).encode()


def decode_session(data: bytes | None) -> SessionMarker | None:
    """Return the stored session marker, or None when no session ever wrote the store."""
    if data is None:
        return None
    try:
        return SessionMarker(**json.loads(data))
    except (ValueError, TypeError) as exc:
        raise StoreCorruptError(f"the session marker is unreadable: {exc}") from exc
