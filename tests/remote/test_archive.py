"""Export and import (remote/archive.py): a whole history as one file, verified as a pull is."""

from __future__ import annotations

import pytest

from timetravel_kernel.errors import RemoteCorruptError, RemoteTrustError
from timetravel_kernel.remote import export_history, import_history

from ..factories import open_timeline
from .test_sync import CELLS, KEY, OTHER_KEY, restored, session


def test_export_and_import_carry_a_verified_history(tmp_path):
    timeline, _ns = session(tmp_path / "a", CELLS)
    export_history(timeline.object_store, tmp_path / "nb.tthist", signer=KEY)
    timeline.close()
    other = open_timeline(tmp_path / "b")
    with pytest.raises(RemoteTrustError):
        import_history(tmp_path / "nb.tthist", other.object_store, signer=OTHER_KEY)
    report = import_history(tmp_path / "nb.tthist", other.object_store, signer=KEY)
    assert report.head_moved
    other.close()
    assert restored(tmp_path / "b")["p"].x == 3
    (tmp_path / "junk").write_bytes(b"not a tar file")
    third = open_timeline(tmp_path / "c")
    with pytest.raises(RemoteCorruptError, match="not a time-travel export"):
        import_history(tmp_path / "junk", third.object_store, signer=KEY)
    third.close()


def test_an_export_replaces_the_file_whole_and_a_second_import_stores_nothing(tmp_path):
    timeline, _ns = session(tmp_path / "a", CELLS[:1])
    path = tmp_path / "nb.tthist"
    first = export_history(timeline.object_store, path, signer=KEY)
    timeline.close()
    timeline, _ns = session(tmp_path / "a", CELLS[1:])
    second = export_history(timeline.object_store, path, signer=KEY)
    timeline.close()
    assert second.commits > first.commits  # the whole history again, not what changed
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["nb.tthist"]  # no .partial

    other = open_timeline(tmp_path / "b")
    stored = import_history(path, other.object_store, signer=KEY)
    again = import_history(path, other.object_store, signer=KEY)
    other.close()
    assert stored.commits == second.commits and stored.head_moved
    assert again.records == 0 and again.commits == 0 and not again.head_moved
    assert restored(tmp_path / "b")["words"] == ["alpha"] * 1000
