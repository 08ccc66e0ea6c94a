"""What changed inside a value: one line per kind, checked word for word."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from timetravel_kernel.state.comparison import describe_arrays, describe_change


class Thing:
    def __init__(self, n: int) -> None:
        self.n = n


@pytest.mark.parametrize(("old", "new", "expected"), [
    (1, 2, "1 → 2"),
    (1, 2.5, "1 → 2.5"),
    ("abc", "abd", "'abc' → 'abd'"),
    (None, True, "None → True"),
    ("a" * 100, "a" * 50 + "b" * 60, "str of 100 → 110 chars, first difference at 50"),
    ("x" * 70, "x" * 80, "str of 70 → 80 chars, first difference at 70"),
    ([1, 2], {"a": 1}, "type list → dict"),
    ("x" * 70, 3, "type str → int"),
])
def test_scalars_strings_and_type_changes(old, new, expected):
    assert describe_change(old, new) == expected


@pytest.mark.parametrize(("old", "new", "expected"), [
    ({"a": 1, "b": 2}, {"b": 3, "c": 4},
     "dict of 2 keys: added 'c'; removed 'a'; changed 'b' (2 → 3)"),
    ({"a": [1]}, {"a": [2], "z": 0}, "dict of 1 → 2 keys: added 'z'; changed 'a'"),
    ({k: 0 for k in "abcde"}, {k: 1 for k in "abcde"},
     "dict of 5 keys: changed 'a' (0 → 1), 'b' (0 → 1), 'c' (0 → 1) and 2 more"),
    ([1, 2, 3], [1, 5, 3, 4], "list of 3 → 4 items: added 1 at the end; changed [1] (2 → 5)"),
    ((1, 2, 3), (1,), "tuple of 3 → 1 items: removed 2 from the end"),
    ({1, 2, 3}, {2, 3, 4, 5}, "set of 3 → 4 items: added 4, 5; removed 1"),
    ({"a": float("nan")}, {"a": float("nan")}, "dict of 1 key: equal (order or metadata changed)"),
])
def test_containers(old, new, expected):
    assert describe_change(old, new) == expected


def test_arrays():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    b = a.copy()
    b[0, 1] = 3.5
    b[2, 3] = 1.0
    assert describe_change(a, b) == (
        "ndarray (3, 4) float64: 2 of 12 elements changed, max abs diff 10; "
        "e.g. [0, 1] 1.0 → 3.5, [2, 3] 11.0 → 1.0")
    assert describe_change(a, a.reshape(4, 3)) == (
        "ndarray shape (3, 4) → (4, 3), dtype float64")
    assert describe_change(np.arange(3), np.array([0, 1.5, 2])) == (
        "ndarray (3,) int64 → float64: 1 of 3 elements changed, max abs diff 0.5; "
        "e.g. [1] 1 → 1.5")
    assert describe_change(np.arange(3), np.arange(3.0)) == (
        "ndarray (3,) int64 → float64: values equal")
    nan = np.array([np.nan, 1.0])
    assert describe_change(nan, nan.copy() * 1) == "ndarray (2,) float64: values equal"
    many = np.zeros(10, dtype=bool)
    assert describe_change(many, ~many) == (
        "ndarray (10,) bool: 10 of 10 elements changed; e.g. [0] False → True, "
        "[1] False → True, [2] False → True and 7 more")


def test_arrays_compare_only_the_given_pieces():
    a = np.zeros(100)
    b = a.copy()
    b[5] = 1.0
    b[50] = 2.0
    # Outside the pieces the caller knows the arrays equal: element 50 is not looked at.
    assert describe_arrays(a, b, pieces=[(0, a[:10], b[:10])]) == (
        "ndarray (100,) float64: 1 of 100 elements changed, max abs diff 1; e.g. [5] 0.0 → 1.0")
    assert describe_arrays(a, b, pieces=[(40, a[40:60], b[40:60]), (0, a[:10], b[:10])]) == (
        "ndarray (100,) float64: 2 of 100 elements changed, max abs diff 2; "
        "e.g. [50] 0.0 → 2.0, [5] 0.0 → 1.0")


def test_frames():
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0], "c": ["x", "y", "z"]})
    dropped = df.drop(columns="b")
    assert describe_change(df, dropped) == "DataFrame (3, 3) → (3, 2): dropped 1 column: 'b'"
    edited = df.copy()
    edited.loc[1, "a"] = 20
    edited["c"] = edited["c"].str.upper()
    edited["d"] = 0
    edited.loc[7] = [0, 0.0, "q", 1]
    assert describe_change(df, edited) == (
        "DataFrame (3, 3) → (4, 4): added 1 column: 'd'; added 1 row: 7; "
        "changed 4 cells, e.g. [1, 'a'] (2 → 20), [0, 'c'] ('x' → 'X'), [1, 'c'] ('y' → 'Y')")
    retyped = df.astype({"a": "float64"})
    retyped.loc[0, "a"] = 1.5
    assert describe_change(df, retyped) == (
        "DataFrame (3, 3): retyped 'a' (int64 → float64); "
        "changed 1 cell, e.g. [0, 'a'] (1 → 1.5)")
    assert describe_change(df, df.iloc[[2, 0, 1]]) == (
        "DataFrame (3, 3): equal (order or metadata changed)")
    assert describe_change(df, df.iloc[:1]) == "DataFrame (3, 3) → (1, 3): removed 2 rows: 1, 2"


def test_series():
    s = pd.Series([1.0, 2.0, np.nan], index=["a", "b", "c"])
    t = s.copy()
    t["b"] = 5.0
    t["d"] = 1.0
    assert describe_change(s, t) == (
        "Series (3,) → (4,) float64: added 1 row: 'd'; changed 1 value, e.g. ['b'] (2.0 → 5.0)")
    assert describe_change(s, s.astype("float32")) == (
        "Series (3,) float64 → float32: equal (order or metadata changed)")


def test_other_objects_have_no_description():
    assert describe_change(Thing(1), Thing(2)) is None
    assert describe_change(Thing(1), 3) == "type tests.Thing → int"
