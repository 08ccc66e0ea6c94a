"""Co-variables: group top-level names whose values share data objects (state layer).

Names that share an object must be saved in one pickle stream and loaded together, or the
restored names would hold two copies where the session held one (``holder['s'] is shared``).
"""

from __future__ import annotations

import enum
import pickle
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["glues", "partition"]

# Values of these types never make two names one co-variable: they are immutable, or saved
# by reference (modules, classes, functions), or shared singletons (dtypes, enum members).
_NON_GLUE_TYPES: tuple[type, ...] = (
    str, bytes, int, float, complex, bool, type(None), tuple, frozenset, range, slice,
    type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
    types.CodeType, type(Ellipsis), type(NotImplemented), pickle.PickleBuffer,
)
_GLUE_BY_CLASS: dict[type, bool] = {}


def glues(cls: type) -> bool:
    """Return whether instances of ``cls`` make the names holding them one co-variable."""
    glues = _GLUE_BY_CLASS.get(cls)
    if glues is None:
        numpy = sys.modules.get("numpy")
        singleton = issubclass(cls, enum.Enum) or (
            numpy is not None and issubclass(cls, numpy.dtype)
        )
        glues = _GLUE_BY_CLASS[cls] = not (issubclass(cls, _NON_GLUE_TYPES) or singleton)
    return glues


def partition(shared: Mapping[str, Mapping[int, object]]) -> list[tuple[str, ...]]:
    """Return groups of names whose shared-object id sets intersect (transitively).

    Args:
        shared: for each name, the ids of identity-carrying objects its value contains.

    Returns:
        Sorted groups, each a sorted tuple of names; every name is in exactly one group.
    """
    parent = {name: name for name in shared}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    owner: dict[int, str] = {}
    for name in sorted(shared):
        for ident in shared[name]:
            other = owner.setdefault(ident, name)
            if other != name:
                a, b = find(other), find(name)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[str, list[str]] = {}
    for name in shared:
        groups.setdefault(find(name), []).append(name)
    return sorted(tuple(sorted(g)) for g in groups.values())
