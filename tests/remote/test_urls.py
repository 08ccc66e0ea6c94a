import pytest

from timetravel_kernel.errors import RemoteError
from timetravel_kernel.remote import FileTransport, check_remote_url, notebook_remote_name
from timetravel_kernel.remote.urls import open_transport


def test_urls_name_their_transport(tmp_path):
    assert check_remote_url("s3://my-bucket/team/histories") == "s3"
    assert check_remote_url("file:///srv/share") == "file"
    assert isinstance(open_transport(tmp_path.as_uri()), FileTransport)


@pytest.mark.parametrize(("url", "message"), [
    ("s3://AKIA:secret@bucket/x", "never in the remote URL"),
    ("s3://b/x", "3-63"),
    ("http://example.com/x", "not a remote"),
    ("relative/folder", "not a remote"),
])
def test_bad_urls_say_what_to_give(url, message):
    with pytest.raises(RemoteError, match=message) as info:
        check_remote_url(url)
    assert "secret" not in str(info.value)


def test_a_notebook_is_named_by_its_path_under_home(tmp_path):
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    name_a = notebook_remote_name(home_a / "work" / "my analysis.ipynb", str(home_a))
    name_b = notebook_remote_name(home_b / "work" / "my analysis.ipynb", str(home_b))
    assert name_a == name_b == "work/my_analysis.ipynb"
    outside = notebook_remote_name("/srv/data/../nb.ipynb", str(home_a))
    assert outside == "srv/nb.ipynb"
