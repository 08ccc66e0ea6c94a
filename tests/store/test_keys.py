"""The key layout (store/keys.py): one prefix byte per record kind, then the id."""

from __future__ import annotations

import pytest

from timetravel_kernel.ids import hash_bytes
from timetravel_kernel.store import MemoryBackend
from timetravel_kernel.store.keys import KEY_PREFIXES, decode_key, encode_key, is_kind


@pytest.mark.parametrize("kind", list(KEY_PREFIXES))
def test_a_key_decodes_to_its_kind_and_suffix(kind) -> None:
    suffix = hash_bytes(kind.encode())
    assert decode_key(encode_key(kind, suffix)) == (kind, suffix)


@pytest.mark.parametrize("kind", list(KEY_PREFIXES))
def test_a_key_is_of_its_own_kind_only(kind) -> None:
    key = encode_key(kind, hash_bytes(b"an id"))
    assert [other for other in KEY_PREFIXES if is_kind(key, other)] == [kind]
    assert not is_kind(b"", kind)


def test_every_kind_has_its_own_single_byte_prefix() -> None:
    prefixes = list(KEY_PREFIXES.values())
    assert all(len(p) == 1 for p in prefixes) and len(set(prefixes)) == len(prefixes)


def test_a_prefix_scan_returns_one_kind_only() -> None:
    # The object store lists a kind by scanning its prefix (commits, thinned marks, garbage).
    backend = MemoryBackend()
    suffix = hash_bytes(b"same id")
    backend.write_batch([(encode_key(kind, suffix), kind.encode()) for kind in KEY_PREFIXES])
    for kind in KEY_PREFIXES:
        assert list(backend.scan_prefix(encode_key(kind, b""))) == [
            (encode_key(kind, suffix), kind.encode())]


@pytest.mark.parametrize("key", [b"", b"?abc", b"\xff"])
def test_a_key_of_no_known_kind_is_refused(key) -> None:
    with pytest.raises(ValueError, match="not a time-travel key"):
        decode_key(key)
