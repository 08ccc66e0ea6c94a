"""How a chunk's bytes are kept on disk: compressed with Blosc when it pays (store layer).

A chunk's id is the hash of its *raw* bytes, so the encoding never changes content addressing:
the same bytes stored twice are one record, and every read is verified after decoding.

Buffers of numbers (item width 2-255 bytes) are byte-shuffled, then LZ4-compressed: the
shuffle groups the k-th byte of every item, which is what makes numeric arrays compressible
(random float64 in [0, 1) shrinks ~12% instead of ~5% with plain zstd, an integer index ~100x),
and LZ4 is cheap both ways (RocksDB's zstd blob compression ran at ~0.3 GB/s inside the
checkpoint's flush). Bytes without item structure (pickle streams, strings, uint8 data) go to
zstd at its fastest level, which finds the repeats LZ4 misses (many_small's streams: 2.6x
smaller than with LZ4, at the same speed). Chunks that do not shrink by at least 1/32 are kept
raw and read back at copy speed.

Reading decodes a chunk either into a new buffer (``decode_chunk``) or straight into the slot
of the buffer the restored value will own (``decode_chunk_into``, no copy in between). Blosc
calls release the GIL, so several threads decode at once (``store/reading.py``).
"""

from __future__ import annotations

import ctypes
import struct

import blosc

from timetravel_kernel.errors import StoreCorruptError

__all__ = ["decode_chunk", "decode_chunk_into", "decoded_size", "encode_chunk",
           "set_compression_threads"]

RAW = 0
"""Tag byte: the chunk's bytes follow as they are."""
BLOSC = 1
"""Tag byte: a Blosc frame follows (it names its own codec and shuffle)."""

_MIN_COMPRESSED_SIZE = 4096  # below this, framing costs more than it can save
_MAX_TYPESIZE = 255  # Blosc's limit; wider items (big structs) are compressed as bytes
# A Blosc 1 frame starts with 16 bytes: version, codec version, flags, item width, then the
# uncompressed size, the block size and the frame's own size (little-endian uint32 each).
_HEADER = struct.Struct("<4xI4xI")
_GIL: list[bool] = []  # whether Blosc was told to release the GIL (once per process)


def encode_chunk(data: bytes | memoryview, itemsize: int = 1) -> bytes:
    """Return the stored form of a chunk; ``itemsize`` is the width of the items it holds."""
    if len(data) >= _MIN_COMPRESSED_SIZE:
        if 2 <= itemsize <= _MAX_TYPESIZE:
            packed = blosc.compress(data, typesize=itemsize, clevel=5, cname="lz4")
        else:
            packed = blosc.compress(data, typesize=1, clevel=1, cname="zstd")
        if len(packed) <= len(data) - len(data) // 32:
            return bytes((BLOSC,)) + packed
    return b"".join((bytes((RAW,)), data))


def set_compression_threads(count: int) -> None:
    """Use ``count`` compression threads (1 in a forked child: the pool does not survive fork)."""
    blosc.set_nthreads(count)


def _release_gil() -> None:
    """Make Blosc release the GIL while it works (python-blosc holds it by default).

    A process-wide switch of python-blosc: it then runs each call on its own context, which
    measured as fast as its global one here (256 KiB chunks are one Blosc block each, so its
    internal threads never split them) and lets other threads run meanwhile.
    """
    if not _GIL:
        blosc.set_releasegil(True)
        _GIL.append(True)


def _frame_size(frame: memoryview) -> int:
    """Return the uncompressed size a Blosc frame announces, after checking its header.

    Blosc must never be handed a frame whose header lies about sizes: it trusts them. The
    check is ``blosc.cbuffer_validate``'s, done here because python-blosc 1.11's own keeps a
    reference to every buffer it checks (measured: a restored 1 GB array kept 0.9 GB of
    records alive).

    Raises:
        StoreCorruptError: the header does not describe this frame.
    """
    if len(frame) < _HEADER.size:
        raise StoreCorruptError("its compressed frame cannot be decoded")
    nbytes, cbytes = _HEADER.unpack_from(frame)
    if cbytes != len(frame) or nbytes > blosc.MAX_BUFFERSIZE:
        raise StoreCorruptError("its compressed frame cannot be decoded")
    return int(nbytes)


def decoded_size(stored: bytes) -> int:
    """Return the size of a chunk's raw bytes, read from its stored form's header.

    Raises:
        StoreCorruptError: the record is not a chunk this format writes.
    """
    tag = stored[0] if stored else None
    if tag == RAW:
        return len(stored) - 1
    if tag == BLOSC:
        return _frame_size(memoryview(stored)[1:])
    raise StoreCorruptError(f"its record has an unknown encoding tag {tag!r}")


def decode_chunk(stored: bytes) -> bytearray | memoryview:
    """Return a chunk's raw bytes from its stored form (a view for raw chunks: no copy).

    Raises:
        StoreCorruptError: the record is not a chunk this format writes (the message says why,
            to be read after "the chunk is corrupt").
    """
    if stored[:1] == bytes((RAW,)):
        return memoryview(stored)[1:]
    out = bytearray(decoded_size(stored))
    decode_chunk_into(stored, memoryview(out))
    return out


def decode_chunk_into(stored: bytes, out: memoryview) -> None:
    """Decode a chunk straight into ``out``, which must be exactly its size (writable bytes).

    Raises:
        StoreCorruptError: the record is not a chunk this format writes, or its size is not
            ``out``'s.
    """
    if out.format != "B":
        out = out.cast("B")
    size = decoded_size(stored)
    if size != len(out):
        raise StoreCorruptError(f"it holds {size} bytes where its buffer has {len(out)}")
    if not size:
        return
    if stored[0] == RAW:
        out[:] = memoryview(stored)[1:]
        return
    _release_gil()
    # Blosc writes exactly the size checked above at this address.
    address = ctypes.addressof(ctypes.c_char.from_buffer(out))
    try:
        blosc.decompress_ptr(memoryview(stored)[1:], address)
    except blosc.blosc_extension.error:
        raise StoreCorruptError("its compressed frame cannot be decoded") from None
