"""Packs and their indexes (remote/packs.py): what a push writes and a pull checks."""

from __future__ import annotations

from timetravel_kernel.remote.packs import (
    BLOCK_BYTES,
    PackIndex,
    block_spans,
    decode_index,
    encode_index,
)


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
