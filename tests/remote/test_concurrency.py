"""Pushes upload several packs at once and pulls store them as they come: still all or nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from timetravel_kernel.errors import RemoteUnavailableError, StoreCorruptError
from timetravel_kernel.remote import MemoryTransport, Remote, Signer
from timetravel_kernel.store.keys import encode_key
from timetravel_kernel.store.refs import REF_HEAD
from timetravel_kernel.timeline import CellInfo

from ..factories import open_timeline
from ..workloads import run_cell
from .test_sync import commits_of, restored, session

KEY = Signer(b"k" * 32)
CELLS = ["import numpy as np\nsmall = 1",
         "big = np.random.default_rng(0).random(400_000)",  # 3.2 MB: many 256 KiB packs
         "other = np.random.default_rng(1).random(200_000)\nsmall = 2"]


class Flaky(MemoryTransport):
    """A server that answers slowly (so uploads overlap) and fails one pack when told."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_pack: int | None = None
        self.packs_seen = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def _pack_request(self, path: str) -> None:
        if "/packs/" not in path:
            return
        with self._lock:
            self.packs_seen += 1
            failing = self.packs_seen == self.fail_pack
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.01)
        with self._lock:
            self.in_flight -= 1
        if failing:
            raise RemoteUnavailableError("the server dropped this part")

    def put_if_absent(self, path, data):
        self._pack_request(path)
        return super().put_if_absent(path, data)

    def get(self, path):
        self._pack_request(path)
        return super().get(path)

    def get_ranges(self, path, spans):
        self._pack_request(path)
        return super().get_ranges(path, spans)


@pytest.fixture(autouse=True)
def small_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("timetravel_kernel.remote.upload.MAX_PACK_BYTES", 256 << 10)


def test_a_push_uploads_packs_at_once_and_a_failed_one_leaves_the_ref_alone(
        tmp_path: Path) -> None:
    transport = Flaky()
    timeline, ns = session(tmp_path / "a", CELLS[:1])
    remote = Remote(transport, "nb", signer=KEY)
    remote.push(timeline.object_store)
    first = timeline.object_store.read_ref(REF_HEAD)
    for code in CELLS[1:]:
        run_cell(ns, code)
        timeline.checkpoint(ns, CellInfo(code=code))
    transport.fail_pack = transport.packs_seen + 5
    with pytest.raises(RemoteUnavailableError, match="dropped"):
        remote.push(timeline.object_store)
    assert transport.most_in_flight > 1  # several parts were on the wire at once
    reader = Remote(transport, "nb", signer=KEY)
    assert reader.read_ref()[0].head == first.hex()  # nothing of the failed push is visible
    transport.fail_pack = None
    report = remote.push(timeline.object_store)
    assert report.head == timeline.object_store.read_ref(REF_HEAD).hex() and report.packs > 10
    timeline.close()
    other = open_timeline(tmp_path / "b")
    Remote(transport, "nb", signer=KEY).pull(other.object_store)
    other.close()
    back = restored(tmp_path / "b")
    assert np.array_equal(back["big"], ns["big"]) and np.array_equal(back["other"], ns["other"])
    assert back["small"] == 2


@pytest.mark.parametrize("only_head", [True, False])
def test_a_pull_that_loses_a_pack_stores_no_state_and_a_retry_completes(
        tmp_path: Path, only_head: bool) -> None:
    transport = Flaky()
    timeline, ns = session(tmp_path / "a", CELLS)
    Remote(transport, "nb", signer=KEY).push(timeline.object_store)
    timeline.close()
    other = open_timeline(tmp_path / "b")
    transport.fail_pack = transport.packs_seen + 4
    with pytest.raises(RemoteUnavailableError, match="dropped"):
        Remote(transport, "nb", signer=KEY).pull(other.object_store, only_head=only_head)
    assert other.object_store.read_ref(REF_HEAD) is None and not commits_of(other)
    transport.fail_pack = None
    report = Remote(transport, "nb", signer=KEY).pull(other.object_store, only_head=only_head)
    assert report.head_moved
    other.close()
    back = restored(tmp_path / "b")
    assert np.array_equal(back["big"], ns["big"]) and back["small"] == 2


def test_a_chunk_damaged_in_the_local_store_is_never_pushed(tmp_path: Path) -> None:
    transport = MemoryTransport()
    timeline, _ = session(tmp_path / "a", CELLS[:2])
    backend = timeline.object_store.backend
    key, value = next(iter(backend.scan_prefix(encode_key("chunk", b""))))
    damaged = bytearray(value)
    damaged[-1] ^= 0xFF
    backend.write_batch([(key, bytes(damaged))])
    with pytest.raises(StoreCorruptError, match=key[1:].hex()):
        Remote(transport, "nb", signer=KEY).push(timeline.object_store)
    assert Remote(transport, "nb", signer=KEY).read_ref()[0] is None
    timeline.close()
