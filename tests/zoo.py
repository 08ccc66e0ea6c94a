"""Zoos of everyday values and notebook constructs, run through the engine and real kernels.

Each zoo is three cells of notebook code: ``SETUP`` imports, ``CREATE`` binds every case's
names, ``MODIFY`` changes them (in place where the value allows it). A test runs them, then
checks that every name was saved (none refused) and that undo, redo and a restart bring each
state back exactly, judged by ``tests/kernel/tt_state_probe.py`` and by ``OBSERVE``: code that
exercises what the values do (call the function, compare the enum member, read the stream).
"""

from __future__ import annotations

import textwrap

__all__ = ["CONSTRUCTS", "DTYPES", "Zoo", "assert_same"]


class Zoo:
    """One zoo: its cells, the names it makes and an expression observing their behaviour."""

    def __init__(self, setup: str, cases: dict[str, tuple[str, str]], observe: str = "") -> None:
        self.setup = textwrap.dedent(setup).strip()
        self.cases = {name: (textwrap.dedent(create).strip(), textwrap.dedent(modify).strip())
                      for name, (create, modify) in cases.items()}
        self.observe = textwrap.dedent(observe).strip()

    @property
    def create(self) -> str:
        return "\n".join(create for create, _ in self.cases.values())

    @property
    def modify(self) -> str:
        return "\n".join(modify for _, modify in self.cases.values() if modify)

    @property
    def names(self) -> set[str]:
        """Every name the zoo binds (a line binding two names leaves the second case empty)."""
        return set(self.cases)


def assert_same(actual: tuple[dict, object], expected: tuple[dict, object], where: str) -> None:
    """Assert two snapshots (probe descriptions and observed behaviour) are equal, naming names."""
    for key in ("values", "aliases"):
        got, want = actual[0][key], expected[0][key]
        differing = sorted(n for n in set(got) | set(want) if got.get(n) != want.get(n))
        assert not differing, f"{where}: {key} differ for {differing}"
    assert actual[1] == expected[1], f"{where}: behaviour differs"


_N = 1000

DTYPES = Zoo(
    setup="""
        import datetime, decimal, fractions, zoneinfo
        import numpy as np
        import pandas as pd
        import pyarrow as pa
    """,
    cases={
        **{
            f"a_{name}": (f"a_{name} = (np.arange({_N}) % 100).astype('{code}')",
                          f"a_{name}[5] = a_{name}[7]")
            for name, code in {
                "bool": "?", "i1": "i1", "i2": "i2", "i4": "i4", "i8": "i8", "u1": "u1",
                "u2": "u2", "u4": "u4", "u8": "u8", "f2": "f2", "f4": "f4", "f8": "f8",
                "longdouble": "g", "c8": "c8", "c16": "c16", "big_i4": ">i4", "big_f8": ">f8",
                "big_dates": ">M8[ns]",
            }.items()
        },
        **{
            f"dt_{unit}": (
                f"dt_{unit} = np.arange({_N}).astype('M8[{unit}]'); "
                f"dt_{unit}[3] = np.datetime64('NaT')",
                f"dt_{unit}[5] = np.datetime64('2021-06-01', '{unit}')",
            )
            for unit in ("Y", "M", "D", "h", "s", "ms", "us", "ns")
        },
        **{
            f"td_{unit}": (f"td_{unit} = np.arange({_N}).astype('m8[{unit}]')",
                           f"td_{unit}[5] = np.timedelta64(-4, '{unit}')")
            for unit in ("D", "s", "ms", "ns")
        },
        "u_str": ("u_str = np.array(['a', 'bb', 'ccc'] * 300)", "u_str[1] = 'zz'"),
        "b_str": ("b_str = np.array([b'a', b'bb'] * 500)", "b_str[1] = b'q'"),
        "structured": (
            f"structured = np.zeros({_N}, dtype=[('i', 'i4'), ('x', 'f8'), ('t', 'M8[s]')])",
            "structured['t'][3] = np.datetime64('2020-01-01T10:00'); structured['x'][4] = 1.5",
        ),
        "void": ("void = np.zeros(100, dtype='V7')", "void[2] = b'\\x01' * 7"),
        "objects": ("objects = np.array([{'k': 1}, None, 'text'] * 10, dtype=object)",
                    "objects[0]['k'] = 2"),
        "masked": (f"masked = np.ma.masked_array(np.arange({_N}.0), mask=np.arange({_N}) % 3 == 0)",
                   "masked[1] = np.ma.masked; masked[3] = 7.5"),
        "masked_dates": ("masked_dates = np.ma.masked_array(np.arange(50).astype('M8[D]'), "
                         "mask=np.arange(50) % 4 == 0)", "masked_dates[2] = np.ma.masked"),
        "fortran": ("fortran = np.asfortranarray(np.arange(200).reshape(10, 20))",
                    "fortran[1, 2] = -1"),
        "fortran_dates": ("fortran_dates = np.asfortranarray("
                          "np.arange(200).reshape(10, 20).astype('M8[s]'))",
                          "fortran_dates[1, 2] = np.datetime64('2000-01-01T00:00:00')"),
        "base": (f"base = np.arange({_N}.0); view = base[::3]", "view[2] = -1.0"),
        "view": ("", ""),
        "date_base": (f"date_base = np.arange({_N}).astype('M8[ms]'); "
                      "date_view = date_base[10:500:2]",
                      "date_view[0] = np.datetime64('1999-12-31T23:59:59.999')"),
        "date_view": ("", ""),
        "zero_d": ("zero_d = np.array(3.5)", "zero_d[()] = 4.5"),
        "zero_d_date": ("zero_d_date = np.array(np.datetime64('2020-01-01T00:00', 'ns'))",
                        "zero_d_date[()] = np.datetime64('2020-02-01', 'ns')"),
        "empty": ("empty = np.zeros((0, 3))", ""),
        "empty_dates": ("empty_dates = np.array([], dtype='M8[ns]')", ""),
        "categorical": ("categorical = pd.Series(pd.Categorical(['a', 'b', 'c'] * 100))",
                        "categorical.iloc[3] = 'c'"),
        "nullable_int": ("nullable_int = pd.Series([1, None, 3] * 100, dtype='Int64')",
                         "nullable_int.iloc[0] = 7"),
        "nullable_bool": ("nullable_bool = pd.Series([True, None, False] * 100, dtype='boolean')",
                          "nullable_bool.iloc[1] = False"),
        "str_python": ("str_python = pd.Series(['x', None, 'yy'] * 100, "
                       "dtype=pd.StringDtype('python'))", "str_python.iloc[0] = 'changed'"),
        "str_arrow": ("str_arrow = pd.Series(['x', None, 'yy'] * 100, "
                      "dtype=pd.StringDtype('pyarrow'))", "str_arrow.iloc[0] = 'changed'"),
        "tz_aware": (f"tz_aware = pd.Series(pd.date_range('2020-03-28', periods={_N}, "
                     "freq='h', tz='Europe/Paris'))",
                     "tz_aware.iloc[4] = pd.Timestamp('2021-01-01', tz='Europe/Paris')"),
        "date_frame": (f"date_frame = pd.DataFrame({{'ds': pd.date_range('2020-01-01', "
                       f"periods={_N}, freq='h'), 'y': np.arange({_N}.0)}})",
                       "date_frame.loc[5, 'ds'] = pd.Timestamp('2021-01-01 12:00')"),
        "date_indexed": (f"date_indexed = pd.DataFrame({{'y': np.arange({_N}.0)}}, "
                         f"index=pd.date_range('2020-01-01', periods={_N}, freq='D', "
                         "name='day'))", "date_indexed.iloc[3, 0] = -1.0"),
        "timedeltas": (f"timedeltas = pd.Series(pd.to_timedelta(np.arange({_N}), unit='s'))",
                       "timedeltas.iloc[2] = pd.Timedelta(days=3)"),
        "periods": ("periods = pd.Series(pd.period_range('2020-01', periods=100, freq='M'))",
                    "periods.iloc[2] = pd.Period('1999-12', freq='M')"),
        "intervals": ("intervals = pd.Series(pd.interval_range(0, 100))",
                      "intervals.iloc[2] = pd.Interval(50, 51)"),
        "sparse": ("sparse = pd.Series(pd.arrays.SparseArray([0, 0, 1, 0, 2] * 100))",
                   "sparse = sparse + 1  # immutable: a new value"),
        "multi_indexed": ("multi_indexed = pd.DataFrame({'v': range(100)}, index="
                          "pd.MultiIndex.from_product([list('abcd'), range(25)], "
                          "names=['k', 'n']))", "multi_indexed.iloc[7, 0] = -3"),
        "date_index": ("date_index = pd.date_range('2021-01-01', periods=50, freq='min')", ""),
        "arrow_table": ("arrow_table = pa.table({'a': [1, 2, None], 'ts': pa.array("
                        "[0, 1, 2], pa.timestamp('ms')), 's': ['x', 'y', None]})", ""),
        "arrow_array": ("arrow_array = pa.array([1.5, None, 3.0])", ""),
        "arrow_chunked": ("arrow_chunked = pa.chunked_array([[1, 2], [3]])", ""),
        "std_values": (
            "std_values = [decimal.Decimal('1.10'), fractions.Fraction(1, 3), "
            "datetime.datetime(2020, 3, 29, 1, 30, tzinfo=zoneinfo.ZoneInfo('Europe/Paris')), "
            "datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=2))), "
            "datetime.date(2020, 2, 29), datetime.timedelta(days=1, microseconds=3)]",
            "std_values.append(decimal.Decimal('-0.000'))",
        ),
    },
)

CONSTRUCTS = Zoo(
    setup="""
        import abc, copy, dataclasses, enum, functools, io, random, typing, weakref
        from collections import namedtuple
        import numpy as np
        from numpy import add as np_add
        from scipy.special import rel_entr, kl_div
        from math import sqrt, pi
        from fractions import Fraction
    """,
    cases={
        "Color": ("""
            class Color(enum.Enum):
                RED = 1
                GREEN = 2
                CRIMSON = 1
                def describe(self):
                    return f"{self.name.lower()}={self.value}"
            """, ""),
        "Perm": ("""
            class Perm(enum.Flag):
                R = enum.auto()
                W = enum.auto()
                X = enum.auto()
                RW = R | W
            """, ""),
        "Level": ("""
            class Level(enum.IntEnum):
                LOW = 1
                HIGH = 2
                def __str__(self):
                    return "level " + self.name
            """, ""),
        "Planet": ("""
            class Planet(enum.Enum):
                EARTH = (5.97e24, 6.37e6)
                MARS = (6.42e23, 3.39e6)
                def __init__(self, mass, radius):
                    self.mass, self.radius = mass, radius
            """, ""),
        "chosen": ("chosen = [Color.RED, Perm.R | Perm.X, Level.HIGH, Planet.MARS]",
                   "chosen.append(Color.GREEN)"),
        "fib": ("""
            @functools.lru_cache(maxsize=64)
            def fib(n):
                return n if n < 2 else fib(n - 1) + fib(n - 2)
            """, ""),
        "square": ("""
            @functools.cache
            def square(x):
                return x * x
            """, ""),
        "Lazy": ("""
            class Lazy:
                def __init__(self, n):
                    self.n = n
                @functools.cached_property
                def total(self):
                    return sum(range(self.n))
            """, ""),
        "lazy": ("lazy = Lazy(10); lazy.total", "lazy.n = 20"),
        "Point": ("""
            @dataclasses.dataclass
            class Point:
                x: float
                y: float = 0.0
            """, ""),
        "Frozen": ("""
            @dataclasses.dataclass(frozen=True)
            class Frozen:
                name: str
            """, ""),
        "points": ("points = [Point(1.0), Frozen('f')]", "points[0].y = 9.0"),
        "Pair": ("Pair = namedtuple('Pair', 'left right')", ""),
        "Row": ("""
            class Row(typing.NamedTuple):
                key: str
                value: int = 0
            """, ""),
        "Movie": ("""
            class Movie(typing.TypedDict):
                title: str
                year: int
            """, ""),
        "Greeter": ("""
            class Greeter(typing.Protocol):
                def greet(self) -> str: ...
            """, ""),
        "records": ("records = [Pair(1, 2), Row('a'), Movie(title='t', year=1)]",
                    "records.append(Row('b', 2))"),
        "T": ("T = typing.TypeVar('T', bound=float)", ""),
        "Params": ("Params = typing.ParamSpec('Params')", ""),
        "Box": ("""
            class Box(typing.Generic[T]):
                def __init__(self, item: T):
                    self.item = item
            """, ""),
        "box": ("box = Box(2.5)", "box.item = 3.5"),
        "logged": ("""
            def logged(func):
                @functools.wraps(func)
                def wrapper(*args):
                    return ("logged", func(*args))
                return wrapper

            @logged
            def add_one(x):
                return x + 1
            """, ""),
        "add_one": ("", ""),
        "describe": ("""
            @functools.singledispatch
            def describe(x):
                return "something"

            @describe.register
            def _(x: int):
                return "an int"

            @describe.register(list)
            def _describe_list(x):
                return "a list"
            """, ""),
        "_describe_list": ("", ""),
        "halve": ("halve = functools.partial(lambda x, d: x / d, d=2)", ""),
        "make_class": ("""
            def make_class(label):
                class Made:
                    tag = label
                    def get(self):
                        return self.tag
                return Made
            Made = make_class("inner")
            made = Made()
            """, "made.extra = 1"),
        "Made": ("", ""),
        "made": ("", ""),
        "Outer": ("""
            class Outer:
                class Inner:
                    value = 5
            inner = Outer.Inner()
            """, "inner.value = 6"),
        "inner": ("", ""),
        "Meta": ("""
            class Meta(type):
                def __new__(mcls, name, bases, ns):
                    ns["made_by_meta"] = True
                    return super().__new__(mcls, name, bases, ns)
            class WithMeta(metaclass=Meta):
                pass
            """, ""),
        "WithMeta": ("", ""),
        "Shape": ("""
            class Shape(abc.ABC):
                @abc.abstractmethod
                def area(self): ...
            class Square(Shape):
                def __init__(self, side):
                    self._side = side
                @property
                def side(self):
                    return self._side
                @side.setter
                def side(self, value):
                    self._side = value
                def area(self):
                    return self._side ** 2
            sq = Square(3)
            """, "sq.side = 4"),
        "Square": ("", ""),
        "sq": ("", ""),
        "Oops": ("""
            class Oops(ValueError):
                pass
            oops = Oops("bad value", 3)
            """, ""),
        "oops": ("", ""),
        "weak": ("weak = weakref.ref(sq)", ""),
        "items": ("items = iter([1, 2, 3, 4]); next(items)", "next(items)"),
        "mapped": ("mapped = map(str, [1, 2, 3]); next(mapped)", "next(mapped)"),
        "zipped": ("zipped = zip('abc', [1, 2, 3])", "next(zipped)"),
        "rand": ("rand = random.Random(42); rand.random()", "rand.random()"),
        "rng": ("rng = np.random.default_rng(7); rng.random()", "rng.random()"),
        "np_add": ("", ""),
        "rel_entr": ("", ""),
        "kl_div": ("", ""),
        "sqrt": ("", ""),
        "pi": ("", ""),
        "Fraction": ("", ""),
        "bio": ("bio = io.BytesIO(b'hello world'); bio.seek(6)", "bio.write(b'W')"),
        "sio": ("sio = io.StringIO('some text'); sio.read(2)", "sio.write('X')"),
    },
    observe="""
        {
            "color": [Color.RED.describe(), Color.CRIMSON is Color.RED, [m.name for m in Color],
                      chosen[0] is Color.RED, isinstance(chosen[0], Color)],
            "perm": [repr(Perm.RW), (Perm.R | Perm.W) is Perm.RW, repr(chosen[1]),
                     chosen[1] in Perm.R | Perm.X],
            "level": [str(Level.HIGH), Level.HIGH > 1, chosen[2] is Level.HIGH],
            "planet": [Planet.MARS.mass, chosen[3] is Planet.MARS],
            "cached": [fib(30), fib.cache_parameters(), square(12)],
            "lazy": [lazy.total, lazy.n, isinstance(lazy, Lazy),
                     type(Lazy.__dict__["total"]).__name__],
            "records": [repr(points), points[1] == Frozen("f"), repr(records),
                        isinstance(records[1], Row),
                        Movie.__annotations__ == {"title": str, "year": int}],
            "generic": [box.item, isinstance(box, Box), repr(Box.__parameters__),
                        Box.__parameters__[0] is T, repr(T.__bound__), repr(Params)],
            "wrapped": [add_one(1), add_one.__name__, add_one.__wrapped__(1)],
            "dispatch": [describe(1), describe([1]), describe("x"),
                         sorted(t.__name__ for t in describe.registry)],
            "partial": [halve(9)],
            "made": [made.get(), isinstance(made, Made), vars(made), Made.__qualname__],
            "nested": [inner.value, isinstance(inner, Outer.Inner)],
            "meta": [WithMeta.made_by_meta, type(WithMeta) is Meta],
            "abc": [sq.area(), sq.side, isinstance(sq, Shape),
                    Square.__abstractmethods__ == frozenset()],
            "exception": [repr(oops), isinstance(oops, ValueError), oops.args],
            "weak": [weak() is sq],
            "iterators": [list(copy.deepcopy(items)), list(copy.deepcopy(mapped)),
                          list(copy.deepcopy(zipped))],
            "random": [copy.deepcopy(rand).random(), copy.deepcopy(rng).random()],
            "imported": [float(rel_entr(2.0, 1.0)), float(kl_div(2.0, 1.0)), int(np_add(2, 3)),
                         sqrt(16.0), pi, repr(Fraction(1, 3))],
            "streams": [bio.getvalue().decode(), bio.tell(), sio.getvalue(), sio.tell()],
        }
    """,
)
