"""Capture: turn names of a namespace into co-variable manifests (state layer).

This is the checkpoint's hot path. Each candidate name is pickled once (buffers stay views of
the live memory); names whose streams share objects are merged and pickled together; then
every buffer is hashed chunk by chunk. The manifest's hash is the fingerprint: an unchanged
co-variable hashes to the id it already has and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from timetravel_kernel.errors import SerializationError
from timetravel_kernel.state.chunking import buffer_ref
from timetravel_kernel.state.covariables import partition
from timetravel_kernel.state.reductions import buffer_address
from timetravel_kernel.state.revival import describe_values
from timetravel_kernel.state.serializers import Serialized, dump_values
from timetravel_kernel.state.unpickling import load_values
from timetravel_kernel.state.unsaveable import type_name
from timetravel_kernel.store.objects import Covar, covar_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from timetravel_kernel.ids import CovarId
    from timetravel_kernel.state.chunking import ChunkSink
    from timetravel_kernel.state.options import TimelineOptions

__all__ = ["CapturedCovar", "build_covar", "capture", "fingerprint", "is_live_memory"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CapturedCovar:
    """The live values of one co-variable and their serialization (or why there is none)."""

    members: tuple[str, ...]
    values: tuple[object, ...]
    serialized: Serialized | None
    reason: str | None = None
    revival: tuple[dict[str, object], ...] | None = None

    @property
    def types(self) -> tuple[str, ...]:
        """Return the display type of each member."""
        return tuple(type_name(v) for v in self.values)


def _dump(
    names: tuple[str, ...],
    namespace: Mapping[str, object],
    options: TimelineOptions,
    *,
    track_sharing: bool = False,
) -> CapturedCovar:
    values = tuple(dict.__getitem__(namespace, n) for n in names)  # type: ignore[arg-type]
    for value in values:
        qualified = f"{type(value).__module__}.{type(value).__qualname__}"
        if qualified in options.skip_types:
            reason = f"values of type {qualified} are skipped by configuration"
            return CapturedCovar(members=names, values=values, serialized=None, reason=reason)
    try:
        serialized = dump_values(
            values, namespace, names, track_sharing=track_sharing, is_tracked=options.is_tracked
        )
        _check_classes_load(values, namespace, serialized)
    except SerializationError as exc:
        what = f" ({exc.type_name})" if exc.type_name else ""
        reason = f"{exc.reason}{what}"
        return CapturedCovar(members=names, values=values, serialized=None, reason=reason,
                             revival=describe_values(values))
    size = len(serialized.stream) + sum(len(b) for b in serialized.buffers)
    if options.max_covar_bytes is not None and size > options.max_covar_bytes:
        reason = (
            f"{size / 1e6:.1f} MB exceeds the size budget of "
            f"{options.max_covar_bytes / 1e6:.1f} MB; raise the budget to save it"
        )
        return CapturedCovar(members=names, values=values, serialized=None, reason=reason)
    return CapturedCovar(members=names, values=values, serialized=serialized)


class _LiveNames:
    """Resolves a trial load's name references against the live namespace (read only)."""

    def __init__(self, namespace: Mapping[str, object]) -> None:
        self._namespace = namespace

    def value(self, name: str) -> object:
        return dict.__getitem__(self._namespace, name)  # type: ignore[arg-type]

    def namespace(self) -> dict[str, object]:
        return self._namespace  # type: ignore[return-value]


def _check_classes_load(
    values: tuple[object, ...], namespace: Mapping[str, object], serialized: Serialized
) -> None:
    """Load a notebook class saved by value once, now, so one that cannot is refused now.

    A class rebuilt from its body through its metaclass may not load back, and dill saves a
    class it cannot save by value (a pydantic model) as a reference to the notebook's module:
    both would fail only at an undo past its definition or a restart. Classes are small and
    saved once per definition; their loading runs no user code but the metaclass.

    Raises:
        SerializationError: the class does not load back.
    """
    if serialized.serializer != "dill" or not any(isinstance(v, type) for v in values):
        return
    buffers = [bytearray(b) for b in serialized.buffers]
    try:
        load_values(serialized.serializer, serialized.stream, buffers, _LiveNames(namespace),
                    refused_module=dict.get(namespace, "__name__", "__main__"))  # type: ignore[arg-type]
    except SerializationError as exc:
        raise SerializationError(
            "", "", f"the class cannot be saved in a form that loads back ({exc.reason}); "
            "re-run the cell that defines it after a restart"
        ) from exc


def capture(
    namespace: Mapping[str, object], names: Iterable[str], options: TimelineOptions
) -> list[CapturedCovar]:
    """Serialize ``names`` of ``namespace`` grouped into co-variables.

    An unsaveable value is captured with its reason and never stops the others.
    """
    names = sorted(names)
    # One name alone has nothing to share with: skip collecting its objects (the costly part
    # for values made of many small objects).
    track = len(names) > 1
    singles = {name: _dump((name,), namespace, options, track_sharing=track) for name in names}
    shared = {
        name: (c.serialized.shared if c.serialized is not None else {})
        for name, c in singles.items()
    }
    captured = []
    for group in partition(shared):
        if len(group) == 1:
            captured.append(singles[group[0]])
        else:
            captured.append(_dump(group, namespace, options))
    return captured


def build_covar(
    captured: CapturedCovar,
    options: TimelineOptions,
    *,
    sink: ChunkSink | None,
    token: str | None = None,
) -> Covar:
    """Return the manifest of a captured co-variable, handing new chunks to ``sink``.

    With ``sink=None`` only the fingerprint is computed (nothing is copied). ``token`` names an
    unsaveable value's live identity.
    """
    serialized = captured.serialized
    if serialized is None:
        return Covar(
            members=captured.members,
            serializer="unsaved",
            types=captured.types,
            nbytes=0,
            reason=captured.reason,
            token=token,
            revival=captured.revival,
        )
    views = (memoryview(serialized.stream), *serialized.buffers)
    itemsizes = (1, *serialized.itemsizes)
    buffers = tuple(
        buffer_ref(
            view,
            chunk_size=options.chunk_size,
            inline_limit=options.inline_limit,
            sink=sink,
            itemsize=itemsize,
            content_defined=index == 0,
        )
        for index, (view, itemsize) in enumerate(zip(views, itemsizes, strict=True))
    )
    return Covar(
        members=captured.members,
        serializer=serialized.serializer,
        types=captured.types,
        nbytes=sum(b.size for b in buffers),
        buffers=buffers,
        refs=serialized.refs,
        chunk_size=options.chunk_size,
    )


def fingerprint(
    values: tuple[object, ...],
    namespace: Mapping[str, object],
    members: tuple[str, ...],
    options: TimelineOptions,
) -> tuple[CovarId, Serialized] | None:
    """Return the covar id live values would be stored under (and their serialization).

    Hashes buffers in place without copying or writing; None when the values cannot be
    serialized (then they match no stored version).
    """
    try:
        serialized = dump_values(values, namespace, members, is_tracked=options.is_tracked)
    except SerializationError:
        return None
    captured = CapturedCovar(members=members, values=values, serialized=serialized)
    return covar_id(build_covar(captured, options, sink=None)), serialized


def is_live_memory(
    values: tuple[object, ...],
    namespace: Mapping[str, object],
    members: tuple[str, ...],
    options: TimelineOptions,
    serialized: Serialized,
) -> bool:
    """Return whether a serialization's buffers are the live values' own memory.

    A class whose ``__getstate__`` copies its arrays (numpy's ``Polynomial``) hands pickle a
    fresh copy: writing into that buffer would change nothing live. A second serialization of
    the same values finds the same addresses only where the buffers are the live memory (the
    first serialization's buffers are still held, so a new copy cannot reuse their address).
    """
    try:
        again = dump_values(values, namespace, members, is_tracked=options.is_tracked)
    except SerializationError:
        return False
    if len(again.buffers) != len(serialized.buffers):
        return False
    for first, second in zip(serialized.buffers, again.buffers, strict=True):
        address = buffer_address(first)
        if address is None or address != buffer_address(second):
            return False
    return True
