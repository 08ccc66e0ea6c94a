from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from timetravel_kernel.store.folder import (
    OWNER_FILE,
    StoreOwner,
    is_orphan_store,
    make_private,
    make_private_dirs,
    read_owner,
    write_private_file,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def test_missing_folders_are_made_private_whatever_the_umask(tmp_path, open_umask) -> None:
    os.chmod(tmp_path, 0o755)
    target = tmp_path / "a" / "b" / "c"
    make_private_dirs(target)
    assert [_mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", target)] == [0o700] * 3
    assert _mode(tmp_path) == 0o755  # an existing parent is left as it was


def test_private_files_replace_atomically(tmp_path, open_umask) -> None:
    path = tmp_path / "key"
    path.write_text("old")
    os.chmod(path, 0o666)
    write_private_file(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o600
    assert not (tmp_path / "key.tmp").exists()


def test_a_folder_made_by_others_is_tightened(tmp_path) -> None:
    folder = tmp_path / "store"
    (folder / "sub").mkdir(parents=True)
    (folder / "000001.sst").write_bytes(b"x")
    for path, mode in ((folder, 0o755), (folder / "sub", 0o777), (folder / "000001.sst", 0o644)):
        os.chmod(path, mode)
    make_private(folder)
    assert (_mode(folder), _mode(folder / "sub"), _mode(folder / "000001.sst")) == (
        0o700, 0o700, 0o600)
    make_private(tmp_path / "missing")  # nothing to do, nothing raised


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_owners_are_alive_while_their_process_runs() -> None:
    host = socket.gethostname()
    assert StoreOwner(os.getpid(), host, "me").is_alive()
    assert not StoreOwner(_dead_pid(), host, "gone").is_alive()
    # another machine's process cannot be asked: it counts as alive
    assert StoreOwner(_dead_pid(), host + "-elsewhere", "").is_alive()
    assert StoreOwner(12, "box", "kernel for a.ipynb").describe() == (
        "process 12 on box (kernel for a.ipynb)")


def _write_owner(store: Path, **fields: object) -> None:
    store.mkdir(parents=True, exist_ok=True)
    (store / OWNER_FILE).write_text(json.dumps(fields))


def test_owner_records_that_do_not_parse_are_none(tmp_path) -> None:
    assert read_owner(tmp_path) is None
    (tmp_path / OWNER_FILE).write_text("{not json")
    assert read_owner(tmp_path) is None
    _write_owner(tmp_path, host="h")  # no pid
    assert read_owner(tmp_path) is None
    _write_owner(tmp_path, pid="7", host="h")
    assert read_owner(tmp_path) == StoreOwner(7, "h", "", "")


def test_a_store_is_an_orphan_once_its_notebook_is_gone_and_nobody_holds_it(tmp_path) -> None:
    host = socket.gethostname()
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text("{}")
    store = tmp_path / "store"
    _write_owner(store, pid=_dead_pid(), host=host, purpose="kernel", key=str(notebook))
    assert not is_orphan_store(store)
    notebook.unlink()
    assert is_orphan_store(store)
    _write_owner(store, pid=os.getpid(), host=host, purpose="kernel", key=str(notebook))
    assert not is_orphan_store(store)  # its kernel still runs
    # earlier versions named the notebook only in their purpose
    _write_owner(store, pid=_dead_pid(), host=host, purpose=f"kernel for {notebook}")
    assert is_orphan_store(store)
    _write_owner(store, pid=_dead_pid(), host=host, purpose="kernel for relative.ipynb")
    assert not is_orphan_store(store)  # a key that is not a path says nothing
