"""In-place checkout: turn live buffers into another version by rewriting the chunks that differ.

Undoing a small in-place edit of a 400 MB array should cost the edit, not a 400 MB load. When
the live objects of a co-variable are exactly its live version and the target version has the
same structure (same pickle skeleton, same buffer sizes), only the chunks whose ids differ are
read and written into the live memory; the objects keep their identity, as they had it at the
target commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from timetravel_kernel.ids import ChunkId
    from timetravel_kernel.state import Serialized
    from timetravel_kernel.store import Covar, ObjectStore

__all__ = ["BufferPatch", "plan_in_place"]


@dataclass(frozen=True, slots=True)
class BufferPatch:
    """Bytes to write into a live buffer at an offset."""

    target: memoryview
    offset: int
    data: bytes | bytearray | memoryview

    def apply(self) -> None:
        """Write the bytes."""
        self.target[self.offset : self.offset + len(self.data)] = self.data


def plan_in_place(
    store: ObjectStore, live: Covar, target: Covar, serialized: Serialized, *,
    reserve: Callable[[int], None] | None = None,
) -> list[BufferPatch] | None:
    """Return the writes that make the live buffers equal the target's, or None.

    None means the versions differ in more than buffer bytes (or a buffer is read-only), and
    the target must be loaded whole. Reading the differing chunks happens here, before any
    write, so a corrupt chunk leaves the live objects untouched.

    Args:
        store: where the target's chunks are.
        live: the manifest the live objects are known to equal.
        target: the manifest to reach.
        serialized: the live objects' serialization (its buffers are views of live memory).
        reserve: called with the bytes of the chunks to read before any is read (the memory
            check: they are all held until applied).
    """
    same_shape = (live.serializer, live.members, live.chunk_size, len(live.buffers)) == (
        target.serializer,
        target.members,
        target.chunk_size,
        len(target.buffers),
    )
    if not same_shape or live.buffers[0] != target.buffers[0]:
        return None
    if len(serialized.buffers) != len(live.buffers) - 1:
        return None
    patches = []
    reads: list[tuple[memoryview, int, ChunkId]] = []
    pairs = zip(serialized.buffers, live.buffers[1:], target.buffers[1:], strict=True)
    for view, old, new in pairs:
        if old.size != new.size or len(view) != old.size:
            return None
        if old == new:
            continue
        if view.readonly:
            return None
        if new.inline is not None:
            patches.append(BufferPatch(view, 0, new.inline))
            continue
        if old.inline is not None or len(old.chunks) != len(new.chunks):
            return None
        reads += [(view, index * target.chunk_size, after) for index, (before, after)
                  in enumerate(zip(old.chunks, new.chunks, strict=True)) if before != after]
    if reserve is not None:
        reserve(len(reads) * target.chunk_size)
    patches += [BufferPatch(view, offset, store.load_chunk(chunk_id))
                for view, offset, chunk_id in reads]
    return patches
