"""Serializers: one pickle stream per co-variable, large buffers out of band (state layer).

This module writes the streams (unpickling.py reads them back); the functions they name to
rebuild values live here, and their names are part of the store format.

The fast path is the C pickler at protocol 5; dill is the fallback for what it cannot do
(notebook functions, lambdas, closures, notebook classes). Both share one reducer that

* saves a numpy array as its root buffer plus a view description, so views come back as views
  of their base and an unchanged buffer is recognised by its chunks without being copied;
* saves an array whose dtype the buffer protocol cannot describe (datetime64, timedelta64,
  structured dtypes holding them) through an integer view of its bytes, so dates stay out of
  band and chunked like any number;
* saves a notebook class or function that is bound to a top-level name *by that name*, so an
  instance restored later is an instance of the class in the restored namespace; anything else
  the notebook defined (enums, cached or single-dispatch functions, type variables, wrappers)
  by value, never as a reference to ``__main__`` that a fresh process could not resolve;
* saves what was imported from a module as a reference to where it really lives, checked to
  resolve when it is saved, not when it is restored;
* saves a big dict as groups of its items cut where a key's hash meets a mask (content-defined,
  like the stream's chunks), so inserting or deleting one key changes one group's bytes instead
  of shifting pickle's fixed 1000-item batches, and so every later byte of the stream;
* drops pickle's frame headers from the stream (they are only read-ahead hints, and each
  names the length of its ~64 KiB frame, so an insert or delete would change all later ones);
* saves the namespace dict itself (a notebook function's globals) as a reference to the
  namespace being restored, so restored functions stay bound to the live namespace;
* saves an object that cannot be saved but is the value of another top-level name (a
  connection kept in a dict, a generator in a list) as a reference to that name, so the rest
  of the value is saved; on load the reference is that name's restored value, or an
  ``UnrestoredValue`` placeholder until a rebuild brings the value back;
* refuses objects that cannot be saved, or would be harmful to restore (an open file would be
  reopened for writing and truncated), with a reason the user can act on.
"""

from __future__ import annotations

import functools
import importlib
import io
import pickle
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dill

from timetravel_kernel.errors import SerializationError
from timetravel_kernel.state.covariables import glues
from timetravel_kernel.state.framing import unframed
from timetravel_kernel.state.grouping import GroupedDict, reduce_grouped_dict, with_grouped_dicts
from timetravel_kernel.state.libraries import LibraryReducer
from timetravel_kernel.state.reductions import (
    NOTEBOOK_KINDS,
    array_buffer,
    reduce_by_value,
    reduce_container,
    reduce_imported,
    reduce_memoryview,
    resolves,
)
from timetravel_kernel.state.unpickling import SerializerName, UnrestoredValue
from timetravel_kernel.state.unsaveable import type_name, unsaveable_reason

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["Serialized", "dump_values"]


def _namespace_value(name: str) -> object:  # pragma: no cover - replaced on load
    raise SerializationError(name, "reference", "a name reference was loaded without a namespace")


def _namespace_dict() -> object:  # pragma: no cover - replaced on load
    raise SerializationError("globals", "dict", "a namespace reference was loaded without one")


def _unsaved_value(name: str) -> object:  # pragma: no cover - replaced on load
    raise SerializationError(name, "reference", "a name reference was loaded without a namespace")


def _rebuild_array(buffer: object, dtype: object, shape: tuple[int, ...], order: str) -> object:
    import numpy as np

    return np.ndarray(shape, dtype=dtype, buffer=buffer, order=order)  # type: ignore[arg-type]


def _rebuild_view(
    root: object, offset: int, shape: tuple[int, ...], strides: tuple[int, ...], dtype: object
) -> object:
    import numpy as np

    assert isinstance(root, np.ndarray)
    buffer = root if root.flags.c_contiguous else root.ravel(order="K").view(np.uint8)
    return np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset, strides=strides)  # type: ignore[arg-type]


def _make_function(
    code: types.CodeType,
    namespace: dict[str, object],
    name: str,
    defaults: tuple[object, ...] | None,
    closure: tuple[types.CellType, ...] | None,
) -> types.FunctionType:
    return types.FunctionType(code, namespace, name, defaults, closure)


def _reduce_array(
    arr: object, subclass_root: Callable[[type], bool] = lambda cls: False
) -> tuple[object, ...] | None:
    """Return a reduction that keeps views as views and the root's bytes out of band.

    ``subclass_root`` says whether a view's root may be an array subclass (one saved with its
    memory by a library reduction, which the view is then saved as a view of).
    """
    import numpy as np

    assert isinstance(arr, np.ndarray)
    if arr.dtype.hasobject:
        return None
    root = arr
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not (root.flags.c_contiguous or root.flags.f_contiguous):
        return None
    if arr is root:
        buffer = array_buffer(root)
        if buffer is None:
            return None
        order = "C" if root.flags.c_contiguous else "F"
        return (_rebuild_array, (buffer, root.dtype, root.shape, order))
    if type(root) is not np.ndarray and not subclass_root(type(root)):
        return None
    if root.dtype.hasobject or array_buffer(root) is None:
        return None
    offset = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return (_rebuild_view, (root, offset, arr.shape, arr.strides, arr.dtype))


def _same(value: object) -> object:
    return value


def _fill_dict(target: dict[object, object], groups: tuple[dict[object, object], ...]) -> None:
    for group in groups:
        target.update(group)


def _every_name(name: str) -> bool:
    return True


class _NeedsByValue(Exception):
    """The C pickler met a notebook function or class that must be saved by value."""


class _ReducerMixin:
    """The reductions shared by the C-pickle and the dill paths (see the module docstring)."""

    _by_value = False

    def _setup(
        self,
        namespace: Mapping[str, object],
        members: Iterable[str],
        is_tracked: Callable[[str], bool] = _every_name,
        values: tuple[object, ...] = (),
        *,
        probe: bool = False,
    ) -> None:
        self._namespace = namespace
        self._is_tracked = is_tracked
        self._module_name = dict.get(namespace, "__name__", "__main__")  # type: ignore[arg-type]
        self._members = frozenset(members)
        self.refs: set[str] = set()
        self.holes: dict[str, object] = {}
        self._values = frozenset(map(id, values))
        self._holders: dict[int, str] | None = None
        self._probe = probe
        self._probed: dict[str, bool] = {}
        numpy = sys.modules.get("numpy")
        self._ndarray = numpy.ndarray if numpy is not None else None
        self._dtype = numpy.dtype if numpy is not None else None
        self._ufunc = numpy.ufunc if numpy is not None else None
        self._libraries = LibraryReducer()

    def reducer_override(self, obj: object) -> object:
        if obj is self._namespace:
            return (_namespace_dict, ())
        if self._probe:
            name = self._holder(obj)
            if name is not None and self._refuses(name, obj):
                return self._refer_unsaved(name, obj)
        if self._libraries.active:
            reduced = self._libraries.reduce(obj)
            if reduced is not None:
                return reduced
        cls = type(obj)
        if cls is GroupedDict:
            grouped = reduce_grouped_dict(obj.target, _fill_dict)  # type: ignore[attr-defined]
            return grouped or (_same, (obj.target,))  # type: ignore[attr-defined]
        if cls is UnrestoredValue:
            return self._refer_unsaved(obj.name, obj)  # type: ignore[attr-defined]
        if cls is self._ndarray:
            return _reduce_array(obj, self._libraries.reduces_arrays_of) or NotImplemented
        if self._dtype is not None and isinstance(obj, self._dtype) and obj.isbuiltin == 1:
            # numpy's own reduction copies the dtype; by name, a restored array shares the
            # interned singleton as the original did.
            return (self._dtype, (obj.str,))
        if cls in NOTEBOOK_KINDS or isinstance(obj, type):
            return self._reduce_named(obj)
        if cls is self._ufunc or (cls is types.BuiltinFunctionType and obj.__module__ is None):
            return reduce_imported(obj, self._module_name) or NotImplemented
        if isinstance(obj, types.ModuleType):
            return (importlib.import_module, (obj.__name__,))
        if cls is functools.cached_property:
            # Python 3.11's holds a lock; what it caches lives on the instances.
            return (cls, (obj.func,), {"attrname": obj.attrname, "__doc__": obj.__doc__})
        if cls is memoryview:
            return reduce_memoryview(obj) or NotImplemented
        if (cls is not list and isinstance(obj, list)) or (
            cls is not dict and isinstance(obj, dict)
        ):
            return reduce_container(obj) or NotImplemented
        reason = unsaveable_reason(obj)
        if reason is not None:
            name = self._holder(obj)
            if name is not None:
                return self._refer_unsaved(name, obj)
            raise SerializationError("", type_name(obj), reason)
        return NotImplemented

    def _holder(self, obj: object) -> str | None:
        """Return the other top-level name whose value ``obj`` is, if any.

        None as well for a value being saved here. The table is made on first need: only
        unsaveable objects ask (and every object while probing).
        """
        if id(obj) in self._values:
            return None
        if self._holders is None:
            namespace: dict[str, object] = self._namespace  # type: ignore[assignment]
            self._holders = {}
            for name in sorted(namespace, key=str):
                if name not in self._members and isinstance(name, str) and self._is_tracked(name):
                    self._holders.setdefault(id(dict.__getitem__(namespace, name)), name)
        return self._holders.get(id(obj))

    def _refuses(self, name: str, obj: object) -> bool:
        """Return whether another name's value cannot be saved (asked once per name)."""
        refused = self._probed.get(name)
        if refused is None:
            try:
                _dump((obj,), self._namespace, (name,), track_sharing=False,
                      is_tracked=self._is_tracked, probe=False)
                refused = False
            except SerializationError:
                refused = True
            self._probed[name] = refused
        return refused

    def _refer_unsaved(self, name: str, obj: object) -> tuple[object, ...]:
        self.refs.add(name)
        self.holes[name] = obj
        # A str of its own: pickle memoizes strings by identity, and the name's object is, by
        # chance, a dict key of the value in one process (an interned constant) and not in
        # the next (a loaded key): the same version must give the same stream in both.
        return (_unsaved_value, (name.encode().decode(),))

    def _reduce_named(self, obj: object) -> object:
        """Reduce what pickle would save as ``module.name``: by name, reference or value."""
        name = getattr(obj, "__name__", None)
        module = getattr(obj, "__module__", None)
        if module != self._module_name:
            if isinstance(obj, type) or (
                isinstance(obj, types.FunctionType) and resolves(module, obj.__qualname__, obj)
            ):
                # pickle's own reference checks that the name leads back to the class (and
                # where it does not, the class goes by value through dill)
                return NotImplemented
            if isinstance(obj, types.FunctionType):
                # made at run time (exec, lambdify, a factory's closure): not importable
                if not self._by_value:
                    raise _NeedsByValue(name)
                return reduce_by_value(obj, self._namespace, _make_function)
            reference = reduce_imported(obj, self._module_name)
            if reference is not None:
                return reference
        else:
            reference = self._reference(obj, getattr(obj, "__qualname__", name))
            if reference is not None:
                return reference
        if not self._by_value:
            raise _NeedsByValue(name)
        return reduce_by_value(obj, self._namespace, _make_function)


    def _reference(self, obj: object, qualname: object) -> tuple[object, ...] | None:
        """Return a reference to a notebook object through the name it is bound to, or None.

        A nested class or a method is reached from its top-level owner (``Outer.Inner``), so an
        instance restored later is an instance of the restored ``Outer.Inner``. A name outside
        the saved state (IPython's ``_``) or saved in this stream is no place to refer to.
        """
        if not isinstance(qualname, str) or "<locals>" in qualname:
            qualname = getattr(obj, "__name__", None)
            if not isinstance(qualname, str):
                return None
        head, *path = qualname.split(".")
        if head in self._members or not self._is_tracked(head):
            return None
        owner = dict.get(self._namespace, head)  # type: ignore[arg-type]
        if not path:
            if owner is not obj:
                return None
            self.refs.add(head)
            return (_namespace_value, (head,))
        parent = owner
        for part in path[:-1]:
            parent = getattr(parent, part, None)
        if owner is None or getattr(parent, path[-1], None) is not obj:
            return None
        # the parent is a notebook class too: it is reduced by reference in turn
        return (getattr, (parent, path[-1]))


class _FastPickler(_ReducerMixin, pickle.Pickler):
    pass


class _DillPickler(_ReducerMixin, dill.Pickler):  # type: ignore[misc]
    _by_value = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Serialized:
    """A co-variable's pickle stream and its out-of-band buffers (views, not copies).

    ``shared`` maps ids of identity-carrying objects the stream contains to those objects (held
    so the ids stay unique while partitioning); ``refs`` are names referred to by name;
    ``holes`` maps the names whose unsaveable values it refers to, to those objects;
    ``widgets`` are the ipywidgets widgets it holds, in stream order (see ``LiveWidgets``).
    """

    serializer: SerializerName
    stream: bytes
    buffers: tuple[memoryview, ...]
    itemsizes: tuple[int, ...]  # of each buffer's items: the width compression shuffles by
    refs: tuple[str, ...]
    shared: Mapping[int, object]
    holes: Mapping[str, object] = field(default_factory=dict)
    widgets: tuple[object, ...] = ()


def _dump_with(
    pickler_class: type[_FastPickler] | type[_DillPickler],
    values: tuple[object, ...],
    namespace: Mapping[str, object],
    members: Iterable[str],
    *,
    track_sharing: bool,
    is_tracked: Callable[[str], bool],
    probe: bool = False,
) -> Serialized:
    out = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    pickler = pickler_class(out, protocol=5, buffer_callback=buffers.append)
    pickler._setup(namespace, members, is_tracked, values, probe=probe)
    pickler.dump(with_grouped_dicts(values, namespace))
    shared: dict[int, object] = {}
    if track_sharing:
        # The memo holds every object the stream contains, keeping their ids unique until
        # the partition is done. Copying it costs ~0.5 us per object. Another name's value
        # saved by reference does not join the names: the reference keeps the identity.
        memo = pickler.memo.copy() if pickler_class is _FastPickler else dict(pickler.memo)
        referred = {id(obj) for obj in pickler.holes.values()}
        shared = {
            ident: obj
            for ident, (_, obj) in memo.items()
            if glues(type(obj)) and obj is not namespace and ident not in referred
        }
    return Serialized(
        serializer="pickle" if pickler_class is _FastPickler else "dill",
        stream=unframed(out.getvalue()),
        buffers=tuple(b.raw() for b in buffers),
        itemsizes=tuple(memoryview(b).itemsize for b in buffers),
        refs=tuple(sorted(pickler.refs)),
        shared=shared,
        holes=dict(pickler.holes),
        widgets=tuple(pickler._libraries.widgets),
    )


def dump_values(
    values: tuple[object, ...],
    namespace: Mapping[str, object],
    members: Iterable[str],
    *,
    track_sharing: bool = False,
    is_tracked: Callable[[str], bool] = _every_name,
) -> Serialized:
    """Serialize the values of one co-variable as one stream.

    With ``track_sharing`` the result lists the identity-carrying objects it contains, for
    partitioning names into co-variables. Notebook objects bound to a name ``is_tracked``
    accepts are saved as references to that name; others by value. An object that cannot be
    saved but is another such name's value is saved as a reference to that name (``holes``).

    Raises:
        SerializationError: neither pickle nor dill can save the values, or one of them must
            not be saved; ``reason`` says why in words meant for the user.
    """
    return _dump(values, namespace, tuple(members), track_sharing=track_sharing,
                 is_tracked=is_tracked, probe=True)


def _dump(
    values: tuple[object, ...],
    namespace: Mapping[str, object],
    members: tuple[str, ...],
    *,
    track_sharing: bool,
    is_tracked: Callable[[str], bool],
    probe: bool,
) -> Serialized:
    """Serialize as ``dump_values`` does; ``probe`` retries a refusal around other names.

    The reducer refers to another name's value when that value is itself of a kind it
    refuses (a generator, a lock); a refusal from inside such a value (an event holds a lock)
    or from a library's own ``__reduce__`` (csv's reader) is only known once pickling failed.
    The retry then refers to each other name's value that refuses on its own, so the rest is
    saved. It costs a lookup per object and one trial per other name's value met, only after
    a refusal, which was going to leave the value unsaved.
    """
    options = {"track_sharing": track_sharing, "is_tracked": is_tracked}
    try:
        return _dump_plainly(values, namespace, members, **options)
    except SerializationError:
        if not probe or len(namespace) <= len(members):
            raise
        # The C pickler first, as above: a placeholder restored in the refused value's place
        # (which the C pickler saves) then gives the very same stream again.
        for pickler_class in (_FastPickler, _DillPickler):
            try:
                return _dump_with(pickler_class, values, namespace, members, probe=True,
                                  **options)
            except (Exception, RecursionError):
                continue
        raise


def _dump_plainly(
    values: tuple[object, ...],
    namespace: Mapping[str, object],
    members: tuple[str, ...],
    *,
    track_sharing: bool,
    is_tracked: Callable[[str], bool],
) -> Serialized:
    """Serialize with the C pickler, else dill; raise the reason neither can."""
    options = {"track_sharing": track_sharing, "is_tracked": is_tracked}
    try:
        return _dump_with(_FastPickler, values, namespace, members, **options)
    except SerializationError:
        raise
    except Exception:
        pass
    try:
        return _dump_with(_DillPickler, values, namespace, members, **options)
    except SerializationError:
        raise
    except RecursionError as exc:
        raise SerializationError("", "", "the value is nested too deeply to save") from exc
    except Exception as exc:
        message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise SerializationError("", "", f"cannot be saved: {message}") from exc
