"""Values that describe themselves: files, sqlite3 file connections, locks and events."""

from __future__ import annotations

import socket
import sqlite3
import threading

import pytest

from timetravel_kernel.errors import SerializationError
from timetravel_kernel.state.revival import describe_value, describe_values, revive_value


def test_a_file_open_for_writing_reopens_at_its_position_without_truncation(tmp_path):
    path = tmp_path / "log.txt"
    with open(path, "w") as log:
        log.write("hello\n")
        description = describe_value(log)
    assert description == {"kind": "file", "path": str(path), "mode": "w", "position": 6,
                           "encoding": log.encoding, "binary": False}
    revived = revive_value(description)
    revived.write("more\n")
    revived.close()
    assert path.read_text() == "hello\nmore\n"


def test_unflushed_data_that_was_lost_leaves_no_hole(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"abc")
    description = {"kind": "file", "path": str(path), "mode": "wb", "position": 10,
                   "encoding": None, "binary": True}
    with revive_value(description) as revived:
        assert revived.tell() == 3
        revived.write(b"d")
    assert path.read_bytes() == b"abcd"


def test_append_and_read_modes_keep_their_meaning(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("one\ntwo\n")
    with open(path) as reader:
        reader.readline()
        described = describe_value(reader)
    with revive_value(described) as again:
        assert again.read() == "two\n"
    with open(path, "a") as appender:
        described = describe_value(appender)
    with revive_value(described) as again:
        again.write("three\n")
    assert path.read_text() == "one\ntwo\nthree\n"


def test_a_file_that_is_gone_is_not_recreated(tmp_path):
    path = tmp_path / "gone.txt"
    with open(path, "w") as log:
        description = describe_value(log)
    path.unlink()
    with pytest.raises(SerializationError, match="is gone"):
        revive_value(description)
    assert not path.exists()


def test_sqlite_reconnects_to_its_file_but_memory_must_be_rebuilt(tmp_path):
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("create table t(x)")
    conn.execute("insert into t values (1)")
    conn.commit()
    description = describe_value(conn)
    conn.close()
    again = revive_value(description)
    assert again.execute("select x from t").fetchall() == [(1,)]
    again.close()
    memory = sqlite3.connect(":memory:")
    assert describe_value(memory) is None
    memory.close()
    path.unlink()
    with pytest.raises(SerializationError, match="is gone"):
        revive_value(description)
    assert not path.exists()  # connecting would have created an empty database


def test_locks_and_events_keep_their_state():
    held, event = threading.Lock(), threading.Event()
    held.acquire()
    event.set()
    lock_again, event_again = (revive_value(d) for d in describe_values((held, event)))
    assert lock_again.locked() and event_again.is_set()
    assert not revive_value(describe_value(threading.Lock())).locked()


def test_values_without_a_description_must_be_rebuilt():
    with socket.socket() as sock:
        assert describe_value(sock) is None
        assert describe_values((threading.Lock(), sock)) is None
    assert describe_value(x for x in ()) is None
    with pytest.raises(SerializationError, match="no way to reconnect"):
        revive_value({"kind": "teleporter"})
