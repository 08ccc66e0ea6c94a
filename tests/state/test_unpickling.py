from __future__ import annotations

import pickle

import pytest

from timetravel_kernel.errors import SerializationError
from timetravel_kernel.state import UnrestoredValue, dump_values, load_values

from ..workloads import fresh_namespace, run_cell
from .test_serializers import Resolver


def test_a_reference_to_another_name_loads_its_restored_value() -> None:
    ns = fresh_namespace()
    run_cell(ns, "class P:\n    pass\np = P()")
    serialized = dump_values((ns["p"],), ns, ("p",))
    fresh = fresh_namespace()
    run_cell(fresh, "class P:\n    pass")
    (p,) = load_values(serialized.serializer, serialized.stream, [], Resolver(fresh))
    assert type(p) is fresh["P"]  # an instance of the restored class, not the old one


def test_streams_load_from_a_file_read_in_order(tmp_path) -> None:
    ns = fresh_namespace()
    ns["v"] = {"a": list(range(1000))}
    serialized = dump_values((ns["v"],), ns, ("v",))
    path = tmp_path / "stream"
    path.write_bytes(serialized.stream)
    with path.open("rb") as stream:
        (v,) = load_values(serialized.serializer, stream, [], Resolver(ns))
    assert v == ns["v"]


def test_a_refused_module_and_a_bad_stream_are_reasons_not_crashes() -> None:
    stream = pickle.dumps((pickle.PickleBuffer,), protocol=5)
    with pytest.raises(SerializationError, match="only the live session has"):
        load_values("pickle", stream, [], Resolver({}), refused_module="pickle")
    with pytest.raises(SerializationError, match="cannot be loaded"):
        load_values("pickle", b"\x80\x05garbage", [], Resolver({}))
    with pytest.raises(SerializationError, match="value tuple"):
        load_values("pickle", pickle.dumps([1], protocol=5), [], Resolver({}))


def test_a_reference_to_a_missing_unsaveable_value_loads_as_a_placeholder() -> None:
    """Restored before the value it refers to is back, a value holds a placeholder that says
    what is missing, and that saves as the very same stream (so it is still its version)."""
    ns = fresh_namespace()
    run_cell(ns, "import threading\nlock = threading.Lock()\nguarded = {'lock': lock, 'n': 1}")
    serialized = dump_values((ns["guarded"],), ns, ("guarded",))
    fresh = fresh_namespace()
    (guarded,) = load_values(serialized.serializer, serialized.stream, [], Resolver(fresh))
    placeholder = guarded["lock"]
    assert isinstance(placeholder, UnrestoredValue) and guarded["n"] == 1
    assert "lock, not restored" in repr(placeholder) and "%tt rebuild" in repr(placeholder)
    with pytest.raises(AttributeError, match="not restored"):
        placeholder.acquire()
    fresh["guarded"] = guarded
    again = dump_values((guarded,), fresh, ("guarded",))
    assert again.stream == serialized.stream and again.refs == ("lock",)
    fresh["lock"] = ns["lock"]
    (guarded,) = load_values(serialized.serializer, serialized.stream, [], Resolver(fresh))
    assert guarded["lock"] is ns["lock"]
