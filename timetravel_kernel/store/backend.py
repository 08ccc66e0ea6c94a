"""Backend: the small key-value interface every store implementation provides (store layer)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

__all__ = ["Backend"]


class Backend(ABC):
    """Ordered bytes-to-bytes map with atomic batches.

    The abstract core is deliberately small so that a new backend is an afternoon's work;
    everything the object store needs is built on these methods.
    """

    @property
    @abstractmethod
    def read_only(self) -> bool:
        """Whether writes are refused."""

    @abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """Return the value of ``key``, or None when it is absent."""

    def get_unchecked(self, key: bytes) -> bytes | None:
        """Return the value of ``key`` (None when absent), skipping the backend's own checksum.

        For values the caller verifies itself (chunks, against the hash that is their id):
        checking them twice costs time and catches nothing more.
        """
        return self.get(key)

    @abstractmethod
    def has(self, key: bytes) -> bool:
        """Return whether ``key`` is present."""

    @abstractmethod
    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` for every key starting with ``prefix``, in key order."""

    @abstractmethod
    def write_batch(
        self,
        puts: Iterable[tuple[bytes, bytes]],
        deletes: Iterable[bytes] = (),
        *,
        durable: bool = True,
    ) -> None:
        """Apply all puts and deletes atomically.

        Args:
            puts: pairs to store.
            deletes: keys to remove.
            durable: when True the batch is on stable storage when this returns; when False
                it may be lost by a crash (callers use this for content-addressed data that a
                later durable batch makes reachable, and must call ``flush`` before that).
        """

    @abstractmethod
    def flush(self) -> None:
        """Make every earlier non-durable write durable."""

    @abstractmethod
    def close(self) -> None:
        """Release the store; further calls fail."""

    def compact(self) -> None:
        """Give the space of deleted records back to the disk (a no-op where it is at once)."""
        return

    def read_note(self, name: str) -> bytes | None:
        """Return a small note kept beside the database, outside its log (None when absent).

        A note survives damage to the database's write-ahead log, so it can witness what a
        recovery lost. Backends without such a place keep none.
        """
        del name
        return None

    def write_note(self, name: str, data: bytes) -> None:
        """Replace a note (see ``read_note``); a backend without a place for notes drops it."""
        del name, data

    @property
    def spool_dir(self) -> Path | None:
        """Return the folder beside the database for spools (``store/spool.py``), if any.

        A backend that dies with its process (memory) has none: nothing outlives it.
        """
        return None

    def size_bytes(self) -> int:
        """Return the bytes the store occupies (on disk, or in memory for memory backends)."""
        return sum(len(k) + len(v) for k, v in self.scan_prefix(b""))

    def live_bytes(self) -> int:
        """Return the bytes the store occupies once files it already replaced are deleted.

        What a size budget is planned on: right after a compaction or flush the disk still
        holds the files they replaced (until nothing reads them), which no thinning frees.
        """
        return self.size_bytes()
