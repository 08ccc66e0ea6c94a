"""Reading a co-variable's stream back into values (state layer).

The stream's references to other top-level names and to the namespace itself are resolved
against the namespace being restored (a ``NameResolver``); a name whose value is not back yet
reads as an ``UnrestoredValue`` until a rebuild brings it. Stored streams are read as they come
off the store, never held whole.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

import dill

from timetravel_kernel.errors import SerializationError, StoreError
from timetravel_kernel.state.libraries import LibraryReducer

if TYPE_CHECKING:
    from collections.abc import Iterable

    from timetravel_kernel.state.libraries import LiveWidgets
    from timetravel_kernel.store import Covar, ObjectStore

__all__ = ["NameResolver", "SerializerName", "UnrestoredValue", "load_stored", "load_values"]

SerializerName = Literal["pickle", "dill"]
# Where the functions stored streams name for references live (their names are part of the
# store format; serializers.py defines them).
_STREAM_MODULE = "timetravel_kernel.state.serializers"
_LIBRARIES = LibraryReducer.__module__


class NameResolver(Protocol):
    """Where a loading stream finds the top-level names and the namespace it refers to."""

    def value(self, name: str) -> object:
        """Return the restored value of a top-level name."""

    def namespace(self) -> dict[str, object]:
        """Return the namespace being restored into."""


class UnrestoredValue:
    """Stands, inside a restored value, for another name's value that could not come back.

    A saved value that held an unsaveable object of another top-level name (``cache['conn']
    is conn``) refers to that name. Restored before the name's value is (a rebuild brings it
    back later, or never), it holds this placeholder; the rebuild swaps it for the value. It
    is saved as the same reference, so a value holding it is still its recorded version.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return (f"<{self.name}, not restored: it cannot be saved; %tt rebuild, or running the "
                "cell that made it, brings it back>")

    def __getattr__(self, attribute: str) -> object:
        raise AttributeError(f"{attribute!r}: {self!r}")


class _Loader:
    """Unpickler hooks that resolve name references against a resolver."""

    _resolver: NameResolver
    _refused_module: str | None = None
    _widgets: LiveWidgets | None = None

    def find_class(self, module: str, name: str) -> object:
        if module == _STREAM_MODULE and name == "_namespace_value":
            return self._resolver.value
        if self._widgets is not None and (module, name) == (_LIBRARIES, "make_widget"):
            return self._widgets.make
        if module == _STREAM_MODULE and name == "_unsaved_value":
            return self._unsaved_value
        if module == _STREAM_MODULE and name == "_namespace_dict":
            return self._resolver.namespace
        if module == self._refused_module:
            raise SerializationError(
                name, "", f"it is a reference to {module}.{name}, which only the live "
                "session has"
            )
        return super().find_class(module, name)  # type: ignore[misc]

    def _unsaved_value(self, name: str) -> object:
        """Return another name's value the stream refers to, or a placeholder until it is back."""
        try:
            return self._resolver.value(name)
        except (SerializationError, KeyError):
            return UnrestoredValue(name)


class _FastUnpickler(_Loader, pickle.Unpickler):
    pass


class _DillUnpickler(_Loader, dill.Unpickler):  # type: ignore[misc]
    pass


def load_values(
    serializer: SerializerName,
    stream: bytes | BinaryIO,
    buffers: Iterable[object],
    resolver: NameResolver,
    *,
    refused_module: str | None = None,
    widgets: LiveWidgets | None = None,
) -> tuple[object, ...]:
    """Load the values of one co-variable from its stream (bytes, or a file read in order).

    ``refused_module`` makes a reference to that module's names fail (a trial load refuses
    references to the notebook's module, which dill falls back to when it cannot save a
    class by value). ``widgets`` hands back live widgets instead of new ones.

    Raises:
        SerializationError: the stream cannot be loaded here (a module is missing, a class
            changed, ...).
        StoreError: a file stream could not be read (a missing or damaged chunk).
    """
    unpickler_class: Callable[..., _Loader]
    unpickler_class = _FastUnpickler if serializer == "pickle" else _DillUnpickler
    source = io.BytesIO(stream) if isinstance(stream, bytes) else stream
    unpickler = unpickler_class(source, buffers=buffers)
    unpickler._resolver = resolver
    unpickler._refused_module = refused_module
    unpickler._widgets = widgets
    try:
        values = unpickler.load()  # type: ignore[attr-defined]
    except (SerializationError, StoreError):
        raise  # a damaged store is not a value that cannot load: the caller decides
    except Exception as exc:
        raise SerializationError("", "", f"cannot be loaded: {exc}") from exc
    if not isinstance(values, tuple):
        raise SerializationError("", "", "the stored stream does not hold a value tuple")
    return values


def load_stored(store: ObjectStore, covar: Covar, resolver: NameResolver, *,
                widgets: LiveWidgets | None = None) -> tuple[object, ...]:
    """Load a stored co-variable's values, one per member.

    Its out-of-band buffers are read first, each into the block its value will own; the
    stream is then unpickled as it is read (``ObjectStore.open_stream``), never held whole.
    ``widgets`` hands back live widgets instead of new ones.

    Raises:
        SerializationError: the values cannot be loaded here, or the stream does not hold one
            per member.
        StoreError: a chunk is missing or damaged.
    """
    if covar.serializer == "unsaved":
        raise SerializationError(", ".join(covar.members), "", covar.reason or "not saved")
    buffers = [store.read_buffer(b, covar.chunk_size) for b in covar.buffers[1:]]
    with store.open_stream(covar.buffers[0]) as stream:
        values = load_values(covar.serializer, stream, buffers, resolver, widgets=widgets)
    if len(values) != len(covar.members):
        raise SerializationError(
            ", ".join(covar.members), "", "the stored stream has the wrong number of values")
    return values
