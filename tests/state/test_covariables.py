from __future__ import annotations

import enum

import numpy as np

from timetravel_kernel.state import partition
from timetravel_kernel.state.covariables import glues


def test_disjoint_names_are_separate() -> None:
    assert partition({"a": {1: None}, "b": {2: None}, "c": {}}) == [("a",), ("b",), ("c",)]


def test_sharing_is_transitive() -> None:
    shared = {"a": {1: None}, "b": {1: None, 2: None}, "c": {2: None}, "d": {3: None}}
    assert partition(shared) == [("a", "b", "c"), ("d",)]


def test_only_mutable_objects_with_identity_glue_names() -> None:
    class Colour(enum.Enum):
        RED = 1

    for cls in (str, int, tuple, frozenset, type, type(len), Colour, type(np.dtype("f8"))):
        assert not glues(cls), cls
    for cls in (list, dict, set, bytearray, np.ndarray, type("Box", (), {})):
        assert glues(cls), cls
