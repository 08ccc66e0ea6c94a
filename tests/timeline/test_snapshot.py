"""The forked snapshot process: what it inherits, what it keeps, how it talks to the kernel."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from timetravel_kernel.store.objects import decode_covar
from timetravel_kernel.store.spool import COVAR, SpoolHeader
from timetravel_kernel.timeline.background import can_fork
from timetravel_kernel.timeline.snapshot import SnapshotSpool, take_snapshot

pytestmark = pytest.mark.skipif(not can_fork(), reason="fork snapshots are Linux-only")

HEADER = SpoolHeader(code="x = 1", cell_id=None, execution_count=1, status="ok", duration=0.0,
                     time=1.0, base=None)


def _produce(names, sink):
    """A stand-in for the checkpointer's produce: one manifest per name, no chunks."""
    from timetravel_kernel.store import Covar

    return [(Covar(members=(name,), serializer="pickle", types=("int",), nbytes=0), (1,))
            for name in sorted(names)]


def _take(tmp_path: Path, **kw):
    spool = SnapshotSpool(tmp_path / "spool", "0001-test", 1, HEADER)
    options = {"produce": _produce, "everything": lambda: ["x"], "names": ["x"],
               "current": lambda names: {},
               "is_known_chunk": lambda _: False, "spool": spool, "inherited": (),
               "orphan_seconds": 30.0}
    options.update(kw)
    return take_snapshot(**options)


def _received(snapshot) -> list[str]:
    covars: list = []
    snapshot.receive(lambda kind, payload: covars.append(decode_covar(bytes(payload)))
                     if kind == COVAR else None, hang_seconds=30, stall_seconds=30)
    return [c.members[0] for c in covars]


def test_a_snapshot_sends_its_state_and_leaves_once_acknowledged(tmp_path: Path) -> None:
    snapshot = _take(tmp_path)
    assert _received(snapshot) == ["x"]
    snapshot.acknowledge()
    with pytest.raises(ChildProcessError):
        os.waitpid(snapshot.pid, os.WNOHANG)  # reaped
    assert not list((tmp_path / "spool").glob("*"))  # nothing left to spool


def test_a_snapshot_planned_at_its_turn_waits_for_the_names(tmp_path: Path) -> None:
    snapshot = _take(tmp_path, names=None)
    time.sleep(0.3)
    assert os.waitpid(snapshot.pid, os.WNOHANG) == (0, 0)  # alive, waiting
    snapshot.send_plan(["b", "a"], {}, [])
    assert _received(snapshot) == ["a", "b"]
    snapshot.acknowledge()


def test_a_snapshot_survives_its_own_pipes_reusing_numbers_it_was_told_to_close(
    tmp_path: Path,
) -> None:
    # The list of other snapshots' pipes is made before this snapshot's pipes exist; a pipe
    # closed in between frees numbers the new pipes then take.
    first, second = os.pipe()
    os.close(first)
    os.close(second)
    snapshot = _take(tmp_path, inherited=(first, second))
    assert _received(snapshot) == ["x"]
    snapshot.acknowledge()


def test_a_snapshot_holds_no_socket_and_leaves_the_kernels_process_group(
    tmp_path: Path,
) -> None:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    try:
        snapshot = _take(tmp_path, names=None)
        deadline = time.monotonic() + 10
        while os.getpgid(snapshot.pid) != snapshot.pid:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        fds = os.listdir(f"/proc/{snapshot.pid}/fd")
        targets = [os.readlink(f"/proc/{snapshot.pid}/fd/{fd}") for fd in fds]
        assert not [t for t in targets if t.startswith("socket:")], targets
        snapshot.stop()
    finally:
        listening.close()
