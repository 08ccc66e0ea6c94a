"""Chunking: split a buffer into content-addressed chunks (state layer).

Array buffers are cut at fixed offsets: the edits that must be cheap there are in-place
patches, which keep every other chunk byte-identical (and in-place checkout writes a chunk back
at ``index * chunk_size``); a prefix copy (``np.concatenate([a[:n], ...])``) shares its leading
chunks with the original. Pickle streams have no item structure and an edit inside them
(a deleted key, a lengthened string) shifts every later byte, so they are cut where a rolling
hash of the content says (FastCDC): the boundaries move with the bytes, and only the chunks
around an insert or delete change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyfastcdc import FastCDC

from timetravel_kernel.ids import ChunkId, hash_bytes
from timetravel_kernel.store.objects import BufferRef

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    ChunkSink = Callable[[ChunkId, memoryview, int], object]
    """Takes a new chunk's id, its bytes and the width of its items."""

__all__ = ["buffer_ref", "iter_chunks", "iter_content_chunks"]

_STREAM_CHUNK_DIVISOR = 8  # stream pieces average chunk_size / 8: 32 KiB by default
_MIN_AVERAGE = 256  # FastCDC's smallest average size
_MIN_FLOOR = 64
_MAX_FLOOR = 1024


def iter_chunks(view: memoryview, chunk_size: int) -> Iterator[tuple[ChunkId, memoryview]]:
    """Yield ``(id, piece)`` for consecutive pieces of ``view`` (views, no copies)."""
    for start in range(0, len(view), chunk_size):
        piece = view[start : start + chunk_size]
        yield ChunkId(hash_bytes(piece)), piece


def iter_content_chunks(
    view: memoryview, average_size: int
) -> Iterator[tuple[ChunkId, memoryview]]:
    """Yield ``(id, piece)`` for content-defined pieces of ``view`` (views, no copies).

    Pieces are ``average_size / 4`` to ``4 * average_size`` bytes (the last may be shorter).
    """
    average = max(_MIN_AVERAGE, average_size)
    cutter = FastCDC(
        average,
        min_size=max(_MIN_FLOOR, average // 4),
        max_size=max(_MAX_FLOOR, average * 4),
    )
    for chunk in cutter.cut_buf(view):
        piece = view[chunk.offset : chunk.offset + chunk.length]
        yield ChunkId(hash_bytes(piece)), piece


def buffer_ref(
    view: memoryview,
    *,
    chunk_size: int,
    inline_limit: int,
    sink: ChunkSink | None,
    itemsize: int = 1,
    content_defined: bool = False,
) -> BufferRef:
    """Describe a buffer for a manifest, handing each chunk to ``sink`` (None: hash only).

    Buffers up to ``inline_limit`` bytes are copied into the manifest instead. ``itemsize``
    (the width of the buffer's items) is passed on to the sink as a compression hint. A
    ``content_defined`` buffer (a pickle stream) is cut by FastCDC into pieces averaging
    ``chunk_size / 8``, else at every ``chunk_size`` bytes.
    """
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if len(view) <= inline_limit:
        return BufferRef(len(view), inline=bytes(view))
    chunks = []
    pieces = (
        iter_content_chunks(view, chunk_size // _STREAM_CHUNK_DIVISOR)
        if content_defined
        else iter_chunks(view, chunk_size)
    )
    for chunk_id, piece in pieces:
        if sink is not None:
            sink(chunk_id, piece, itemsize)
        chunks.append(chunk_id)
    return BufferRef(len(view), chunks=tuple(chunks))
