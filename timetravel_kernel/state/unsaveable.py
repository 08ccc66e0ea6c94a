"""What must not be saved, and why, in words meant for the user (state layer).

A running generator, an open file, a lock, a thread, a socket or a database connection cannot
be pickled, or could do harm if restored (a file reopened for writing is truncated). The
serializers refuse them with these reasons; revival.py reconnects the ones that describe
themselves well enough, and rebuilds re-run the cells that made the rest.
"""

from __future__ import annotations

import io
import socket
import sqlite3
import threading
import types

__all__ = ["type_name", "unsaveable_reason"]

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_UNSAVEABLE: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (
        (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType),
        "a running generator or coroutine cannot be saved; re-run the cell that created it",
    ),
    (
        io.IOBase,
        "an open file is not saved (restoring it could truncate the file); re-run the cell "
        "that opened it",
    ),
    (_LOCK_TYPES, "a lock cannot be saved; re-run the cell that created it"),
    (threading.Thread, "a thread cannot be saved; re-run the cell that started it"),
    (socket.socket, "a socket cannot be saved; re-run the cell that opened it"),
    (
        (sqlite3.Connection, sqlite3.Cursor),
        "a database connection cannot be saved; re-run the cell that opened it",
    ),
    ((types.FrameType, types.TracebackType), "a stack frame or traceback cannot be saved"),
)


def type_name(obj: object) -> str:
    """Return the qualified type name shown to users (``pandas.DataFrame``)."""
    cls = type(obj)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module.split('.')[0]}.{cls.__qualname__}"


def unsaveable_reason(obj: object) -> str | None:
    """Return why ``obj`` must not be saved, or None when it may be tried."""
    if isinstance(obj, (io.BytesIO, io.StringIO)):
        # Memory, not a file: saved by value (closed ones cannot be read back).
        return "a closed in-memory stream cannot be saved" if obj.closed else None
    for kinds, reason in _UNSAVEABLE:
        if isinstance(obj, kinds):
            return reason
    return None
