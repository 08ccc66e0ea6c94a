from __future__ import annotations

import pytest

from timetravel_kernel.errors import StoreError
from timetravel_kernel.store import MemoryBackend

from .backend_contract import BackendContract


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return MemoryBackend()


def test_read_only_memory_backend_refuses_writes() -> None:
    backend = MemoryBackend(read_only=True)
    with pytest.raises(StoreError, match="read-only"):
        backend.write_batch([(b"a", b"b")])
