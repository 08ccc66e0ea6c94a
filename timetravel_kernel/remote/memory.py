"""MemoryTransport: a remote held in a dict, for tests and for export files (remote layer)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from typing_extensions import override

from timetravel_kernel.errors import RemoteConflictError
from timetravel_kernel.remote.transport import ObjectInfo, Transport, Versioned

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["MemoryTransport"]


class MemoryTransport(Transport):
    """Objects in a dict, with the same create-if-absent and compare-and-swap rules as S3.

    Args:
        url: how messages name it.
    """

    def __init__(self, url: str = "memory://") -> None:
        super().__init__()
        self.url = url
        self.objects: dict[str, tuple[bytes, str, float]] = {}
        self._lock = threading.Lock()
        self._version = 0

    def _store(self, path: str, data: bytes) -> str:
        self._version += 1
        tag = str(self._version)
        self.objects[path] = (bytes(data), tag, time.time())
        return tag

    @override
    def get(self, path: str) -> Versioned | None:
        with self._lock:
            found = self.objects.get(path)
        self._count(received=len(found[0]) if found else 0)
        return None if found is None else Versioned(found[0], found[1])

    @override
    def get_ranges(self, path: str, spans: list[tuple[int, int]]) -> list[bytes] | None:
        with self._lock:
            found = self.objects.get(path)
        parts = [found[0][start:end] for start, end in spans] if found else None
        self._count(received=sum(map(len, parts or [])), requests=max(len(spans), 1))
        return parts

    @override
    def put_if_absent(self, path: str, data: bytes) -> bool:
        self._count(sent=len(data))
        with self._lock:
            if path in self.objects:
                return False
            self._store(path, data)
            return True

    @override
    def put_if_tag(self, path: str, data: bytes, tag: str | None) -> str:
        self._count(sent=len(data))
        with self._lock:
            found = self.objects.get(path)
            if (found[1] if found else None) != tag:
                raise RemoteConflictError(f"{self.url}/{path} changed since it was read")
            return self._store(path, data)

    @override
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self._count()
        with self._lock:
            found = [(p, v) for p, v in self.objects.items() if p.startswith(prefix)]
        for path, (data, _, modified) in sorted(found):
            yield ObjectInfo(path, modified, len(data))

    @override
    def delete(self, path: str) -> None:
        self._count()
        with self._lock:
            self.objects.pop(path, None)
