"""Store locations and opening them with fallbacks, in process (no kernel)."""

from __future__ import annotations

from timetravel_kernel.kernel.storage import open_timeline_with_fallback, store_path_for
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
