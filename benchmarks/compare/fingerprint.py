"""A state fingerprint computed INSIDE a kernel, the same way for every compared system.

This module is sent as source into each kernel (the stock one, time-travel, Kishu's venv, the
dill baseline) and run there in a private scope by a silent execution, so it may import only
the standard library, dill and xxhash (all four environments have them) and nothing of this
project. It is also importable here, which is how its test checks it.

The fingerprint is ONE dill stream of every saveable user name, hashed with its out-of-band
buffers, so it covers values, dtypes and the identity relations between names (aliases, shared
members, cycles). It is blind to what a restore cannot and need not keep: the identity of
immutable atoms (two equal strings that are or are not the same object), the iteration order
of sets (string hashes differ between processes), and the internals of matplotlib objects
(pickling a figure advances counters inside it; what it draws is compared instead). Numpy
arrays are compared by value, plus which top-level arrays share memory (a view and its base).
Names that cannot be pickled are compared by name and type only.
"""

from __future__ import annotations

import json
import pickle
import types

import dill
import xxhash

__all__ = ["IGNORED_NAMES", "clear_user_names", "state_fingerprint", "user_names"]

# IPython's own names, Kishu's instrument, and names a restore legitimately rebinds.
IGNORED_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open", "kishu",
                           "init_kishu"})
_ATOMS = (str, bytes, tuple, frozenset, types.CodeType)


def user_names(ns: dict) -> list[str]:
    """Return the names of the user's state: not ``_``-prefixed, not IPython's or Kishu's."""
    return sorted(n for n in dict.keys(ns)
                  if not n.startswith("_") and n not in IGNORED_NAMES)


def clear_user_names(ns: dict) -> None:
    """Delete every user name (before loading a whole-session dump into ``ns``)."""
    for name in user_names(ns):
        dict.__delitem__(ns, name)


def _render(value: object) -> str | None:
    """Return a hash of what a matplotlib figure (or an artist on one) draws, else None."""
    if not type(value).__module__.startswith("matplotlib"):
        return None
    figure = getattr(value, "figure", value)
    if type(figure).__module__ != "matplotlib.figure":
        return None
    # Drawn on an Agg canvas whatever the backend: a figure unpickled in a fresh kernel where
    # no backend was chosen has a canvas that cannot draw. The figure's own canvas is put back.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = figure.canvas
    try:
        agg = FigureCanvasAgg(figure)
        agg.draw()
        return xxhash.xxh3_128_hexdigest(bytes(agg.buffer_rgba()))
    finally:
        figure.set_canvas(canvas)


class _Hashing:
    def __init__(self) -> None:
        self.digest = xxhash.xxh3_128()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)


class _FingerprintPickler(dill.Pickler):
    """dill's pure-Python pickler, made blind to what is not part of a state (see the module)."""

    def __init__(self, out: object, ns: dict, buffers: list) -> None:
        super().__init__(out, protocol=5, buffer_callback=buffers.append)
        self._ns = ns

    def persistent_id(self, obj: object) -> object:
        if obj is self._ns:  # a notebook function's globals: the namespace itself
            return "namespace"
        rendered = _render(obj)
        if rendered is not None:
            return ("rendered", type(obj).__qualname__, rendered)
        return None

    def reducer_override(self, obj: object) -> object:
        if type(obj) in (set, frozenset):
            return type(obj), (sorted(obj, key=repr),)
        if isinstance(obj, type) and obj.__module__ == "__main__":
            # A notebook class, by value as dill does, but with its members sorted: a class
            # rebuilt from a pickle gets __dict__ and __weakref__ appended in another order;
            # __slotnames__ is copyreg's cache, added once an instance has been pickled.
            members = sorted((k, v) for k, v in vars(obj).items()
                             if k not in ("__dict__", "__weakref__", "__slotnames__"))
            return type, (obj.__qualname__, obj.__bases__, members)
        if type(obj) is types.FunctionType and obj.__globals__ is self._ns:
            # A notebook function, bound to the namespace. dill would copy the namespace into
            # it unless the namespace is __main__.__dict__ (Kishu swaps in its own dict). This
            # stream is only hashed, never loaded, so the reduction just lists what matters.
            return types.FunctionType, (obj.__code__, obj.__globals__, obj.__name__,
                                        obj.__defaults__, obj.__closure__, obj.__qualname__,
                                        obj.__kwdefaults__, obj.__dict__)
        return NotImplemented

    def memoize(self, obj: object) -> None:
        # Unpickled numpy arrays may get their own dtype objects instead of the shared
        # builtin ones: like atoms, dtypes are compared by value only.
        if type(obj) not in _ATOMS and not type(obj).__module__.startswith("numpy.dtypes"):
            super().memoize(obj)


def _digest(ns: dict, values: tuple, arrays: object = ()) -> str:
    """Return the hash of one stream of ``values`` and its out-of-band buffers."""
    out = _Hashing()
    buffers: list[pickle.PickleBuffer] = []
    _FingerprintPickler(out, ns, buffers).dump(values)
    out.digest.update(repr(arrays).encode())
    for buffer in buffers:
        out.digest.update(buffer.raw())
    return out.digest.hexdigest()


def _name_digest(ns: dict, value: object) -> str | None:
    try:
        return _digest(ns, (value,))
    except Exception:  # anything pickling raises makes the value unsaveable
        return None


def _shared_arrays(values: dict[str, object]) -> list[list[str]]:
    """Return the pairs of top-level numpy arrays that share memory (views and their bases)."""
    import sys

    numpy = sys.modules.get("numpy")
    if numpy is None:
        return []
    arrays = [(n, v) for n, v in values.items() if isinstance(v, numpy.ndarray)]
    return [[a, b] for i, (a, x) in enumerate(arrays) for b, y in arrays[i + 1:]
            if x is not y and numpy.shares_memory(x, y)]


def state_fingerprint(ns: dict) -> str:
    """Return JSON: the digest of the whole state, and per name a digest or the type.

    ``digest`` covers the saveable names in ONE stream (so aliasing between them counts);
    ``names`` maps each saveable name to the digest of its value alone (to say which differ);
    ``unsaveable`` maps the others to their type.
    """
    values = {n: dict.__getitem__(ns, n) for n in user_names(ns)}
    names = {n: _name_digest(ns, v) for n, v in values.items()}
    unsaveable = {n: f"{type(v).__module__}.{type(v).__qualname__}"
                  for n, v in values.items() if names[n] is None}
    saveable = {n: d for n, d in names.items() if d is not None}
    digest = _digest(ns, (sorted(saveable), *(values[n] for n in sorted(saveable))),
                     _shared_arrays(values))
    return json.dumps({"digest": digest, "names": saveable, "unsaveable": unsaveable})
