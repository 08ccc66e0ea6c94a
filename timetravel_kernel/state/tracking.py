"""Tracking: which names a cell may have changed, without slowing the cell down (state layer).

Two cheap checks together:

* **What the cell reads** — from its code, before anything runs it: the names its compiled
  code objects refer to (``co_names``, nested functions and comprehensions included), followed
  through the notebook functions, classes and instances it names (and those found one level
  inside named containers), since a function called by the cell reads and mutates the globals
  it names. Code that reaches the namespace dynamically (``globals()``, ``exec``, ``eval``,
  ``vars``, ``__main__``, ``%run``) makes every name a candidate. A mutation needs a read, so
  this is a superset of what the cell mutated in place.
* **What was rebound** — the identity of every name's object, compared with the last
  checkpoint, catching writes by any route (``global x`` in a function, ``globals().update``,
  ``exec``).

The namespace stays a plain dict, so globals keep CPython's fast paths: a dict subclass that
records accesses makes module-level loops 6-15x slower.
"""

from __future__ import annotations

import ast
import functools
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

__all__ = ["NameIdentities", "names_read", "touched_names"]

# Names through which code reaches the namespace as a whole.
_DYNAMIC_NAMES = frozenset(
    {"globals", "vars", "locals", "exec", "eval", "execfile", "compile", "__import__", "__main__"}
)
# Uses of these that only bind names, or run literal code, are read like the cell itself.
_CHECKED_DYNAMIC_NAMES = frozenset({"globals", "exec", "eval"})
# IPython magics whose argument is Python code run in the namespace; other magics either do
# not touch user variables or only bind names (which the identity check sees).
_CODE_MAGICS = frozenset({"time", "timeit", "prun", "capture", "debug"})
_NAMESPACE_MAGICS = frozenset({"run", "load", "macro", "recall", "rerun", "store", "autoreload"})
_SCAN_LIMIT = 1000


class _Dynamic(Exception):
    """The code reaches the namespace dynamically: every name is a candidate."""


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _names_of_code(
    code: types.CodeType, checked: frozenset[str] = frozenset()
) -> set[str]:
    """Return the names code objects refer to; raise _Dynamic on dynamic namespace access.

    Names in ``checked`` are let through for the caller to inspect in the source.
    """
    names: set[str] = set()
    for each in _code_objects(code):
        names.update(each.co_names)
        if "__main__" in each.co_consts:
            raise _Dynamic
    if not names.isdisjoint(_DYNAMIC_NAMES - checked):
        raise _Dynamic
    return names


@functools.lru_cache(maxsize=512)
def _names_of_source(source: str) -> frozenset[str]:
    """Return the names a cell's Python source refers to, magics' code included."""
    try:
        tree = ast.parse(source)
        code = compile(tree, "<cell>", "exec")
    except (SyntaxError, ValueError) as exc:
        raise _Dynamic from exc
    names = _names_of_code(code, _CHECKED_DYNAMIC_NAMES)
    if not names.isdisjoint(_CHECKED_DYNAMIC_NAMES):
        names |= _names_of_checked_dynamic(tree)
    for node in ast.walk(tree):
        names.update(_names_of_magic(node))
    return frozenset(names)


def _names_of_checked_dynamic(tree: ast.AST) -> set[str]:
    """Return the names read by ``exec``/``eval`` of literal code; allow ``globals()`` writes.

    ``globals()[name] = value``, ``del globals()[name]`` and ``globals().update(...)`` only
    rebind names (the identity check sees them); any other use may read any name.
    """
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id in _CHECKED_DYNAMIC_NAMES):
            continue
        call = parents.get(node)
        if not (isinstance(call, ast.Call) and call.func is node):
            raise _Dynamic
        user = parents.get(call)
        if node.id == "globals":
            writes = isinstance(user, ast.Subscript) and isinstance(user.ctx, (ast.Store, ast.Del))
            updates = isinstance(user, ast.Attribute) and user.attr == "update"
            if not (writes or updates):
                raise _Dynamic
        elif (
            len(call.args) == 1
            and not call.keywords
            and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[0].value, str)
        ):
            names |= _names_of_source(call.args[0].value)
        else:
            raise _Dynamic
    return names


def _names_of_magic(node: ast.AST) -> set[str]:
    """Return the names read by an IPython magic call (``get_ipython().run_line_magic``)."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("run_line_magic", "run_cell_magic")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return set()
    magic = node.args[0].value
    if magic in _NAMESPACE_MAGICS:
        raise _Dynamic
    if magic not in _CODE_MAGICS:
        return set()
    names: set[str] = set()
    for argument in node.args[1:]:
        if not isinstance(argument, ast.Constant) or not isinstance(argument.value, str):
            raise _Dynamic
        text = argument.value.strip()
        if text and not text.startswith("-"):
            names |= _names_of_source(text)
        elif text:
            raise _Dynamic  # options before the code: do not guess where the code starts
    return names


def _functions_of(value: object, module_name: str) -> Iterator[types.FunctionType]:
    """Yield the notebook functions a value carries: itself, its methods, its class's."""
    if isinstance(value, types.MethodType):
        value = value.__func__
    if isinstance(value, functools.partial):
        value = value.func
    if isinstance(value, types.FunctionType):
        if value.__module__ == module_name:
            yield value
        return
    classes = value.__mro__ if isinstance(value, type) else type(value).__mro__
    for cls in classes:
        if cls.__module__ != module_name:
            continue
        for member in vars(cls).values():
            for attribute in ("__func__", "fget", "fset", "fdel"):
                member = getattr(member, attribute, member)
            if isinstance(member, types.FunctionType):
                yield member


def _carried(value: object) -> Iterable[object]:
    """Return the value and, for a container, its elements one level down."""
    if isinstance(value, dict) and len(value) <= _SCAN_LIMIT:
        return [value, *value.values()]
    if isinstance(value, (list, tuple, set, frozenset)) and len(value) <= _SCAN_LIMIT:
        return [value, *value]
    return [value]


def _follow(names: set[str], namespace: Mapping[str, object]) -> set[str]:
    """Add the globals named by the notebook code that ``names`` lead to, transitively.

    Closures are followed too (a decorated function keeps the original in its closure).
    """
    module_name = dict.get(namespace, "__name__", "__main__")  # type: ignore[arg-type]
    result = set(names)
    pending = [dict.__getitem__(namespace, n) for n in names if n in namespace]  # type: ignore[arg-type]
    seen_code: set[types.CodeType] = set()
    while pending:
        for item in _carried(pending.pop()):
            for function in _functions_of(item, module_name):
                if function.__code__ in seen_code:
                    continue
                seen_code.add(function.__code__)
                new = _names_of_code(function.__code__) - result
                result |= new
                pending += [dict.__getitem__(namespace, n) for n in new if n in namespace]  # type: ignore[arg-type]
                pending += [c.cell_contents for c in function.__closure__ or () if _is_set(c)]
    return result


def _is_set(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - probing an empty closure cell raises
    except ValueError:
        return False
    return True


def names_read(source: str, namespace: Mapping[str, object]) -> set[str] | None:
    """Return the names a cell's code may read, or None when it may reach any name.

    Args:
        source: the Python source the cell ran (IPython syntax already transformed).
        namespace: the namespace, to follow the notebook functions and classes it names.
    """
    try:
        return _follow(set(_names_of_source(source)), namespace)
    except _Dynamic:
        return None


class NameIdentities:
    """The identity of the object bound to every name at the last checkpoint.

    Comparing ids is the cheap check that finds rebinding behind the namespace's back; the
    comparison runs as set operations on dict views (~0.3 ms for 3000 names).
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    @staticmethod
    def _snapshot(ns: Mapping[str, object]) -> dict[str, int]:
        return dict(zip(dict.keys(ns), map(id, dict.values(ns)), strict=True))  # type: ignore[arg-type]

    def changed(self, ns: Mapping[str, object]) -> set[str]:
        """Return names added, removed or rebound since ``record``."""
        return {name for name, _ in self._snapshot(ns).items() ^ self._ids.items()}

    def record(self, ns: Mapping[str, object], names: Iterable[str] | None = None) -> None:
        """Remember the identities of the namespace as it is now.

        Args:
            ns: the namespace.
            names: when given, only these names changed since the last ``record`` or
                ``changed`` call that saw the rest.
        """
        if names is None:
            self._ids = self._snapshot(ns)
            return
        for name in names:
            if name in ns:
                self._ids[name] = id(dict.__getitem__(ns, name))  # type: ignore[arg-type]
            else:
                self._ids.pop(name, None)


def touched_names(
    ns: Mapping[str, object], identities: NameIdentities, source: str | None = None
) -> set[str]:
    """Return the names a cell may have changed: those it may read, and those rebound.

    Without source (or with code that reaches the namespace dynamically) every name is a
    candidate.
    """
    read = names_read(source, ns) if source else None
    if read is None:
        return set(ns) | identities.changed(ns)
    return {n for n in read if n in ns} | identities.changed(ns)
