"""When a checkpoint runs in a forked snapshot: the policy and its memory guard (timeline layer).

``fork()`` gives a consistent copy of the whole process for the price of its page tables
(``timeline/snapshot.py`` runs it). Whether a checkpoint pays for one is decided here: values
that pickle in about a millisecond are saved in the kernel, anything whose cost cannot be
known cheaply is forked, memory permitting.
"""

from __future__ import annotations

import io
import itertools
import os
import sys
import threading
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from timetravel_kernel.timeline.memory import memory_left

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

__all__ = [
    "FORK_UNSAFE_MODULES",
    "BackgroundOptions",
    "CheckpointMode",
    "can_fork",
    "estimated_size",
    "has_memory_for_snapshot",
    "should_fork",
]

CheckpointMode = Literal["auto", "background", "sync"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BackgroundOptions:
    """When and how checkpoints run in forked snapshots.

    Args:
        mode: ``auto`` forks unless the values to examine are few, plain and small (those take
            about a millisecond inline, less than a fork) or memory is short; ``background``
            forks whenever the platform can; ``sync`` never forks (the kernel is busy until
            each cell's state is saved).
        min_bytes: in ``auto``, the estimated size of the examined values from which a fork
            pays for itself.
        max_inline_names: in ``auto``, how many names a checkpoint may examine inline.
        max_pending: snapshots taken but not yet saved; the next cell's snapshot waits for a
            free place (back-pressure) rather than merging cells.
        hang_seconds: a snapshot that sends nothing for this long while saving is killed and
            reported.
        stall_seconds: a snapshot that sends nothing and uses no CPU for this long is blocked
            (a library's lock or thread pool that does not survive a fork, such as OpenMP's
            after xgboost or lightgbm trained): it is killed and its names are checkpointed in
            the kernel from then on.
        memory_headroom: the memory guard: fork only when the system has at least this many
            bytes available beyond twice the examined values (copy-on-write growth).
        orphan_seconds: how long a snapshot whose kernel died may take to write its state to
            a spool file (then it gives up).
    """

    mode: CheckpointMode = "auto"
    min_bytes: int = 1 << 20
    max_inline_names: int = 64
    max_pending: int = 16
    hang_seconds: float = 300.0
    stall_seconds: float = 3.0
    memory_headroom: int = 64 << 20
    orphan_seconds: float = 300.0


def can_fork() -> bool:
    """Return whether this platform gives copy-on-write snapshots by ``fork`` (Linux only)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _resident_bytes() -> int:
    """Return this process's resident memory (0 if unknown)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def estimated_size(value: object) -> int:
    """Return a cheap estimate of the bytes a value holds (never its deep size).

    Arrays, frames and series report their buffers; builtin containers their own table; an
    object whose size cannot be asked cheaply counts as small.
    """
    try:
        nbytes = getattr(value, "nbytes", None)
        if isinstance(nbytes, int):
            return nbytes
        usage = getattr(value, "memory_usage", None)
        if callable(usage) and hasattr(value, "columns"):  # a data frame: shallow usage
            return int(usage(index=True, deep=False).sum())
        if type(value).__module__ == "builtins":
            return sys.getsizeof(value)
    except Exception:
        return 0
    return 0


FORK_UNSAFE_MODULES = frozenset({"xgboost", "lightgbm", "catboost"})
"""Libraries whose objects serialize through an OpenMP pool, which hangs in a forked child
once the parent has used it (checked here: xgboost and lightgbm models after training)."""
_PLAIN_ATOMS = (int, float, complex, bool, type(None), str, bytes)
_PLAIN_CONTAINERS = (list, tuple, dict, set, frozenset)
_CHEAP_KINDS = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                # refused at once (not saveable): inline, they are reported under their cell
                types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType, io.IOBase,
                threading.Thread, type(threading.Lock()), type(threading.RLock()))
_RESOURCE_MODULES = frozenset({"socket", "ssl", "select", "sqlite3", "threading", "queue",
                               "subprocess", "io", "_io", "_thread", "_socket", "_sqlite3"})
"""Standard-library modules of resources: refused, or reduced by a description, at once."""
_PLAIN_BUDGET = 2048
"""Objects looked at to decide that values are plain (a decision must cost microseconds)."""
_PLAIN_STRING = 1 << 16
_PLAIN_ROWS = 1000
"""Rows of a pandas object small enough to save inline (its buffers under 64 KiB too)."""


def _plain(value: object, budget: int, seen: set[int] | None = None) -> int:
    """Return what is left of ``budget`` after finding ``value`` plain, or -1 if it is not.

    Plain: builtin atoms (short strings), notebook functions, classes and modules, small numpy
    arrays and scalars, small pandas frames, series and indexes, builtin containers of plain
    values and instances whose state is their plain ``__dict__``: each pickles in microseconds.
    Generators, files, threads, locks, sockets and database connections count too: they are
    refused (or described) as fast, and inline their notice appears under their cell.
    ``seen``: containers already counted (cycles, shared objects).
    """
    if budget <= 0:
        return -1
    kind = type(value)
    if kind in _PLAIN_ATOMS:
        return budget - 1 if kind not in (str, bytes) or len(value) < _PLAIN_STRING else -1
    if isinstance(value, _CHEAP_KINDS) or kind.__module__ in _RESOURCE_MODULES:
        return budget - 1
    seen = set() if seen is None else seen
    if id(value) in seen:
        return budget
    seen.add(id(value))
    if kind.__module__ == "numpy":
        small = getattr(value, "nbytes", _PLAIN_STRING) < _PLAIN_STRING
        objects = getattr(getattr(value, "dtype", None), "hasobject", True)
        return budget - 1 if small and not objects else -1
    if kind.__module__.partition(".")[0] == "pandas":
        return budget - 1 if _small_table(value) else -1
    state = getattr(value, "__dict__", None)
    if type(state) is dict and kind.__reduce_ex__ is object.__reduce_ex__ and (
        kind.__reduce__ is object.__reduce__ and kind.__getstate__ is object.__getstate__
    ):
        return _plain(state, budget - 1, seen)
    if kind not in _PLAIN_CONTAINERS or len(value) >= budget:  # type: ignore[arg-type]
        return -1
    budget -= 1
    # a dict's keys and values, not its item tuples: those are made on the fly, and the id of
    # a freed one comes back for the next (``seen`` would skip it)
    items = (itertools.chain(value.keys(), value.values())  # type: ignore[attr-defined]
             if kind is dict else value)
    for item in items:
        budget = _plain(item, budget, seen)
        if budget < 0:
            return -1
    return budget


def _small_table(value: object) -> bool:
    """Whether a pandas frame, series or index is small: saved inline in under a millisecond.

    A fork costs 5-15 ms; a frame of a few rows (a summary, a ``describe()``, a lookup table)
    is serialized faster than that. Object columns count 8 bytes an element here, so the rows
    are bounded too.
    """
    try:
        rows = len(value)  # type: ignore[arg-type]
        # 0: no buffers to ask about (a group-by, a resampler): not known to be small
        return rows <= _PLAIN_ROWS and 0 < estimated_size(value) < _PLAIN_STRING
    except Exception:
        return False


def should_fork(
    namespace: Mapping[str, object], names: Collection[str], options: BackgroundOptions
) -> bool:
    """Return whether a checkpoint runs in a forked snapshot (see BackgroundOptions).

    In ``auto``, values whose pickling cost cannot be known cheaply (a model, an instance of
    a notebook class, a big array or frame) are forked: guessing wrong inline costs the user
    its whole serialization, guessing wrong forked costs a fork (a few milliseconds). Values
    of libraries whose serialization blocks after a fork are never forked.
    """
    if options.mode == "sync" or not can_fork():
        return False
    values = [dict.get(namespace, n) for n in names if n in namespace]  # type: ignore[arg-type]
    if not values:
        return False
    if any(type(v).__module__.partition(".")[0] in FORK_UNSAFE_MODULES for v in values):
        return False
    size: int | None = None
    if options.mode == "auto" and len(values) <= options.max_inline_names:
        size = sum(estimated_size(v) for v in values)
        budget = _PLAIN_BUDGET if size < options.min_bytes else -1
        seen: set[int] = set()
        for value in values:
            budget = _plain(value, budget, seen)
            if budget < 0:
                break
        else:
            return False
    if has_memory_for_snapshot(options):
        return True
    if size is None:
        size = sum(estimated_size(v) for v in values)
    available = memory_left()
    return available is None or available >= 2 * size + options.memory_headroom


def has_memory_for_snapshot(options: BackgroundOptions) -> bool:
    """Whether a snapshot fits whatever its cell changes after: the memory guard.

    A snapshot's pages are copied as the kernel writes them, so it can grow to all the
    kernel holds; with that twice over available, any number of cells may run meanwhile.
    """
    available = memory_left()
    return available is None or available >= 2 * _resident_bytes() + options.memory_headroom
