from __future__ import annotations

from timetravel_kernel.ids import hash_bytes
from timetravel_kernel.state.chunking import buffer_ref, iter_chunks


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
