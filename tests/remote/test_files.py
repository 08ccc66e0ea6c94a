import pytest

from timetravel_kernel.errors import RemoteNotFoundError
from timetravel_kernel.remote import FileTransport, open_transport

from .transport_contract import TransportContract


class TestFileTransport(TransportContract):
    @pytest.fixture
    def transport(self, tmp_path):
        (tmp_path / "remote").mkdir()
        return FileTransport(tmp_path / "remote")


def test_a_missing_folder_is_named_in_the_message(tmp_path):
    transport = open_transport((tmp_path / "not-mounted").as_uri())
    with pytest.raises(RemoteNotFoundError, match=r"not-mounted.*does not exist"):
        transport.get("nb/refs/main")


def test_no_temporary_or_lock_file_is_listed(tmp_path):
    transport = FileTransport(tmp_path)
    transport.put_if_tag("nb/refs/main", b"ref", None)
    transport.put_if_absent("nb/packs/a.pack", b"pack")
    assert sorted(o.path for o in transport.list("nb/")) == ["nb/packs/a.pack", "nb/refs/main"]
