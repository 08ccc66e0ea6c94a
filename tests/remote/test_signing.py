import os
import stat

import pytest

from timetravel_kernel.errors import RemoteCorruptError, RemoteError
from timetravel_kernel.remote import Signer, load_or_create_key
from timetravel_kernel.remote.signing import sign_document, split_signed_document


def test_the_key_is_made_once_private_and_reused(tmp_path):
    path = tmp_path / "data" / "remote.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_key(path) == key


def test_a_damaged_key_file_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "remote.key"
    path.write_text("not hex")
    with pytest.raises(RemoteError, match="delete it"):
        load_or_create_key(path)


def test_signatures_verify_only_with_the_same_key_and_body():
    ours, theirs = Signer(b"k" * 32), Signer(b"x" * 32)
    document = sign_document(b'{"head": "ab"}', ours)
    body, signature = split_signed_document(document, "the ref")
    assert body == b'{"head": "ab"}'
    assert ours.is_valid(body, signature)
    assert not theirs.is_valid(body, signature)
    assert not ours.is_valid(b'{"head": "cd"}', signature)
    with pytest.raises(RemoteCorruptError, match="no signature"):
        split_signed_document(b"{}", "the ref")
