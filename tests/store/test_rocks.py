from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from timetravel_kernel.errors import StoreError, StoreLockedError
from timetravel_kernel.store import RocksBackend

from .backend_contract import BackendContract


class TestRocksBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[RocksBackend]:
        backend = RocksBackend(tmp_path / "db")
        yield backend
        backend.close()


def test_store_directory_is_private(tmp_path: Path) -> None:
    backend = RocksBackend(tmp_path / "private", purpose="test")
    try:
        mode = stat.S_IMODE(os.stat(tmp_path / "private").st_mode)
        assert mode == 0o700
    finally:
        backend.close()


def test_data_survives_reopen(tmp_path: Path) -> None:
    backend = RocksBackend(tmp_path / "db")
    backend.write_batch([(b"k", b"v" * 100_000)])
    backend.close()
    again = RocksBackend(tmp_path / "db")
    try:
        assert again.get(b"k") == b"v" * 100_000
    finally:
        again.close()


def test_second_writer_in_another_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    path = tmp_path / "db"
    holder = RocksBackend(path, purpose="kernel for /home/u/analysis.ipynb")
    try:
        script = textwrap.dedent(f"""
            from timetravel_kernel.errors import StoreLockedError
            from timetravel_kernel.store import RocksBackend
            try:
                RocksBackend({str(path)!r})
            except StoreLockedError as exc:
                print("LOCKED", exc)
        """)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, timeout=60).stdout
        assert out.startswith("LOCKED")
        assert str(path) in out
        assert f"process {os.getpid()}" in out
        assert "analysis.ipynb" in out
        assert "IO error" not in out
    finally:
        holder.close()


def test_read_only_open_beside_a_writer(tmp_path: Path) -> None:
    writer = RocksBackend(tmp_path / "db")
    writer.write_batch([(b"a", b"1")])
    try:
        reader = RocksBackend(tmp_path / "db", read_only=True)
        assert reader.get(b"a") == b"1"
        with pytest.raises(StoreError, match="read-only"):
            reader.write_batch([(b"b", b"2")])
        reader.close()
    finally:
        writer.close()


def test_read_only_open_of_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no time-travel store"):
        RocksBackend(tmp_path / "absent", read_only=True)


def test_lock_error_in_same_process(tmp_path: Path) -> None:
    first = RocksBackend(tmp_path / "db")
    try:
        with pytest.raises(StoreLockedError):
            RocksBackend(tmp_path / "db")
    finally:
        first.close()


def test_corrupt_store_files_give_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "db"
    RocksBackend(path).close()
    (path / "CURRENT").write_text("MANIFEST-999999\n")
    with pytest.raises(StoreError) as info:
        RocksBackend(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, StoreLockedError)


def test_unwritable_parent_is_a_store_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/timetravel-cannot-exist")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "db"
    with pytest.raises(StoreError, match="cannot create the time-travel store"):
        RocksBackend(target)


def test_corrupt_data_files_surface_as_store_errors(tmp_path: Path) -> None:
    path = tmp_path / "db"
    backend = RocksBackend(path)
    backend.write_batch([(b"k%05d" % i, b"v" * 1000) for i in range(2000)])
    backend.flush()
    backend.close()
    for table in path.glob("*.sst"):
        data = bytearray(table.read_bytes())
        for offset in range(100, len(data) - 100, 97):
            data[offset] ^= 0xFF
        table.write_bytes(bytes(data))
    with pytest.raises(StoreError):
        reopened = RocksBackend(path)
        try:
            list(reopened.scan_prefix(b"k"))
            for i in range(2000):
                reopened.get(b"k%05d" % i)
        finally:
            reopened.close()
