from __future__ import annotations

from timetravel_kernel.state import partition


def test_disjoint_names_are_separate() -> None:
    assert partition({"a": {1: None}, "b": {2: None}, "c": {}}) == [("a",), ("b",), ("c",)]


def test_sharing_is_transitive() -> None:
    shared = {"a": {1: None}, "b": {1: None, 2: None}, "c": {2: None}, "d": {3: None}}
    assert partition(shared) == [("a", "b", "c"), ("d",)]
