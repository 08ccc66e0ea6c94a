"""ValueDiffer: what changed inside each changed name between two commits (timeline layer).

Values are read from the store, never from the live namespace, so a diff answers for any two
states. It stays bounded: a version larger than ``DiffLimits.max_load_bytes`` is not loaded
(its manifest still tells a type change), a deadline stops the work, and an array whose
skeleton is unchanged is compared only where its chunk ids differ, so a diff of two states of
a 400 MB array costs the chunks that changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timetravel_kernel.errors import SerializationError, StoreError
from timetravel_kernel.state import load_stored, load_values
from timetravel_kernel.state.comparison import describe_arrays, describe_change

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from timetravel_kernel.ids import ChunkId, CovarId
    from timetravel_kernel.store import Covar, NamespaceTree, ObjectStore

__all__ = ["DiffLimits", "ValueDiffer"]

_ARRAY_TYPE = "numpy.ndarray"


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffLimits:
    """How much work a value diff may do.

    Args:
        max_load_bytes: a version larger than this is not loaded whole.
        seconds: names left when this much time has passed are not compared.
        examples: changed items shown per name.
    """

    max_load_bytes: int = 64 << 20
    seconds: float = 10.0
    examples: int = 3


class _StoredNames:
    """Resolves a stream's by-name references to the values the same commit stored."""

    def __init__(self, differ: ValueDiffer, tree: NamespaceTree) -> None:
        self._differ = differ
        self._tree = tree
        self._scratch: dict[str, object] = {}

    def value(self, name: str) -> object:
        covar_of = self._tree.get(name)
        if covar_of is None:
            raise SerializationError(name, "", f"it refers to {name!r}, which is not stored")
        covar = self._differ.store.load_covar(covar_of)
        return self._differ.values(covar_of, covar, self._tree)[covar.members.index(name)]

    def namespace(self) -> dict[str, object]:
        return self._scratch


class ValueDiffer:
    """Describes the changes of names between two stored trees.

    Args:
        store: where the versions are read.
        limits: the bounds of the work.
    """

    def __init__(self, store: ObjectStore, limits: DiffLimits | None = None) -> None:
        self.store = store
        self.limits = limits or DiffLimits()
        self._loaded: dict[CovarId, tuple[object, ...]] = {}
        self._loading: set[CovarId] = set()

    def describe_all(
        self, names: Sequence[str], old: NamespaceTree, new: NamespaceTree
    ) -> dict[str, str]:
        """Return a line per name that both trees have, saying what changed."""
        deadline = time.monotonic() + self.limits.seconds
        lines: dict[str, str] = {}
        for name in names:
            old_id, new_id = old.get(name), new.get(name)
            if old_id is None or new_id is None:
                continue
            if time.monotonic() > deadline:
                lines[name] = f"not compared (the diff took over {self.limits.seconds:g} s)"
                continue
            lines[name] = self.describe(name, (old_id, old), (new_id, new))
        return lines

    def describe(
        self,
        name: str,
        old: tuple[CovarId, NamespaceTree],
        new: tuple[CovarId, NamespaceTree],
    ) -> str:
        """Return what changed in one name from the ``old`` version to the ``new`` one."""
        old_covar, new_covar = self.store.load_covar(old[0]), self.store.load_covar(new[0])
        text = self._describe(name, (old_covar, *old), (new_covar, *new))
        note = _sharing_change(name, old_covar, new_covar)
        return f"{text}; {note}" if note else text

    def _describe(
        self,
        name: str,
        old: tuple[Covar, CovarId, NamespaceTree],
        new: tuple[Covar, CovarId, NamespaceTree],
    ) -> str:
        (old_covar, old_id, old_tree), (new_covar, new_id, new_tree) = old, new
        old_type, new_type = _type_of(old_covar, name), _type_of(new_covar, name)
        size = f"changed ({new_covar.nbytes} bytes)"
        if old_covar.serializer == "unsaved" or new_covar.serializer == "unsaved":
            return f"{size}; a version was not saved"
        if _is_array(old_covar) and _is_array(new_covar):
            text = self._arrays(old_covar, new_covar)
            if text is not None:
                return text
        if max(old_covar.nbytes, new_covar.nbytes) > self.limits.max_load_bytes:
            if old_type != new_type:
                return f"type {old_type} → {new_type}"
            return f"{size}; too large to compare"
        try:
            before = self.values(old_id, old_covar, old_tree)[old_covar.members.index(name)]
            after = self.values(new_id, new_covar, new_tree)[new_covar.members.index(name)]
        except (SerializationError, StoreError) as exc:
            return f"{size}; cannot be loaded here: {exc}"
        text = describe_change(before, after, examples=self.limits.examples)
        if text is not None:
            return text
        return f"type {old_type} → {new_type}" if old_type != new_type else size

    def values(self, covar_of: CovarId, covar: Covar, tree: NamespaceTree) -> tuple[object, ...]:
        """Return a stored version's values (loaded once per diff).

        Raises:
            SerializationError: it cannot be loaded, or refers to itself by name.
            StoreError: its data cannot be read.
        """
        cached = self._loaded.get(covar_of)
        if cached is not None:
            return cached
        if covar_of in self._loading:
            raise SerializationError(", ".join(covar.members), "", "it refers to itself by name")
        self._loading.add(covar_of)
        try:
            values = load_stored(self.store, covar, _StoredNames(self, tree))
        finally:
            self._loading.discard(covar_of)
        self._loaded[covar_of] = values
        return values

    def _arrays(self, old: Covar, new: Covar) -> str | None:
        """Compare two plain arrays reading only the chunks that differ; None: load whole.

        The skeletons are loaded over zero-filled buffers (calloc: no memory touched) for
        shape and dtype; where chunk ids are equal the bytes are equal, so only chunk pairs
        whose ids differ are read and compared, in place, as arrays of the dtype.
        """
        import numpy as np

        old_buffer = np.zeros(old.buffers[1].size, dtype=np.uint8)
        new_buffer = np.zeros(new.buffers[1].size, dtype=np.uint8)
        try:
            old_array = self._skeleton(old, old_buffer)
            new_array = self._skeleton(new, new_buffer)
        except (SerializationError, StoreError):
            return None
        if old_array.shape != new_array.shape:
            return describe_arrays(old_array, new_array)
        same_layout = (
            old.buffers[0] == new.buffers[0]
            and old.chunk_size == new.chunk_size
            and old.buffers[1].inline is None
            and new.buffers[1].inline is None
            and old.chunk_size % old_array.itemsize == 0
            and _owns(old_array, old_buffer)
            and _owns(new_array, new_buffer)
        )
        if not same_layout:
            return None
        per_chunk = old.chunk_size // old_array.itemsize
        pairs = zip(old.buffers[1].chunks, new.buffers[1].chunks, strict=True)
        pieces = (
            (index * per_chunk, self._elements(before, old_array), self._elements(after, new_array))
            for index, (before, after) in enumerate(pairs)
            if before != after
        )
        return describe_arrays(old_array, new_array, pieces=pieces, examples=self.limits.examples)

    def _elements(self, chunk_id: ChunkId, like: np.ndarray) -> np.ndarray:
        """Return one chunk's bytes as elements of ``like``'s dtype (no copy)."""
        import numpy as np

        return np.frombuffer(self.store.load_chunk(chunk_id), dtype=like.dtype)  # type: ignore[arg-type]

    def _skeleton(self, covar: Covar, buffer: np.ndarray) -> np.ndarray:
        import numpy as np

        with self.store.open_stream(covar.buffers[0]) as stream:
            (array,) = load_values(covar.serializer, stream, [buffer], _NoNames())  # type: ignore[arg-type]
        if not isinstance(array, np.ndarray):
            raise SerializationError(covar.members[0], "", "the stored value is not an array")
        return array


class _NoNames:
    """A plain array's stream refers to no names."""

    def value(self, name: str) -> object:
        raise SerializationError(name, "", "an array stream refers to a name")

    def namespace(self) -> dict[str, object]:
        return {}


def _sharing_change(name: str, old: Covar, new: Covar) -> str:
    """Say which names the value began or stopped sharing objects with, if any."""
    before, after = set(old.members) - {name}, set(new.members) - {name}
    parts = []
    if after - before:
        parts.append(f"now shares objects with {', '.join(sorted(after - before))}")
    if before - after:
        parts.append(f"no longer shares objects with {', '.join(sorted(before - after))}")
    return "; ".join(parts)


def _type_of(covar: Covar, name: str) -> str:
    index = covar.members.index(name) if name in covar.members else 0
    return covar.types[index] if covar.types else "?"


def _is_array(covar: Covar) -> bool:
    return covar.types == (_ARRAY_TYPE,) and len(covar.buffers) == 2 and not covar.refs


def _owns(array: np.ndarray, buffer: np.ndarray) -> bool:
    """Whether the array is the whole buffer in C order (flat index = byte offset / size)."""
    return (
        array.flags.c_contiguous
        and array.nbytes == buffer.nbytes
        and array.__array_interface__["data"][0] == buffer.__array_interface__["data"][0]
    )
