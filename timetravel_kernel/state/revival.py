"""Revival: unsaveable values that describe themselves well enough to be reconnected (state layer).

Pickle cannot hold an open file, a database connection, a lock or an event, but each says
enough about itself to make an equivalent one: the file's path, mode and position, the
connection's database file, whether the lock is held or the event set. Reconnecting is cheaper
and safer than re-running the cell that made the value: a cell that opened a file with mode
``"w"`` would truncate it. Everything else (generators, sockets, threads, in-memory databases)
is rebuilt by re-running recorded cells.
"""

from __future__ import annotations

import io
import os
import sqlite3
import threading
from typing import TYPE_CHECKING

from timetravel_kernel.errors import SerializationError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["describe_value", "describe_values", "revive_value"]

Description = dict[str, object]
_LOCK_TYPE = type(threading.Lock())


def _describe_file(value: io.IOBase) -> Description | None:
    name = getattr(value, "name", None)
    mode = getattr(value, "mode", None)
    if not isinstance(name, str) or not isinstance(mode, str) or value.closed:
        return None
    try:
        position = value.tell()  # a text file flushes its buffer here: what is written is kept
    except (OSError, ValueError):
        return None  # a pipe or a terminal: nothing to seek back to
    return {
        "kind": "file",
        "path": os.path.abspath(name),
        "mode": mode,
        "position": position,
        "encoding": getattr(value, "encoding", None),
        "binary": not isinstance(value, io.TextIOBase),
    }


def _describe_sqlite(value: sqlite3.Connection) -> Description | None:
    try:
        rows = value.execute("PRAGMA database_list").fetchall()
    except sqlite3.Error:
        return None  # closed, or used from another thread
    path = next((row[2] for row in rows if row[1] == "main"), "")
    if not path:
        return None  # in memory: only re-running the cells that filled it brings it back
    return {"kind": "sqlite3", "path": path}


def describe_value(value: object) -> Description | None:
    """Return how to reconnect an unsaveable value, or None when it must be re-run."""
    if isinstance(value, io.IOBase) and isinstance(value, (io.TextIOWrapper, io.BufferedIOBase,
                                                           io.FileIO)):
        return _describe_file(value)
    if isinstance(value, sqlite3.Connection):
        return _describe_sqlite(value)
    if isinstance(value, _LOCK_TYPE):
        return {"kind": "lock", "locked": value.locked()}
    if isinstance(value, threading.Event):
        return {"kind": "event", "set": value.is_set()}
    return None


def describe_values(values: tuple[object, ...]) -> tuple[Description, ...] | None:
    """Return descriptions of all values, or None unless every one can be reconnected."""
    described = []
    for value in values:
        description = describe_value(value)
        if description is None:
            return None
        described.append(description)
    return tuple(described)


def _reopen_mode(mode: str) -> str:
    """Return a mode that reopens a file without truncating or recreating it."""
    binary = "b" if "b" in mode else ""
    if "a" in mode:
        return f"a{'+' if '+' in mode else ''}{binary}"
    if "w" in mode or "x" in mode or "+" in mode:
        return f"r+{binary}"
    return f"r{binary}"


def _revive_file(description: Mapping[str, object]) -> object:
    path = str(description["path"])
    if not os.path.isfile(path):
        raise SerializationError("", "file", f"the file {path} it had open is gone")
    mode = _reopen_mode(str(description["mode"]))
    encoding = description.get("encoding")
    if description.get("binary"):
        handle = open(path, mode)  # noqa: SIM115 - the user's value: it stays open
    else:
        handle = open(path, mode, encoding=str(encoding) if encoding else None)  # noqa: SIM115
    if "a" not in mode:
        # Data the old process had not flushed is lost: continue where the file really ends
        # rather than leave a hole.
        position = description.get("position")
        end = os.path.getsize(path)
        handle.seek(min(position, end) if isinstance(position, int) else 0)
    return handle


def revive_value(description: Mapping[str, object]) -> object:
    """Return a new value equivalent to the described one.

    Raises:
        SerializationError: it cannot be reconnected (the file is gone, an unknown kind).
    """
    kind = description.get("kind")
    if kind == "file":
        return _revive_file(description)
    if kind == "sqlite3":
        path = str(description["path"])
        if not os.path.isfile(path):  # connecting would create an empty database
            raise SerializationError("", "sqlite3.Connection", f"the database {path} is gone")
        return sqlite3.connect(path)
    if kind == "lock":
        lock = threading.Lock()
        if description.get("locked"):
            lock.acquire()
        return lock
    if kind == "event":
        event = threading.Event()
        if description.get("set"):
            event.set()
        return event
    raise SerializationError("", str(kind), f"no way to reconnect a value of kind {kind!r}")
