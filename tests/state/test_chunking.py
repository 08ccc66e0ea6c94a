from __future__ import annotations

import random

from timetravel_kernel.ids import hash_bytes
from timetravel_kernel.state.chunking import buffer_ref, iter_chunks, iter_content_chunks


def test_chunks_are_fixed_size_views_named_by_hash() -> None:
    data = memoryview(bytes(range(256)) * 40)  # 10240 bytes
    chunks = list(iter_chunks(data, 4096))
    assert [len(p) for _, p in chunks] == [4096, 4096, 2048]
    assert all(cid == hash_bytes(p) for cid, p in chunks)


def test_small_buffers_are_inlined_and_big_ones_sunk() -> None:
    seen = []
    small = buffer_ref(memoryview(b"tiny"), chunk_size=8, inline_limit=16, sink=None)
    assert small.inline == b"tiny"
    big = buffer_ref(memoryview(b"x" * 40), chunk_size=16, inline_limit=8, itemsize=4,
                     sink=lambda c, p, itemsize: seen.append((bytes(p), itemsize)))
    assert big.size == 40
    assert len(big.chunks) == 3
    assert big.chunks[0] == big.chunks[1]  # equal content, one id
    assert seen == [(b"x" * 16, 4), (b"x" * 16, 4), (b"x" * 8, 4)]


def test_in_place_edit_changes_one_chunk() -> None:
    original = bytearray(b"a" * 4096 * 8)
    before = [c for c, _ in iter_chunks(memoryview(original), 4096)]
    original[5000] = ord("b")
    after = [c for c, _ in iter_chunks(memoryview(original), 4096)]
    assert sum(x != y for x, y in zip(before, after, strict=True)) == 1


def _content_ids(data: bytes, average: int = 1024) -> list:
    return [c for c, _ in iter_content_chunks(memoryview(data), average)]


def test_content_defined_pieces_cover_the_buffer_within_bounds() -> None:
    data = random.Random(1).randbytes(200_000)
    pieces = list(iter_content_chunks(memoryview(data), 1024))
    assert b"".join(bytes(p) for _, p in pieces) == data
    assert all(256 <= len(p) <= 4096 for _, p in pieces[:-1])
    assert all(cid == hash_bytes(p) for cid, p in pieces)


def test_insert_and_delete_change_few_content_defined_pieces() -> None:
    data = random.Random(2).randbytes(400_000)
    before = _content_ids(data)
    for edited in (data[:200_000] + b"inserted" + data[200_000:],
                   data[:200_000] + data[200_100:]):
        after = _content_ids(edited)
        assert len(set(after) - set(before)) <= 3
        # fixed offsets would rewrite everything after the edit
        fixed_before = [c for c, _ in iter_chunks(memoryview(data), 1024)]
        fixed_after = [c for c, _ in iter_chunks(memoryview(edited), 1024)]
        assert len(set(fixed_after) - set(fixed_before)) > 100


def test_streams_are_cut_by_content_and_arrays_at_fixed_offsets() -> None:
    data = random.Random(3).randbytes(64 * 1024)
    stream = buffer_ref(memoryview(data), chunk_size=8192, inline_limit=16, sink=None,
                        content_defined=True)
    assert stream.chunks == tuple(_content_ids(data, 1024))
    array = buffer_ref(memoryview(data), chunk_size=8192, inline_limit=16, sink=None)
    assert len(array.chunks) == 8
