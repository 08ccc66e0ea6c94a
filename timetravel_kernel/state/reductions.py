"""Reductions for values the default pickling gets wrong in a notebook (state layer).

Pickle saves functions, classes and a few other objects as references ``module.qualname``. In a
notebook that goes wrong two ways: what the notebook defined claims to live in ``__main__``,
which a fresh process (or an undo past the definition) does not have, and what was imported can
be found by pickle's module search in ``__main__`` too, because the import put it there. The
serializers' reducer asks this module for by-value reductions of notebook objects and for
references, checked at save time, to where imported objects really live. The rebuild functions
here are named in stored streams: their names and signatures are part of the store format.
"""

from __future__ import annotations

import enum
import functools
import importlib
import pickle
import sys
import types
import typing
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "NOTEBOOK_KINDS",
    "array_buffer",
    "buffer_address",
    "fill_container",
    "import_attribute",
    "is_single_dispatch",
    "reduce_by_value",
    "reduce_container",
    "reduce_imported",
    "reduce_memoryview",
    "resolves",
]

_LRU_WRAPPER = type(functools.lru_cache(maxsize=None)(lambda: None))
_TYPE_PARAMETERS: tuple[type, ...] = tuple(
    kind for kind in (typing.TypeVar, getattr(typing, "ParamSpec", None),
                      getattr(typing, "TypeVarTuple", None)) if isinstance(kind, type)
)
# Kinds of objects pickle saves as a reference by name; a notebook's own must go by value.
NOTEBOOK_KINDS: frozenset[type] = frozenset(
    {types.FunctionType, _LRU_WRAPPER, *_TYPE_PARAMETERS}
)
_UNSIGNED_BY_WIDTH = {1: "u1", 2: "u2", 4: "u4", 8: "u8"}


def array_buffer(root: object) -> pickle.PickleBuffer | None:
    """Return the out-of-band buffer of a contiguous array, or None when it has none.

    The buffer protocol has no format for datetime64/timedelta64 (nor structured dtypes with
    such fields): their bytes are exported through an unsigned view of the same item width (so
    compression still shuffles by item) and re-viewed with the recorded dtype on load. Arrays
    whose items point elsewhere (objects, numpy's variable-width strings) have no such bytes.
    """
    import numpy as np

    assert isinstance(root, np.ndarray)
    if root.dtype.hasobject or root.dtype.kind == "T":
        return None
    try:
        return pickle.PickleBuffer(root)
    except (ValueError, TypeError, BufferError):
        pass
    flat = root.reshape(-1, order="A")  # a view: the root is contiguous
    width = root.dtype.itemsize
    raw = flat.view(_UNSIGNED_BY_WIDTH.get(width, "u1"))
    return pickle.PickleBuffer(raw)


def import_attribute(module: str, qualname: str) -> object:
    """Return ``module.qualname`` (dotted), importing the module: a reference's loader."""
    value: object = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def resolves(module: str | None, qualname: str | None, obj: object) -> bool:
    """Return whether ``module.qualname`` is an importable name of ``obj`` (already imported)."""
    if not module or not qualname or module not in sys.modules or "<locals>" in qualname:
        return False
    try:
        return import_attribute(module, qualname) is obj
    except (AttributeError, ImportError):
        return False


# Objects found by a module search, by id (the object is held, so the id stays its own).
_HOMES: dict[int, tuple[object, tuple[object, ...]]] = {}


def reduce_imported(obj: object, notebook_module: str) -> tuple[object, ...] | None:
    """Return a reference to where an imported object lives, checked now; None if none works.

    Pickle's own module search (for ufuncs and builtins without ``__module__``) may answer
    ``__main__``, where ``from m import f`` put the name: a reference a fresh kernel cannot load.
    """
    known = _HOMES.get(id(obj))
    if known is not None and known[0] is obj:
        return known[1]
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    module = getattr(obj, "__module__", None)
    if resolves(module, qualname, obj):
        return (import_attribute, (module, qualname))
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str):
        return None
    homes = sorted(
        candidate
        for candidate, loaded in list(sys.modules.items())
        if isinstance(loaded, types.ModuleType)
        # the notebook's module may be registered under other keys too (__mp_main__, ...)
        and {candidate, getattr(loaded, "__name__", None)}.isdisjoint((notebook_module, "__main__"))
        and getattr(loaded, name, None) is obj
    )
    if not homes:
        return None
    # the shortest name is the public one (scipy.special rather than scipy.special._ufuncs)
    reduction = (import_attribute, (min(homes, key=len), name))
    _HOMES[id(obj)] = (obj, reduction)
    return reduction


def is_single_dispatch(obj: object) -> bool:
    """Return whether ``obj`` is a function made by ``functools.singledispatch``."""
    return (
        isinstance(obj, types.FunctionType)
        and hasattr(obj, "registry")
        and hasattr(obj, "dispatch")
        and hasattr(obj, "__wrapped__")
    )


def make_single_dispatch(default: Callable[..., object],
                         implementations: tuple[tuple[type, object], ...]) -> object:
    """Rebuild a single-dispatch function from its default and its registered implementations."""
    dispatcher = functools.singledispatch(default)
    for kind, implementation in implementations:
        dispatcher.register(kind, implementation)
    return dispatcher


def make_cached(wrapped: Callable[..., object], maxsize: int | None, typed: bool) -> object:
    """Rebuild an ``lru_cache``/``cache`` wrapper around a function (its cache starts empty)."""
    return functools.lru_cache(maxsize=maxsize, typed=typed)(wrapped)


def make_type_parameter(kind: type, name: str, constraints: tuple[object, ...],
                        options: dict[str, object], module: str) -> object:
    """Rebuild a TypeVar, ParamSpec or TypeVarTuple defined in the notebook."""
    parameter = kind(name, *constraints, **options)
    parameter.__module__ = module  # typing takes the caller's module: ours
    return parameter


def module_globals(module: str) -> dict[str, object]:
    """Return an importable module's namespace (the globals of a function defined there)."""
    return vars(importlib.import_module(module))


class _ModuleGlobals:
    """Stands in a reduction for a module's namespace, which pickles as a reference to it."""

    def __init__(self, module: str) -> None:
        self.module = module

    def __reduce__(self) -> tuple[object, ...]:
        return (module_globals, (self.module,))


def make_enum(metaclass: type, name: str, bases: tuple[type, ...],
              keywords: dict[str, object], body: tuple[tuple[str, object], ...]) -> type:
    """Rebuild a notebook enum class by running its body again through its metaclass."""

    def fill(namespace: dict[str, object]) -> None:
        for key, value in body:
            namespace[key] = value

    return types.new_class(name, bases, {"metaclass": metaclass, **keywords}, fill)


# The sunder names a class body may define; enum reserves the others for its machinery.
_ENUM_HOOKS = frozenset({"_generate_next_value_", "_missing_", "_numeric_repr_"})


@functools.lru_cache(maxsize=64)
def _enum_machinery(metaclass: type, bases: tuple[type, ...],
                    keywords: tuple[tuple[str, object], ...]) -> Mapping[str, object]:
    """Return what the metaclass puts in a member-less class with these bases by itself."""
    probe = make_enum(metaclass, "_Probe", bases, dict(keywords), ())
    return dict(vars(probe))


def _is_machinery(key: str, value: object, machinery: Mapping[str, object]) -> bool:
    if key in ("__dict__", "__weakref__"):  # made by type() for each class
        return True
    if key.startswith("_") and key.endswith("_") and not key.startswith("__"):
        return key not in _ENUM_HOOKS or machinery.get(key) is value
    return key in machinery and (key == "__new__" or machinery[key] is value)


def _reduce_enum(cls: enum.EnumMeta) -> tuple[object, ...]:
    """Reduce an enum to a body that makes it again: its own attributes, then its members.

    A member's value is its ``_value_``: exact for plain values and ``__init__``-style tuples;
    an enum whose own ``__new__`` derives ``_value_`` from other arguments is not rebuilt.
    """
    boundary = vars(cls).get("_boundary_")
    keywords = (("boundary", boundary),) if boundary is not None else ()
    machinery = _enum_machinery(type(cls), cls.__bases__, keywords)
    members = cls._member_map_
    body: list[tuple[str, object]] = []
    for key, value in vars(cls).items():
        if key == "__new_member__":
            body.append(("__new__", value))
        elif key not in members and not _is_machinery(key, value, machinery):
            body.append((key, value))
    body.extend((key, member._value_) for key, member in members.items())
    return (make_enum, (type(cls), cls.__name__, cls.__bases__, dict(keywords), tuple(body)))


def reduce_by_value(obj: object, namespace: Mapping[str, object],
                    make_function: Callable[..., object]) -> object:
    """Return a by-value reduction of what the notebook defined (or made at run time).

    NotImplemented leaves it to dill (plain classes).
    ``make_function`` is the serializers' function rebuilder, whose stored name must not change.
    """
    if isinstance(obj, enum.EnumMeta):
        return _reduce_enum(obj)
    if isinstance(obj, _LRU_WRAPPER):
        parameters = obj.cache_parameters()
        return (make_cached, (obj.__wrapped__, parameters["maxsize"], parameters["typed"]))
    if isinstance(obj, _TYPE_PARAMETERS):
        constraints = tuple(getattr(obj, "__constraints__", ()))
        options = {
            key: getattr(obj, f"__{key}__")
            for key in ("bound", "covariant", "contravariant") if hasattr(obj, f"__{key}__")
        }
        return (make_type_parameter, (type(obj), obj.__name__, constraints, options,
                                      obj.__module__))
    if not isinstance(obj, types.FunctionType):
        return NotImplemented
    if is_single_dispatch(obj):
        registry = obj.registry  # type: ignore[attr-defined]
        implementations = tuple((k, v) for k, v in registry.items() if k is not object)
        return (make_single_dispatch, (registry[object], implementations))
    return _reduce_function(obj, namespace, make_function)


def _global_names(code: types.CodeType) -> set[str]:
    """Return the names a code object (and the code nested in it) may read as globals."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names


def _reduce_function(func: types.FunctionType, namespace: Mapping[str, object],
                     make_function: Callable[..., object]) -> object:
    """Reduce a function by value, its globals being the namespace or its module's, by name.

    dill would rebuild the globals as a copy; a notebook function must see the live namespace,
    and a wrapper a library made (``functools.wraps`` copies ``__module__``) its module's.
    """
    globals_ref: object
    if func.__globals__ is namespace:
        globals_ref = namespace
    else:
        home = func.__globals__.get("__name__")
        loaded = sys.modules.get(home) if isinstance(home, str) else None
        if loaded is not None and vars(loaded) is func.__globals__:
            globals_ref = _ModuleGlobals(home)
        else:
            # globals of its own (attrs' generated methods, lambdify's hundreds of numpy
            # names): only the names its code reads
            globals_ref = {n: func.__globals__[n] for n in _global_names(func.__code__)
                           if n in func.__globals__}
    attributes = {
        "__qualname__": func.__qualname__,
        "__module__": func.__module__,
        "__doc__": func.__doc__,
        "__kwdefaults__": func.__kwdefaults__,
        "__annotations__": func.__annotations__,
    }
    args = (func.__code__, globals_ref, func.__name__, func.__defaults__, func.__closure__)
    return (make_function, args, (func.__dict__ or None, attributes))


# Per container subclass: the builtin-level class whose mutators may fill it without running the
# subclass's own (None when the subclass overrides none in Python).
_CONTAINER_OWNERS: dict[type, type | None] = {}


def _container_owner(cls: type, mutator: str) -> type | None:
    if cls not in _CONTAINER_OWNERS:
        owner = None
        if isinstance(getattr(cls, mutator, None), types.FunctionType):
            owner = next(k for k in cls.__mro__ if mutator in vars(k)
                         and not isinstance(vars(k)[mutator], types.FunctionType))
        _CONTAINER_OWNERS[cls] = owner
    return _CONTAINER_OWNERS[cls]


def reduce_container(obj: list | dict) -> tuple[object, ...] | None:
    """Return a reduction filling a list or dict subclass only after its attributes are set.

    Pickle fills a container (through the subclass's own ``extend`` or ``__setitem__``) before
    it restores the attributes those methods may need: bokeh's property lists notify owners
    that do not exist yet and fail to load. Such a container is filled here through the
    builtin's own methods, after its attributes. None when the default order is safe.
    """
    mutator = "extend" if isinstance(obj, list) else "__setitem__"
    owner = _container_owner(type(obj), mutator)
    if owner is None:
        return None
    reduced = obj.__reduce_ex__(5)
    if not isinstance(reduced, tuple) or len(reduced) < 4:
        return None
    function, arguments, state, *rest = (*reduced, None, None)[:5]
    items = list(rest[0]) if rest[0] is not None else None
    entries = dict(rest[1]) if rest[1] is not None else None
    if items is None and entries is None:
        return None
    return (function, arguments, (owner, state, items, entries), None, None, fill_container)


def fill_container(obj: object, packed: tuple[type, object, list | None, dict | None]) -> None:
    """Set a container's attributes, then fill it through its builtin owner's methods."""
    owner, state, items, entries = packed
    if state is not None:
        setstate = getattr(obj, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            attributes, slots = state if isinstance(state, tuple) else (state, None)
            vars(obj).update(attributes or {})
            for key, value in (slots or {}).items():
                setattr(obj, key, value)
    if items is not None:
        owner.extend(obj, items)  # type: ignore[attr-defined]
    for key, value in (entries or {}).items():
        owner.__setitem__(obj, key, value)  # type: ignore[index]


def buffer_address(buffer: memoryview) -> int | None:
    """Return where a buffer's bytes start in memory (through numpy), or None without it."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None
    return int(numpy.frombuffer(buffer, dtype=numpy.uint8).__array_interface__["data"][0])


def make_memoryview(owner: object, start: int, nbytes: int, format: str,
                    shape: tuple[int, ...], readonly: bool) -> memoryview:
    """Rebuild a memoryview on its (restored) owner: the same bytes, format and shape."""
    view = memoryview(owner).cast("B")[start:start + nbytes]
    if readonly and not view.readonly:
        view = view.toreadonly()
    if format != "B" or len(shape) != 1:
        view = view.cast(format, shape)
    return view


def reduce_memoryview(view: memoryview) -> tuple[object, ...] | None:
    """Return a reduction of a contiguous memoryview as a view on its owner, or None.

    Pickle cannot save a memoryview; its owner (a bytearray, array or numpy array) is saved
    with it, so the restored view still shares the owner's memory as the original did.
    """
    try:
        owner, contiguous = view.obj, view.c_contiguous
    except ValueError:  # released
        return None
    if owner is None or not contiguous:
        return None
    try:
        whole = memoryview(owner).cast("B")
    except (TypeError, ValueError):
        return None
    start = 0
    if view.nbytes != whole.nbytes:
        view_at = buffer_address(view.cast("B")) if view.nbytes else None
        owner_at = buffer_address(whole)
        if view_at is None or owner_at is None:
            return None
        start = view_at - owner_at
    arguments = (owner, start, view.nbytes, view.format, view.shape, view.readonly)
    try:
        rebuilt = make_memoryview(*arguments)
    except (TypeError, ValueError):
        return None
    if rebuilt.tobytes() != view.tobytes():
        return None
    return (make_memoryview, arguments)

