from __future__ import annotations

import io
import socket
import sqlite3
import threading

import pytest

from timetravel_kernel.state import type_name
from timetravel_kernel.state.unsaveable import unsaveable_reason


def _gen():
    yield 1


@pytest.mark.parametrize(("make", "words"), [
    (lambda tmp: _gen(), "re-run the cell that created it"),
    (lambda tmp: threading.RLock(), "a lock cannot be saved"),
    (lambda tmp: threading.Thread(target=print), "a thread"),
    (lambda tmp: socket.socket(), "a socket"),
    (lambda tmp: sqlite3.connect(":memory:"), "database connection"),
    (lambda tmp: open(tmp / "f.txt", "w"), "could truncate the file"),  # noqa: SIM115
], ids=["generator", "rlock", "thread", "socket", "sqlite", "file"])
def test_what_cannot_be_saved_says_what_to_do(make, words, tmp_path) -> None:
    value = make(tmp_path)
    try:
        assert words in (unsaveable_reason(value) or "")
    finally:
        if hasattr(value, "close"):
            value.close()


def test_memory_streams_and_plain_values_may_be_tried() -> None:
    assert unsaveable_reason(io.BytesIO(b"abc")) is None
    assert unsaveable_reason(io.StringIO("abc")) is None
    closed = io.BytesIO()
    closed.close()
    assert "closed in-memory stream" in (unsaveable_reason(closed) or "")
    assert unsaveable_reason([1, 2]) is None and unsaveable_reason(threading.Event()) is None


def test_type_names_are_short_and_qualified() -> None:
    class Local:
        pass

    assert type_name(1) == "int"
    assert type_name(Local()).endswith("Local")
    assert type_name(io.BytesIO()) == "_io.BytesIO"
    assert type_name(sqlite3.connect(":memory:")) == "sqlite3.Connection"
