"""Reductions of values default pickling gets wrong in a notebook, one family at a time."""

from __future__ import annotations

import enum
import functools
import io
import sys
import types

import numpy as np
import pytest

from timetravel_kernel.errors import SerializationError
from timetravel_kernel.state import dump_values, load_values
from timetravel_kernel.state.reductions import array_buffer, import_attribute, reduce_imported

from ..workloads import fresh_namespace, run_cell


class Resolver:
    def __init__(self, ns: dict) -> None:
        self.ns = ns

    def value(self, name: str) -> object:
        return self.ns[name]

    def namespace(self) -> dict:
        return self.ns


def save(ns: dict, name: str):
    return dump_values((ns[name],), ns, (name,))


def load_into(fresh: dict, serialized) -> object:
    """Load a stream into another namespace, as a restart or an undo past a definition does."""
    buffers = [bytearray(b) for b in serialized.buffers]
    (value,) = load_values(serialized.serializer, serialized.stream, buffers, Resolver(fresh))
    return value


# -- buffers the buffer protocol cannot describe ---------------------------------------------

@pytest.mark.parametrize("dtype", ["M8[Y]", "M8[D]", "M8[s]", "M8[ns]", ">M8[us]", "m8[ms]",
                                   "m8[ns]", "m8[D]"])
def test_dates_and_durations_go_out_of_band_with_their_item_width(dtype: str) -> None:
    array = np.arange(50_000).astype(dtype)
    buffer = array_buffer(array)
    assert buffer is not None
    assert memoryview(buffer).itemsize == 8
    assert np.shares_memory(np.frombuffer(buffer.raw(), np.uint8), array)  # a view, no copy
    ns = fresh_namespace()
    ns["a"] = array
    serialized = save(ns, "a")
    assert [len(b) for b in serialized.buffers] == [400_000]
    restored = load_into(fresh_namespace(), serialized)
    assert restored.dtype == array.dtype and (restored.view("i8") == array.view("i8")).all()


def test_structured_dates_go_out_of_band_and_views_of_dates_stay_views() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import numpy as np\n"
                 "s = np.zeros(1000, [('t', 'M8[s]'), ('x', 'f8')])\ns['x'] = 1.5\n"
                 "base = np.arange(1000).astype('M8[ms]').reshape(10, 100)\n"
                 "v = base[::2, 3:]\nf = np.asfortranarray(base)")
    (s, base, v, f) = dump_and_load(ns, "s", "base", "v", "f")
    assert s.dtype == ns["s"].dtype and (s == ns["s"]).all()
    assert v.base is base.base or v.base is base
    v[0, 0] = np.datetime64("2000-01-01", "ms")
    assert base[0, 3] == np.datetime64("2000-01-01", "ms")
    assert f.flags.f_contiguous and (f == ns["f"]).all()


def dump_and_load(ns: dict, *names: str) -> tuple:
    serialized = dump_values(tuple(ns[n] for n in names), ns, names)
    buffers = [bytearray(b) for b in serialized.buffers]
    return load_values(serialized.serializer, serialized.stream, buffers, Resolver(ns))


def test_arrays_of_pointers_have_no_buffer_and_are_saved_in_band() -> None:
    objects = np.array([{}, None], dtype=object)
    assert array_buffer(objects) is None
    # numpy 2's variable-width strings (numpy 1.26, which the package supports, has none)
    string_dtype = getattr(np.dtypes, "StringDType", None)
    strings = np.array(["a", "bb"], dtype=string_dtype() if string_dtype else object)
    assert array_buffer(strings) is None
    ns = fresh_namespace()
    ns["strings"] = strings
    assert list(load_into(ns, save(ns, "strings"))) == ["a", "bb"]


# -- what the notebook defined ---------------------------------------------------------------

ENUMS = """
import enum
class Color(enum.Enum):
    RED = 1
    CRIMSON = 1
    BLUE = 'b'
    def shout(self):
        return self.name.upper() + '!'
    @classmethod
    def _missing_(cls, value):
        return cls.RED
class Perm(enum.Flag, boundary=enum.KEEP):
    R = 4
    W = 2
    RW = 6
class Level(enum.IntEnum):
    LOW = 1
    def __str__(self):
        return 'level ' + self.name
class Named(str, enum.Enum):
    A = 'a'
"""


@pytest.mark.parametrize("name", ["Color", "Perm", "Level", "Named"])
def test_notebook_enums_are_saved_by_value_with_members_aliases_and_methods(name: str) -> None:
    ns = fresh_namespace()
    run_cell(ns, ENUMS)
    original = ns[name]
    restored = load_into(fresh_namespace(), save(ns, name))
    assert restored is not original and isinstance(restored, enum.EnumMeta)
    assert [(m.name, m.value) for m in restored] == [(m.name, m.value) for m in original]
    assert list(restored.__members__) == list(original.__members__)
    assert restored.__module__ == "__main__" and restored.__qualname__ == name
    if name == "Color":
        assert restored.CRIMSON is restored.RED and restored.BLUE.shout() == "BLUE!"
        assert restored("nope") is restored.RED  # its own _missing_
    if name == "Perm":
        assert restored(7).value == 7 and restored._boundary_ is enum.KEEP
        assert restored.R | restored.W is restored.RW
    if name == "Level":
        assert str(restored.LOW) == "level LOW" and restored.LOW == 1
    if name == "Named":
        assert restored.A == "a" and isinstance(restored.A, str)


def test_members_refer_to_their_enum_by_name() -> None:
    ns = fresh_namespace()
    run_cell(ns, ENUMS + "chosen = [Color.RED, Perm.R | Perm.W]")
    serialized = save(ns, "chosen")
    assert serialized.refs == ("Color", "Perm")
    fresh = fresh_namespace()
    fresh["Color"] = load_into(fresh, save(ns, "Color"))
    fresh["Perm"] = load_into(fresh, save(ns, "Perm"))
    chosen = load_into(fresh, serialized)
    assert chosen[0] is fresh["Color"].RED and chosen[1] is fresh["Perm"].RW


def test_cached_functions_keep_their_parameters_and_drop_their_cache() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import functools\n@functools.lru_cache(maxsize=7, typed=True)\n"
                 "def f(x):\n    return x * 2\nf(1)\n@functools.cache\ndef g(x):\n    return -x")
    fresh = fresh_namespace()
    f = load_into(fresh, save(ns, "f"))
    g = load_into(fresh, save(ns, "g"))
    assert f.cache_parameters() == {"maxsize": 7, "typed": True}
    assert f.cache_info().currsize == 0 and f(4) == 8 and f.__name__ == "f"
    assert g.cache_parameters()["maxsize"] is None and g(3) == -3
    assert f.__wrapped__.__globals__ is fresh  # bound to the namespace it was restored into


def test_single_dispatch_keeps_its_registry() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import functools\n@functools.singledispatch\ndef kind(x):\n    return 'any'\n"
                 "@kind.register\ndef _(x: int):\n    return 'int'\n"
                 "@kind.register(list)\ndef for_lists(x):\n    return 'list'\n")
    serialized = dump_values((ns["kind"],), ns, ("kind",), is_tracked=lambda n: n != "_")
    assert serialized.refs == ("for_lists",)
    fresh = fresh_namespace()
    fresh["for_lists"] = ns["for_lists"]
    kind = load_into(fresh, serialized)
    assert [kind(1), kind([]), kind("s")] == ["int", "list", "any"]
    assert kind.registry[list] is ns["for_lists"]


def test_type_variables_and_generic_classes() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import typing\nT = typing.TypeVar('T', int, str, covariant=True)\n"
                 "B = typing.TypeVar('B', bound=float)\nP = typing.ParamSpec('P')\n"
                 "class Box(typing.Generic[T]):\n    pass")
    fresh = fresh_namespace()
    for name in ("T", "B", "P"):
        fresh[name] = load_into(fresh, save(ns, name))
        assert repr(fresh[name]) == repr(ns[name]) and fresh[name].__module__ == "__main__"
    assert fresh["T"].__constraints__ == (int, str) and fresh["T"].__covariant__
    assert fresh["B"].__bound__ is float
    box = load_into(fresh, save(ns, "Box"))
    assert box.__parameters__ == (fresh["T"],)


def test_cached_property_classes_and_instances() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import functools\nclass C:\n    @functools.cached_property\n"
                 "    def v(self):\n        return [1]\nc = C()\nc.v")
    fresh = fresh_namespace()
    fresh["C"] = load_into(fresh, save(ns, "C"))
    c = load_into(fresh, save(ns, "c"))
    assert type(c) is fresh["C"] and c.v == [1] and fresh["C"]().v == [1]


def test_nested_classes_and_methods_are_reached_through_their_owner() -> None:
    ns = fresh_namespace()
    run_cell(ns, "class Outer:\n    class Inner:\n        pass\n    def method(self):\n"
                 "        return 1\ninner = Outer.Inner()\nm = Outer.method")
    serialized = dump_values((ns["inner"], ns["m"]), ns, ("inner", "m"))
    assert serialized.refs == ("Outer",)
    fresh = fresh_namespace()
    fresh["Outer"] = load_into(fresh, save(ns, "Outer"))
    inner, m = load_values(serialized.serializer, serialized.stream, [], Resolver(fresh))
    assert type(inner) is fresh["Outer"].Inner and m is fresh["Outer"].method


def test_wrappers_made_by_a_library_keep_their_module_globals() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import contextlib\n@contextlib.contextmanager\ndef managed(n):\n"
                 "    yield list(range(n))\n")
    # contextlib's helper function, claiming __main__ through functools.wraps
    assert ns["managed"].__globals__ is not ns and ns["managed"].__module__ == "__main__"
    fresh = fresh_namespace()
    managed = load_into(fresh, save(ns, "managed"))
    with managed(3) as value:
        assert value == [0, 1, 2]


# -- what was imported -----------------------------------------------------------------------

def test_imported_ufuncs_are_references_to_their_real_module() -> None:
    ns = fresh_namespace()
    run_cell(ns, "from scipy.special import rel_entr\nfrom numpy import add\nfrom math import sqrt")
    # pickle's own module search would find the names in the notebook's module
    fake_main = types.ModuleType("__main__")
    fake_main.__dict__.update(ns)
    sys.modules["__tt_alias_of_main__"] = fake_main
    try:
        for name in ("rel_entr", "add", "sqrt"):
            serialized = save(ns, name)
            assert b"__main__" not in serialized.stream, name
            assert load_into(fresh_namespace(), serialized) is ns[name]
        home = reduce_imported(ns["rel_entr"], "__main__")
        assert home is not None and home[1][0].startswith("scipy.special")
    finally:
        del sys.modules["__tt_alias_of_main__"]


def test_a_reference_is_checked_when_it_is_saved() -> None:
    assert import_attribute("os.path", "join") is __import__("os").path.join
    stray = np.frompyfunc(lambda x: x, 1, 1)  # a ufunc no module holds
    assert reduce_imported(stray, "__main__") is None
    ns = fresh_namespace()
    ns["stray"] = stray
    with pytest.raises(SerializationError, match="cannot be saved"):
        save(ns, "stray")


# -- streams and what is still refused -------------------------------------------------------

def test_in_memory_streams_are_saved_with_their_position() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import io\nb = io.BytesIO(b'abcdef'); b.seek(2)\ns = io.StringIO('xyz'); "
                 "s.read(1)")
    b = load_into(fresh_namespace(), save(ns, "b"))
    s = load_into(fresh_namespace(), save(ns, "s"))
    assert (b.getvalue(), b.tell(), s.getvalue(), s.tell()) == (b"abcdef", 2, "xyz", 1)


@pytest.mark.parametrize(("code", "reason"), [
    ("v = io.BytesIO(); v.close()", "a closed in-memory stream cannot be saved"),
    ("v = (i for i in range(3))", "re-run the cell that created it"),
    ("v = open(__file__ if '__file__' in dir() else '/dev/null')", "an open file is not saved"),
])
def test_what_is_still_refused_says_why(code: str, reason: str) -> None:
    ns = fresh_namespace()
    run_cell(ns, "import io\n" + code)
    with pytest.raises(SerializationError) as caught:
        save(ns, "v")
    assert reason in caught.value.reason
    if isinstance(ns["v"], io.IOBase):
        ns["v"].close()


def test_a_cache_around_an_import_is_saved_by_value() -> None:
    ns = fresh_namespace()
    ns["cached_len"] = functools.lru_cache(maxsize=None)(len)  # claims to be builtins.len
    cached = load_into(fresh_namespace(), save(ns, "cached_len"))
    assert cached is not ns["cached_len"] and cached("abc") == 3 and cached.__wrapped__ is len


# -- memoryviews, container subclasses, functions made at run time ---------------------------

def test_memoryview_comes_back_as_a_view_of_its_restored_owner() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import numpy as np\nraw = bytearray(b'abcdefgh')\nwhole = memoryview(raw)\n"
                 "part = whole[2:6]\ngrid = memoryview(np.arange(6.0).reshape(2, 3))")
    serialized = dump_values((ns["raw"], ns["whole"], ns["part"]), ns, ("raw", "whole", "part"))
    raw, whole, part = load_values(serialized.serializer, serialized.stream,
                                   [bytearray(b) for b in serialized.buffers], Resolver(ns))
    whole[2] = ord("Z")
    assert bytes(raw) == b"abZdefgh" and part.tobytes() == b"Zdef" and part.obj is raw
    grid = load_into(fresh_namespace(), save(ns, "grid"))
    assert grid.shape == (2, 3) and grid.format == "d" and grid.tolist() == ns["grid"].tolist()


def test_list_and_dict_subclasses_are_filled_after_their_attributes() -> None:
    ns = fresh_namespace()
    run_cell(ns, """
class Watched(list):
    def __init__(self, items, owner):
        self.owner = owner
        super().__init__(items)
    def extend(self, items):
        self.owner.append('extend')  # needs its attribute: pickle fills before setting it
        super().extend(items)
class Keyed(dict):
    def __setitem__(self, key, value):
        self.log.append(key)
        super().__setitem__(key, value)
watched = Watched([1, 2], [])
keyed = Keyed()
keyed.log = []
keyed['a'] = 1
""")
    watched = load_into(ns, save(ns, "watched"))
    keyed = load_into(ns, save(ns, "keyed"))
    assert list(watched) == [1, 2] and watched.owner == []
    assert dict(keyed) == {"a": 1} and keyed.log == ["a"]


def test_function_made_at_run_time_saves_only_the_globals_it_reads() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import threading\nscope = {'lock': threading.Lock(), 'k': 3}\n"
                 "exec('def triple(x):\\n    return x * k', scope)\ntriple = scope['triple']")
    triple = load_into(fresh_namespace(), save(ns, "triple"))  # the lock is not read: not saved
    assert triple(2) == 6 and set(triple.__globals__) == {"k"}
