"""Store locations and opening them with fallbacks, in process (no kernel)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time

from timetravel_kernel.session.storage import (
    TEMPORARY_PREFIX,
    default_store_dir,
    make_default_store_dir_private,
    open_timeline_with_fallback,
    remove_stale_temporaries,
    store_path_for,
)
from timetravel_kernel.timeline import TimelineOptions


def test_store_path_is_readable_stable_and_unique_per_notebook(tmp_path):
    a = store_path_for(tmp_path, "/home/u/project/analysis.ipynb")
    assert a == store_path_for(tmp_path, "/home/u/project/analysis.ipynb")
    assert a.name.startswith("analysis.ipynb-") and a.parent == tmp_path
    assert a != store_path_for(tmp_path, "/home/u/other/analysis.ipynb")
    odd = store_path_for(tmp_path, "/tmp/my notebook (copy)/ü?.ipynb")
    assert "/" not in odd.name and " " not in odd.name


def test_open_uses_the_notebook_store(tmp_path):
    path = tmp_path / "s"
    opened = open_timeline_with_fallback(path, TimelineOptions(), purpose="test")
    try:
        assert opened.notice is None and opened.temporary is None
        assert opened.path == path and (path / "CURRENT").exists()
    finally:
        opened.timeline.close()


def test_locked_store_gives_a_temporary_history_and_names_the_holder(tmp_path):
    path = tmp_path / "s"
    first = open_timeline_with_fallback(path, TimelineOptions(), purpose="kernel for nb.ipynb")
    second = open_timeline_with_fallback(path, TimelineOptions(), purpose="another kernel")
    try:
        assert second.timeline is not None and second.temporary is not None
        assert "kernel for nb.ipynb" in second.notice and "temporary" in second.notice
    finally:
        second.timeline.close()
        first.timeline.close()


def test_corrupt_store_is_moved_aside_not_deleted(tmp_path):
    path = tmp_path / "s"
    path.mkdir()
    (path / "CURRENT").write_text("MANIFEST-000007\n")
    (path / "MANIFEST-000007").write_bytes(b"not a manifest")
    opened = open_timeline_with_fallback(path, TimelineOptions(), purpose="test")
    try:
        assert opened.timeline is not None
        aside = [p for p in tmp_path.iterdir() if ".unreadable-" in p.name]
        assert len(aside) == 1 and (aside[0] / "MANIFEST-000007").exists()
        assert str(aside[0]) in opened.notice
    finally:
        opened.timeline.close()


def test_unwritable_location_gives_a_temporary_history(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    opened = open_timeline_with_fallback(blocker / "s", TimelineOptions(), purpose="test")
    try:
        assert opened.temporary is not None and "cannot use" in opened.notice
    finally:
        opened.timeline.close()


def test_kernel_without_a_notebook_keys_its_store_by_connection_file(start_kernel, store_dir):
    k = start_kernel()
    path = k.op("status")["result"]["store"]["path"]
    connection_file = k.km.connection_file
    assert path.startswith(str(store_dir))
    assert path.split("/")[-1].startswith(connection_file.split("/")[-1] + "-")


def _temporary_with_owner(folder, name, pid):
    store = folder / f"{TEMPORARY_PREFIX}{name}" / "store"
    store.mkdir(parents=True)
    (store / "OWNER.json").write_text(json.dumps(
        {"pid": pid, "host": socket.gethostname(), "purpose": "kernel"}))
    return store.parent


def test_stale_temporary_histories_are_removed_live_ones_kept(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    stale = _temporary_with_owner(tmp_path, "dead", dead)
    live = _temporary_with_owner(tmp_path, "live", os.getpid())
    ownerless_new = tmp_path / f"{TEMPORARY_PREFIX}new"
    ownerless_new.mkdir()
    ownerless_old = tmp_path / f"{TEMPORARY_PREFIX}old"
    ownerless_old.mkdir()
    os.utime(ownerless_old, (time.time() - 3 * 86400,) * 2)
    unrelated = tmp_path / "other-dead"
    unrelated.mkdir()
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale, ownerless_old])
    assert live.exists() and ownerless_new.exists() and unrelated.exists()
    assert not stale.exists() and not ownerless_old.exists()


def test_default_store_folders_made_private(tmp_path):
    store_dir = default_store_dir(tmp_path)
    store_dir.mkdir(parents=True, mode=0o755)
    os.chmod(store_dir.parent, 0o755)
    make_default_store_dir_private(store_dir)
    assert stat.S_IMODE(store_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(store_dir.parent.stat().st_mode) == 0o700

