from __future__ import annotations

import pytest

from timetravel_kernel.errors import StoreCorruptError
from timetravel_kernel.ids import hash_bytes
from timetravel_kernel.store.objects import (
    TREE_FANOUT,
    Covar,
    covar_id,
    decode_bucket,
    decode_commit,
    decode_covar,
    decode_tree_root,
    encode_bucket,
    encode_commit,
    encode_covar,
    encode_tree_root,
)

from ..factories import make_commit, make_covar


def test_covar_round_trips() -> None:
    covar = make_covar()
    assert decode_covar(encode_covar(covar)) == covar


def test_unsaved_covar_round_trips_with_reason_and_token() -> None:
    covar = make_covar(serializer="unsaved", buffers=(), reason="a lock", token="t1")
    assert decode_covar(encode_covar(covar)) == covar


def test_covar_id_depends_on_content() -> None:
    assert covar_id(make_covar()) == covar_id(make_covar())
    assert covar_id(make_covar()) != covar_id(make_covar(members=("a",)))


def test_garbage_is_not_a_covar() -> None:
    with pytest.raises(StoreCorruptError):
        decode_covar(b"not a manifest at all")


def test_commit_round_trips_and_gets_its_hash_as_id() -> None:
    commit = make_commit()
    data = encode_commit(commit)
    decoded = decode_commit(data)
    assert decoded == commit
    assert decoded.id == hash_bytes(data)


def test_root_commit_without_parent_round_trips() -> None:
    commit = make_commit(parent=None, cell_id=None, execution_count=None)
    assert decode_commit(encode_commit(commit)) == commit


def test_garbage_is_not_a_commit() -> None:
    with pytest.raises(StoreCorruptError):
        decode_commit(b"{not json")


def test_bucket_round_trips_sorted_and_unicode() -> None:
    entries = {"zeta": covar_id(make_covar()), "\u03b1": covar_id(make_covar(members=("x",)))}
    data = encode_bucket(entries)
    assert decode_bucket(data) == entries
    assert encode_bucket(dict(reversed(list(entries.items())))) == data


def test_tree_root_round_trips_with_empty_slots() -> None:
    slots = [None] * TREE_FANOUT
    slots[3] = hash_bytes(b"bucket")
    assert decode_tree_root(encode_tree_root(slots)) == slots  # type: ignore[arg-type]
    with pytest.raises(StoreCorruptError):
        decode_tree_root(b"short")


def test_lineage_and_revival_round_trip_and_leave_older_records_ids_alone():
    plain = make_commit(code="x = 1")
    assert b"unsaved" not in encode_commit(plain)
    lineage = make_commit(code="next(g)", unsaved_made=("h",), unsaved_used=("g",))
    back = decode_commit(encode_commit(lineage))
    assert (back.unsaved_made, back.unsaved_used) == (("h",), ("g",))
    unsaved = Covar(members=("lock",), serializer="unsaved", types=("lock",), nbytes=0,
                    reason="no", token="t")
    assert b"revival" not in encode_covar(unsaved)
    described = Covar(members=("lock",), serializer="unsaved", types=("lock",), nbytes=0,
                      reason="no", token="t", revival=({"kind": "lock", "locked": True},))
    assert decode_covar(encode_covar(described)).revival == described.revival
    assert covar_id(described) != covar_id(unsaved)
