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
