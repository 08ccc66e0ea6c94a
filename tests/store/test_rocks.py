from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from timetravel_kernel.errors import StoreCorruptError, StoreError, StoreLockedError
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


# Creates a store under umask 000 (the worst case) in a child, so this process's umask stays.
_UMASK_CHILD = textwrap.dedent("""
    import os, sys
    os.umask(0)
    from timetravel_kernel.store import RocksBackend
    backend = RocksBackend(sys.argv[1], purpose="test")
    backend.write_batch([(b"k%d" % i, os.urandom(70_000)) for i in range(5)])
    backend.write_note("recent-commits", b"[]")
    backend.flush()
    backend.close()
""")


def test_every_file_and_folder_is_private_whatever_the_umask(tmp_path: Path) -> None:
    top = tmp_path / "data" / "timetravel"
    store = top / "stores" / "nb.ipynb-1234"
    subprocess.run([sys.executable, "-c", _UMASK_CHILD, str(store)], check=True, timeout=120)
    created = [top, top / "stores", store, *store.iterdir()]
    assert any(p.suffix in (".sst", ".blob") for p in created)
    for path in created:
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every user can reach (pytest's own tmp_path sits in a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="tt-perm-", dir="/tmp"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_another_user_can_neither_list_nor_read_a_store(open_folder: Path) -> None:
    # Root is the only account able to act as another user (nobody); elsewhere the mode
    # check above covers the same files.
    store = open_folder / "timetravel" / "stores" / "nb.ipynb-1234"
    subprocess.run([sys.executable, "-c", _UMASK_CHILD, str(store)], check=True, timeout=120)
    control = open_folder / "control.txt"
    control.write_text("readable by all")
    os.chmod(control, 0o644)
    probe = textwrap.dedent("""
        import os, sys
        os.setgid(65534); os.setuid(65534)
        for target in sys.argv[1:]:
            try:
                os.listdir(target) if os.path.isdir(target) else open(target, "rb").read(1)
            except PermissionError:
                continue
            print("readable:", target)
    """)
    targets = [control, open_folder / "timetravel", open_folder / "timetravel" / "stores",
               store, *store.iterdir()]
    done = subprocess.run([sys.executable, "-c", probe, *map(str, targets)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"readable: {control}\n"


def test_a_lock_held_without_a_live_owner_names_no_dead_process(tmp_path: Path) -> None:
    path = tmp_path / "db"
    holder = RocksBackend(path, purpose="kernel for a.ipynb")
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        (path / "OWNER.json").write_text(
            f'{{"pid": {dead}, "host": "{os.uname().nodename}", "purpose": "old kernel"}}')
        with pytest.raises(StoreLockedError) as info:
            RocksBackend(path)
        assert info.value.holder is None and "old kernel" not in str(info.value)
    finally:
        holder.close()


def test_a_checksum_mismatch_is_damage_not_a_lock(tmp_path: Path) -> None:
    # RocksDB's message for a damaged table contains "block", which contains "lock".
    path = tmp_path / "db"
    backend = RocksBackend(path)
    backend.write_batch([(b"k%03d" % i, b"v" * 100) for i in range(300)])
    backend.close()
    table = next(path.glob("*.sst"))
    data = bytearray(table.read_bytes())
    for i in range(len(data) - 40, len(data) - 32):  # inside the footer
        data[i] ^= 0xFF
    table.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="checksum mismatch"):
        RocksBackend(path)


def test_the_live_size_leaves_out_files_a_compaction_replaced(tmp_path: Path) -> None:
    """A read in progress pins the files a compaction replaced: on disk, but not the store's."""
    backend = RocksBackend(tmp_path / "db")
    backend.write_batch([(b"k%d" % i, os.urandom(200_000)) for i in range(10)])
    backend.flush()
    reading = backend.scan_prefix(b"k")
    next(reading)
    backend.write_batch([], [b"k%d" % i for i in range(8)])
    backend.compact()
    assert backend.size_bytes() > 2_000_000  # the replaced blob files are still there
    assert 400_000 <= backend.live_bytes() < 1_000_000  # two values of 200 kB are stored
    reading.close()
    backend.compact()
    assert backend.size_bytes() < 1_000_000
    backend.close()
