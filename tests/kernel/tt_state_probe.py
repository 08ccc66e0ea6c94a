"""Imported INSIDE test kernels: a value-based description of the user's namespace.

Independent of the state engine's own serializers, so a restore is judged by what the values
are (array bytes, frame contents, object attributes, closures, aliasing between names), not by
how the engine stored them.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import sys
import types
import weakref

import xxhash

_MAX_DEPTH = 6
_WEAK_CONTAINERS = (weakref.WeakKeyDictionary, weakref.WeakValueDictionary, weakref.WeakSet)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
# ctypes: native handles (a booster's model) differ between processes for the same content
_OPAQUE_MODULE_PREFIXES = ("matplotlib", "_io", "socket", "sqlite3", "_thread", "threading",
                           "ctypes")


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
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return _describe_tensor(torch, value)
    polars = sys.modules.get("polars")
    if polars is not None and isinstance(value, (polars.DataFrame, polars.Series)):
        if isinstance(value, polars.DataFrame):
            return [_qualname(value), str(value.schema), repr(value.rows())]
        return [_qualname(value), value.name, str(value.dtype), repr(value.to_list())]
    widgets = sys.modules.get("ipywidgets")
    if widgets is not None and isinstance(value, widgets.Widget):
        # by its traits: its comm and model id are the channel to the frontend, not state
        traits = {n: getattr(value, n) for n in value.trait_names()
                  if not n.startswith("_") and n not in ("comm", "keys", "log")}
        return [_qualname(value), _describe(traits, depth + 1, memo)]
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
    if isinstance(attributes, dict) and attributes:
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


def _describe_tensor(torch: types.ModuleType, value: object) -> object:
    dense = value.detach().cpu()
    layout = str(dense.layout)
    if dense.is_sparse:
        dense = dense.to_dense()
    flat = dense.contiguous().reshape(-1)
    content = xxhash.xxh3_64_hexdigest(flat.view(torch.uint8).numpy().tobytes())
    return [_qualname(value), str(value.dtype), list(value.shape), layout,
            value.requires_grad, list(value.stride()) if not value.is_sparse else [],
            value.storage_offset() if not value.is_sparse else 0, content]


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


def _distribution(module: str, providers: dict[str, list[str]]) -> tuple[str, str]:
    """Return the installed distribution providing a module, and its version."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        return "Python standard library", platform.python_version()
    name = providers.get(top, [top])[0]
    return name, importlib.metadata.version(name)


def _origin(kind: type) -> tuple[str, str]:
    """Return a class's name for the report and the module of the library behind it.

    A class the notebook defined is named after what made it (a dataclass, an attrs class, a
    subclass of a library's class).
    """
    name = f"{kind.__module__}.{kind.__qualname__}"
    if kind.__module__ != "__main__":
        return name, kind.__module__
    for marker, maker in (("__attrs_attrs__", "attrs.define"),
                          ("__dataclass_fields__", "dataclasses.dataclass")):
        if marker in vars(kind):
            return f"{name} ({maker})", maker
    base = next((b for b in kind.__mro__[1:] if b.__module__ not in ("__main__", "builtins")),
                kind.__mro__[1])
    return f"{name} ({base.__module__}.{base.__qualname__})", base.__module__


def describe_classes(ns: dict[str, object], names: list[str]) -> str:
    """Return JSON: each name's class, its distribution and version, and the value's id.

    For the coverage report. The id tells a change in place from a rebinding.
    """
    providers = importlib.metadata.packages_distributions()
    described = {}
    for name in names:
        value = dict.__getitem__(ns, name)
        kind = value if isinstance(value, type) and value.__module__ == "__main__" else type(value)
        label, module = _origin(kind)
        if isinstance(value, type):
            label = f"class {label}"
        described[name] = {"class": label, "distribution": _distribution(module, providers),
                           "id": id(value)}
    return json.dumps(described)


def describe_saving(ns: dict[str, object], names: list[str]) -> str:
    """Return JSON: how the engine's serializer saves each name alone (or why it refuses).

    For the coverage report only: the checkpoint itself is judged through the kernel's protocol.
    """
    from timetravel_kernel.errors import SerializationError
    from timetravel_kernel.state.serializers import dump_values

    saving = {}
    for name in names:
        try:
            saved = dump_values((dict.__getitem__(ns, name),), ns, (name,))
        except SerializationError as exc:
            saving[name] = f"refused: {exc.reason}"
            continue
        buffers = len(saved.buffers)
        saving[name] = saved.serializer + (f", {buffers} out-of-band buffer"
                                           f"{'s' if buffers > 1 else ''}" if buffers else "")
    return json.dumps(saving)
