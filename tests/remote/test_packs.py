"""Packs and their indexes (remote/packs.py): what a push writes and a pull checks."""

from __future__ import annotations

import random

import pytest

from timetravel_kernel.errors import RemoteCorruptError
from timetravel_kernel.ids import hash_bytes
from timetravel_kernel.remote.packs import (
    BLOCK_BYTES,
    PackIndex,
    block_digests,
    block_spans,
    decode_index,
    encode_index,
    index_name,
    pack_name,
    pack_records,
    read_pack,
    read_ranges,
    record_problem,
    verify_record,
    walk_indexes,
)
from timetravel_kernel.store.codec import encode_chunk
from timetravel_kernel.store.keys import encode_key


def test_ranges_become_whole_blocks_and_near_ones_merge():
    index = PackIndex(pack="p", size=10 * BLOCK_BYTES + 5, parents=())
    assert block_spans([(BLOCK_BYTES + 3, 10)], index, gap=0) == [(BLOCK_BYTES, 2 * BLOCK_BYTES)]
    assert block_spans([(10 * BLOCK_BYTES, 5), (0, 1), (3, 1)], index, gap=0) == [
        (0, BLOCK_BYTES), (10 * BLOCK_BYTES, 10 * BLOCK_BYTES + 5)]
    assert block_spans([(0, 1), (5 * BLOCK_BYTES, 1)], index, gap=4 * BLOCK_BYTES) == [
        (0, 6 * BLOCK_BYTES)]


def test_an_index_keeps_its_block_digests_and_reads_one_without():
    body = (b'{"format":1,"pack":"p","size":9,"parents":[],"depth":1,'
            b'"records":[["6100",0,4],["6101",4,5]]')
    old = decode_index(body + b"}", "test")
    assert old.records == {b"a\x00": (0, 4), b"a\x01": (4, 5)} and old.blocks == ()
    index = decode_index(body + b',"blocks":["ab"]}', "test")
    assert index.blocks == ("ab",)
    assert decode_index(encode_index(index), "again") == index


def record(kind: str, content: bytes) -> tuple[bytes, bytes]:
    """Return a record as the store holds it: its key (kind, id) and its stored bytes."""
    value = encode_chunk(content) if kind == "chunk" else content
    return encode_key(kind, hash_bytes(content)), value  # type: ignore[arg-type]


def noise(size: int, seed: int = 0) -> bytes:
    """Return bytes that do not compress, so stored sizes are known."""
    return random.Random(seed).randbytes(size)


RECORDS = [record("chunk", noise(3000)), record("covar", b"manifest"), record("tree", b"bucket"),
           record("commit", b"the commit")]


def test_records_are_cut_into_packs_of_about_the_size_asked_each_found_at_its_offset():
    big = record("chunk", noise(5000, seed=1))
    packs = list(pack_records([*RECORDS, big, RECORDS[1]], max_bytes=4000))
    assert [len(offsets) for _, offsets in packs] == [4, 1, 1]  # a large record packs alone
    assert [len(pack) for pack, _ in packs] == [3025, 5001, 8]
    for pack, offsets in packs:
        for key, (offset, length) in offsets.items():
            assert record_problem(key, pack[offset : offset + length]) is None
    assert list(pack_records([], max_bytes=10)) == []


def test_a_pack_is_read_back_only_whole_and_as_its_index_names_it():
    [(pack, offsets)] = pack_records(RECORDS)
    index = PackIndex(pack=pack_name(pack), size=len(pack), parents=(), records=offsets,
                      blocks=block_digests(pack))
    assert read_pack(pack, index) == RECORDS
    assert index.commit_keys() == [RECORDS[3][0]]
    damaged = bytearray(pack)
    damaged[5] ^= 1
    with pytest.raises(RemoteCorruptError, match="does not match its index"):
        read_pack(bytes(damaged), index)
    with pytest.raises(RemoteCorruptError, match="does not match its index"):
        read_pack(pack + b"x", index)


def test_a_record_that_does_not_match_its_id_is_refused_even_in_a_pack_that_matches():
    key, value = RECORDS[1]
    lying = [(key, value + b"!")]
    [(pack, offsets)] = pack_records(lying)
    index = PackIndex(pack=pack_name(pack), size=len(pack), parents=(), records=offsets)
    with pytest.raises(RemoteCorruptError, match="does not match its id"):
        read_pack(pack, index)


@pytest.mark.parametrize(("key", "value", "problem"), [
    (encode_key("ref", b"HEAD"), b"x", "never travels"),
    (b"", b"x", "never travels"),
    (RECORDS[0][0], b"\x7fnot a chunk", "holds record"),
    (RECORDS[2][0], b"other bytes", "does not match its id"),
])
def test_what_is_wrong_with_a_record_is_said(key, value, problem):
    assert problem in record_problem(key, value)
    with pytest.raises(RemoteCorruptError, match=problem):
        verify_record(key, value)


def test_ranges_are_checked_block_by_block_and_bring_every_record_inside_them():
    records = [record("chunk", noise(20_000, seed=i)) for i in range(6)]
    [(pack, offsets)] = pack_records(records)
    index = PackIndex(pack=pack_name(pack), size=len(pack), parents=(), records=offsets,
                      blocks=block_digests(pack))
    assert len(index.blocks) == -(-len(pack) // BLOCK_BYTES) > 1
    wanted = records[5][0]  # in the second block, after a record that starts in the first
    spans = block_spans([offsets[wanted]], index, gap=0)
    data = [pack[start:end] for start, end in spans]
    found = read_ranges(spans, data, index)
    assert spans == [(BLOCK_BYTES, len(pack))]
    assert found == dict(records[4:])
    damaged = [bytes([data[0][0] ^ 1]) + data[0][1:], *data[1:]]
    with pytest.raises(RemoteCorruptError, match="do not match its signed index"):
        read_ranges(spans, damaged, index)
    with pytest.raises(RemoteCorruptError, match="do not match its signed index"):
        read_ranges(spans, [data[0][:-1], *data[1:]], index)  # a short read


def test_a_summary_round_trips_with_the_indexes_it_holds():
    [(pack, offsets)] = pack_records(RECORDS)
    held = PackIndex(pack=pack_name(pack), size=len(pack), parents=("before",),
                     records=offsets, depth=3, blocks=block_digests(pack))
    summary = PackIndex(pack="", size=0, parents=(), depth=0, embedded={"held": held})
    assert decode_index(encode_index(summary), "summary") == summary


@pytest.mark.parametrize(("body", "problem"), [
    (b'{"format":2,"pack":"p","size":1,"parents":[],"records":[]}', "upgrade"),
    (b'{"format":1,"pack":"p"}', "unreadable"),
    (b"not json", "unreadable"),
])
def test_an_index_this_version_cannot_read_is_corrupt(body, problem):
    with pytest.raises(RemoteCorruptError, match=problem):
        decode_index(body, "name")


def test_the_index_walk_reads_back_to_a_summary_and_takes_its_copies_as_they_are():
    def named(index: PackIndex) -> tuple[str, PackIndex]:
        return index_name(encode_index(index)), index

    older = named(PackIndex(pack="a" * 64, size=1, parents=("gone-summary",)))
    summary = named(PackIndex(pack="", size=0, parents=(), depth=0, embedded=dict([older])))
    newer = named(PackIndex(pack="b" * 64, size=1, parents=(summary[0],)))
    newest = named(PackIndex(pack="c" * 64, size=1, parents=(newer[0],), depth=2))
    on_remote = dict([summary, newer, newest])
    asked: list[str] = []

    def read(name: str) -> PackIndex | None:
        asked.append(name)
        return on_remote.get(name)

    assert list(walk_indexes(newest[0], read)) == [newest, newer, summary, older]
    assert asked == [newest[0], newer[0], summary[0]]  # nothing behind the summary is read
    asked.clear()
    assert list(walk_indexes(newest[0], lambda n: None if n == newer[0] else read(n))) == [
        newest]  # a known index ends the walk
    assert list(walk_indexes(None, read)) == []
