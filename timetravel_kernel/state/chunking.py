"""Chunking: split a buffer into fixed-size content-addressed chunks (state layer).

Fixed offsets, not content-defined boundaries: the edits this must make cheap are in-place
patches of arrays, which keep every other chunk byte-identical; and a prefix copy
(``np.concatenate([a[:n], ...])``) shares its leading chunks with the original.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timetravel_kernel.ids import ChunkId, hash_bytes
from timetravel_kernel.store.objects import BufferRef

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    ChunkSink = Callable[[ChunkId, memoryview, int], object]
    """Takes a new chunk's id, its bytes and the width of its items."""

__all__ = ["buffer_ref", "iter_chunks"]


def iter_chunks(view: memoryview, chunk_size: int) -> Iterator[tuple[ChunkId, memoryview]]:
    """Yield ``(id, piece)`` for consecutive pieces of ``view`` (views, no copies)."""
    for start in range(0, len(view), chunk_size):
        piece = view[start : start + chunk_size]
        yield ChunkId(hash_bytes(piece)), piece


def buffer_ref(
    view: memoryview,
    *,
    chunk_size: int,
    inline_limit: int,
    sink: ChunkSink | None,
    itemsize: int = 1,
) -> BufferRef:
    """Describe a buffer for a manifest, handing each chunk to ``sink`` (None: hash only).

    Buffers up to ``inline_limit`` bytes are copied into the manifest instead. ``itemsize``
    (the width of the buffer's items) is passed on to the sink as a compression hint.
    """
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if len(view) <= inline_limit:
        return BufferRef(len(view), inline=bytes(view))
    chunks = []
    for chunk_id, piece in iter_chunks(view, chunk_size):
        if sink is not None:
            sink(chunk_id, piece, itemsize)
        chunks.append(chunk_id)
    return BufferRef(len(view), chunks=tuple(chunks))
