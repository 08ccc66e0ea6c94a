"""Named references (store/refs.py): HEAD, the redo stack, the session marker, in the store."""

from __future__ import annotations

import pytest

from timetravel_kernel.errors import StoreCorruptError
from timetravel_kernel.ids import ID_SIZE, CommitId, hash_bytes
from timetravel_kernel.store import MemoryBackend, SessionMarker
from timetravel_kernel.store.keys import decode_key
from timetravel_kernel.store.refs import (
    REF_HEAD,
    REF_REDO,
    decode_commit_stack,
    decode_session,
    encode_commit_stack,
    encode_session,
    read_ref,
    ref_key,
)


def test_a_ref_is_a_record_of_the_ref_kind_read_back_by_name() -> None:
    backend = MemoryBackend()
    assert read_ref(backend, REF_HEAD) is None
    head = hash_bytes(b"commit")
    backend.write_batch([(ref_key(REF_HEAD), head)])
    assert read_ref(backend, REF_HEAD) == head
    assert read_ref(backend, REF_REDO) is None
    assert decode_key(ref_key(REF_HEAD)) == ("ref", REF_HEAD)


def test_the_redo_stack_keeps_its_order() -> None:
    ids = [CommitId(hash_bytes(bytes([i]))) for i in range(3)]
    assert decode_commit_stack(encode_commit_stack(ids)) == ids
    assert decode_commit_stack(encode_commit_stack([])) == []
    assert decode_commit_stack(None) == []


def test_a_redo_stack_cut_mid_id_is_corrupt() -> None:
    data = encode_commit_stack([CommitId(hash_bytes(b"a")), CommitId(hash_bytes(b"b"))])
    with pytest.raises(StoreCorruptError, match="redo stack"):
        decode_commit_stack(data[: ID_SIZE + 3])


def test_a_session_marker_round_trips_and_its_absence_means_no_session() -> None:
    marker = SessionMarker(state="open", pid=4242, started=1_700_000_000.5)
    assert decode_session(encode_session(marker)) == marker
    assert decode_session(None) is None


@pytest.mark.parametrize("data", [b"not json", b'{"state": "open"}', b"[1, 2]"])
def test_an_unreadable_session_marker_is_corrupt(data) -> None:
    with pytest.raises(StoreCorruptError, match="session marker"):
        decode_session(data)
