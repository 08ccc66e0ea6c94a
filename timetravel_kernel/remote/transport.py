"""Transport: the few object-storage operations a remote needs (remote layer).

Everything the sync engine does is built on six calls, so that object storage, a shared folder
and a dict behave alike: read an object with its version tag, read byte ranges of one, create
one only if it is absent, replace one only if it still has the tag the caller read
(compare-and-swap), list, delete.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ObjectInfo", "Transport", "Versioned"]


@dataclass(frozen=True, slots=True)
class Versioned:
    """An object's bytes and the tag that a compare-and-swap must name to replace it."""

    data: bytes
    tag: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One listed object: its path under the transport's root and when it was last written."""

    path: str
    modified: float
    size: int


class Transport(ABC):
    """Object storage under one root; paths are '/'-separated and relative to the root.

    ``url`` is for messages and never carries credentials. ``requests`` and ``bytes_sent``
    count what went over the wire, for reports and benchmarks.

    Raises (every method):
        RemoteUnavailableError, RemoteAccessError, RemoteNotFoundError: the storage cannot be
            used; messages name the URL, never a credential.
    """

    url: str

    def __init__(self) -> None:
        self._counting = threading.Lock()
        self.requests = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    @abstractmethod
    def get(self, path: str) -> Versioned | None:
        """Return an object and its version tag, or None when it is absent."""

    @abstractmethod
    def get_ranges(self, path: str, spans: list[tuple[int, int]]) -> list[bytes] | None:
        """Return the bytes of each (start, end) range of an object, or None when it is absent.

        Counted as one request per range. A range past the object's end comes back short
        (the caller checks lengths).
        """

    @abstractmethod
    def put_if_absent(self, path: str, data: bytes) -> bool:
        """Create an object; return False (and change nothing) when it exists already."""

    @abstractmethod
    def put_if_tag(self, path: str, data: bytes, tag: str | None) -> str:
        """Replace an object only if its tag is still ``tag`` (None: only if it is absent).

        Returns the new tag.

        Raises:
            RemoteConflictError: someone else wrote it since ``tag`` was read.
        """

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield the objects whose path starts with ``prefix``."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Delete an object (absent is fine)."""

    def close(self) -> None:  # noqa: B027 - optional hook: most transports hold nothing
        """Release connections."""

    def _count(self, *, sent: int = 0, received: int = 0, requests: int = 1) -> None:
        with self._counting:  # packs are fetched from several threads
            self.requests += requests
            self.bytes_sent += sent
            self.bytes_received += received
