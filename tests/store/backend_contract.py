"""The contract every Backend passes; test modules subclass it and supply ``backend``."""

from __future__ import annotations

import os

import pytest

from timetravel_kernel.errors import StoreError
from timetravel_kernel.store import Backend


class BackendContract:
    """Behaviour shared by all backends. Subclasses define the ``backend`` fixture."""

    def test_get_missing_returns_none(self, backend: Backend) -> None:
        assert backend.get(b"nope") is None
        assert not backend.has(b"nope")

    def test_write_batch_puts_and_deletes(self, backend: Backend) -> None:
        backend.write_batch([(b"a", b"1"), (b"b", b"2")])
        backend.write_batch([(b"c", b"3")], [b"a"])
        assert backend.get(b"a") is None
        assert backend.get(b"b") == b"2"
        assert backend.has(b"c")

    def test_values_are_bytes_exactly(self, backend: Backend) -> None:
        payload = bytes(range(256)) * 1000
        backend.write_batch([(b"big", memoryview(payload))])
        assert backend.get(b"big") == payload
        assert backend.get_unchecked(b"big") == payload  # what chunk reads use
        assert backend.get_unchecked(b"nope") is None

    def test_scan_prefix_is_ordered_and_bounded(self, backend: Backend) -> None:
        backend.write_batch([(b"p2", b"b"), (b"p1", b"a"), (b"q1", b"c"), (b"o9", b"d")])
        assert list(backend.scan_prefix(b"p")) == [(b"p1", b"a"), (b"p2", b"b")]
        assert [k for k, _ in backend.scan_prefix(b"")] == [b"o9", b"p1", b"p2", b"q1"]

    def test_non_durable_writes_are_readable_and_flush(self, backend: Backend) -> None:
        backend.write_batch([(b"k", b"v")], durable=False)
        assert backend.get(b"k") == b"v"
        backend.flush()
        assert backend.get(b"k") == b"v"

    def test_size_grows_with_data(self, backend: Backend) -> None:
        before = backend.size_bytes()
        backend.write_batch([(b"x", os.urandom(200_000))])  # incompressible
        backend.flush()
        assert backend.size_bytes() >= before + 100_000

    def test_live_size_counts_what_is_stored(self, backend: Backend) -> None:
        backend.write_batch([(b"x", os.urandom(200_000))])
        backend.flush()
        assert 200_000 <= backend.live_bytes() <= backend.size_bytes()

    def test_closed_backend_refuses_use(self, backend: Backend) -> None:
        backend.close()
        with pytest.raises(StoreError):
            backend.get(b"a")
