"""Imported INSIDE test kernels: a value-based description of the user's namespace.

Independent of the state engine's own serializers, so a restore is judged by what the values
are (array bytes, frame contents, object attributes, closures, aliasing between names), not by
how the engine stored them.
"""

from __future__ import annotations

import json
import re
import sys
import types
import weakref

import xxhash

_MAX_DEPTH = 6
_WEAK_CONTAINERS = (weakref.WeakKeyDictionary, weakref.WeakValueDictionary, weakref.WeakSet)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_OPAQUE_MODULE_PREFIXES = ("matplotlib", "_io", "socket", "sqlite3", "_thread", "threading")


def _qualname(value: object) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _describe(value: object, depth: int, memo: dict[int, int]) -> object:
    if value is None or isinstance(value, (bool, int, float, complex, str)):
        return repr(value)
    if isinstance(value, (bytes, bytearray)):
        return [_qualname(value), len(value), xxhash.xxh3_64_hexdigest(bytes(value))]
    if id(value) in memo:
        return ["ref", memo[id(value)]]
    memo[id(value)] = len(memo)
    numpy = sys.modules.get("numpy")
    pandas = sys.modules.get("pandas")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return _describe_array(numpy, value)
    if pandas is not None and isinstance(value, (pandas.DataFrame, pandas.Series, pandas.Index)):
        return _describe_pandas(pandas, value)
    if type(value).__module__.startswith("pyarrow") and hasattr(value, "to_pylist"):
        schema = getattr(value, "schema", None) or getattr(value, "type", None)
        return [_qualname(value), str(schema), repr(value.to_pylist())]
    if depth >= _MAX_DEPTH:
        return [_qualname(value)]
    deeper = depth + 1
    if isinstance(value, (list, tuple)):
        return [_qualname(value), [_describe(v, deeper, memo) for v in value]]
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: repr(kv[0]))
        return [_qualname(value), [[repr(k), _describe(v, deeper, memo)] for k, v in items]]
    if isinstance(value, (set, frozenset)):
        return [_qualname(value), sorted(repr(v) for v in value)]
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if isinstance(value, _WEAK_CONTAINERS):
        # caches by nature (singledispatch keeps one); their content is not state
        return [_qualname(value)]
    if isinstance(value, type):
        members = sorted(k for k in vars(value) if not k.startswith("__"))
        return ["type", value.__qualname__, members]
    if isinstance(value, types.FunctionType):
        cells = [_describe(c.cell_contents, deeper, memo) for c in value.__closure__ or ()]
        return ["function", value.__qualname__,
                xxhash.xxh3_64_hexdigest(value.__code__.co_code), cells]
    if type(value).__module__.startswith(_OPAQUE_MODULE_PREFIXES):
        return [_qualname(value)]
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        return [_qualname(value), _describe(attributes, deeper, memo)]
    # values without attributes (Decimal, datetime, zoneinfo, ...) say what they are in repr
    return [_qualname(value), _ADDRESS.sub("0x?", repr(value))]


def _describe_array(numpy: types.ModuleType, value: object) -> object:
    data = numpy.ascontiguousarray(value)
    if value.dtype.hasobject:
        content = repr(value.tolist())
    else:
        content = xxhash.xxh3_64_hexdigest(data.view(numpy.uint8).reshape(-1))
    layout = [value.flags.c_contiguous, value.flags.f_contiguous]
    described = [_qualname(value), value.dtype.str, repr(value.dtype), list(value.shape),
                 layout, content]
    if isinstance(value, numpy.ma.MaskedArray):
        mask = numpy.ma.getmaskarray(value)
        described += [xxhash.xxh3_64_hexdigest(mask.tobytes()), repr(value.fill_value)]
    return described


def _describe_pandas(pandas: types.ModuleType, value: object) -> object:
    hashed = pandas.util.hash_pandas_object(value, index=not isinstance(value, pandas.Index))
    index = value if isinstance(value, pandas.Index) else value.index
    columns = list(map(str, value.columns)) if isinstance(value, pandas.DataFrame) else []
    dtypes = value.dtypes if isinstance(value, pandas.DataFrame) else value.dtype
    return [_qualname(value), columns, list(value.shape), str(dtypes), str(index.dtype),
            list(map(str, index.names)), str(getattr(index, "freq", None)),
            xxhash.xxh3_64_hexdigest(hashed.to_numpy().tobytes())]


def describe_namespace(ns: dict[str, object]) -> str:
    """Return JSON: each user name's description, and which names are the same object."""
    names = sorted(n for n in ns if not n.startswith("_") and n not in (
        "In", "Out", "exit", "quit", "get_ipython", "open"))
    values = {n: dict.__getitem__(ns, n) for n in names}
    described = {n: _describe(v, 0, {}) for n, v in values.items()}
    first: dict[int, str] = {}
    aliases = {}
    for name, value in values.items():
        if isinstance(value, types.ModuleType):
            continue
        aliases[name] = first.setdefault(id(value), name)
    return json.dumps({"values": described, "aliases": aliases}, default=repr)
