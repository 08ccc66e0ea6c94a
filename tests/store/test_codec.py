from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from timetravel_kernel.errors import StoreCorruptError
from timetravel_kernel.store.codec import (
    BLOSC,
    RAW,
    decode_chunk,
    decode_chunk_into,
    decoded_size,
    encode_chunk,
)


def test_numeric_data_is_shuffled_by_its_item_width() -> None:
    # Smooth float64 values: their high bytes repeat, which only a shuffle by 8 lines up.
    data = memoryview(np.linspace(0.0, 1.0, 32_768)).cast("B")
    by_item = encode_chunk(data, itemsize=8)
    by_byte = encode_chunk(data, itemsize=1)
    assert by_item[0] == BLOSC
    assert len(by_item) < len(by_byte) and len(by_item) < len(data) // 2
    assert bytes(decode_chunk(by_item)) == bytes(data)


def test_bytes_without_items_get_the_stronger_codec() -> None:
    stream = b"".join(f"name_{i}:value {i * 7}\n".encode() for i in range(20_000))[:262_144]
    as_bytes = encode_chunk(stream, itemsize=1)
    as_numbers = encode_chunk(stream, itemsize=2)
    assert len(as_bytes) < len(as_numbers) / 2
    assert bytes(decode_chunk(as_bytes)) == stream


def test_incompressible_and_small_chunks_are_kept_raw() -> None:
    noise = os.urandom(262_144)
    stored = encode_chunk(memoryview(noise), itemsize=8)
    assert stored[0] == RAW and len(stored) == len(noise) + 1
    assert bytes(decode_chunk(stored)) == noise
    small = b"abc" * 100
    assert encode_chunk(small) == bytes((RAW,)) + small


@pytest.mark.parametrize("itemsize", [0, 1, 3, 255, 256, 4096])
def test_any_item_width_round_trips(itemsize: int) -> None:
    data = bytes(range(200)) * 100
    assert bytes(decode_chunk(encode_chunk(data, itemsize))) == data


def test_a_frame_that_lies_about_its_size_is_refused() -> None:
    stored = bytearray(encode_chunk(bytes(65_536), itemsize=8))
    stored[5:9] = (1 << 30).to_bytes(4, "little")  # Blosc's "uncompressed size" field
    with pytest.raises(StoreCorruptError, match="cannot be decoded"):
        decode_chunk(bytes(stored))


@pytest.mark.parametrize("data", [np.linspace(0.0, 1.0, 32_768).tobytes(), os.urandom(70_000)])
def test_a_chunk_decodes_into_its_slot(data: bytes) -> None:
    stored = encode_chunk(memoryview(data), itemsize=8)
    block = bytearray(len(data) + 20)
    decode_chunk_into(stored, memoryview(block)[10 : 10 + len(data)])
    assert block[10 : 10 + len(data)] == data and block[:10] == block[-10:] == bytes(10)
    assert decoded_size(stored) == len(data)


def test_a_slot_of_the_wrong_size_is_refused_before_writing() -> None:
    data = np.linspace(0.0, 1.0, 32_768).tobytes()
    stored = encode_chunk(memoryview(data), itemsize=8)
    block = bytearray(len(data) - 8)
    with pytest.raises(StoreCorruptError, match="where its buffer has"):
        decode_chunk_into(stored, memoryview(block))
    assert block == bytes(len(block))


def test_decoding_keeps_no_reference_to_the_record() -> None:
    # python-blosc 1.11's cbuffer_validate kept one to every buffer it checked: each record a
    # restore read stayed in memory (a restored 1 GB array kept 0.9 GB of them).
    stored = encode_chunk(memoryview(np.linspace(0.0, 1.0, 32_768).tobytes()), itemsize=8)
    before = sys.getrefcount(stored)
    for _ in range(3):
        decode_chunk(stored)
        decode_chunk_into(stored, memoryview(bytearray(decoded_size(stored))))
    assert sys.getrefcount(stored) == before
