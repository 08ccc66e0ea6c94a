"""MemoryBackend: a dict-backed Backend for tests and tools (store layer)."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from typing_extensions import override

from timetravel_kernel.errors import StoreError
from timetravel_kernel.store.backend import Backend

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["MemoryBackend"]


class MemoryBackend(Backend):
    """Keeps everything in a dict; the memory twin of RocksBackend.

    Args:
        read_only: refuse writes.
    """

    def __init__(self, *, read_only: bool = False) -> None:
        self._data: dict[bytes, bytes] = {}
        self._notes: dict[str, bytes] = {}
        self._read_only = read_only
        self._closed = False

    @property
    @override
    def read_only(self) -> bool:
        return self._read_only

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    @override
    def get(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._data.get(key)

    @override
    def has(self, key: bytes) -> bool:
        self._check_open()
        return key in self._data

    @override
    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        keys = sorted(self._data)
        for key in keys[bisect.bisect_left(keys, prefix) :]:
            if not key.startswith(prefix):
                break
            yield key, self._data[key]

    @override
    def write_batch(
        self,
        puts: Iterable[tuple[bytes, bytes]],
        deletes: Iterable[bytes] = (),
        *,
        durable: bool = True,
    ) -> None:
        self._check_open()
        if self._read_only:
            raise StoreError("the store is open read-only")
        staged = [(bytes(k), bytes(v)) for k, v in puts]
        for key in deletes:
            self._data.pop(key, None)
        self._data.update(staged)

    @override
    def flush(self) -> None:
        self._check_open()

    @override
    def read_note(self, name: str) -> bytes | None:
        return self._notes.get(name)

    @override
    def write_note(self, name: str, data: bytes) -> None:
        self._check_open()
        self._notes[name] = bytes(data)

    @override
    def close(self) -> None:
        self._closed = True
