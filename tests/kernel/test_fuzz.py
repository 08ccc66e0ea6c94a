"""Hypothesis fuzz of the comm against a real kernel: one reply each, kernel and state unharmed."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timetravel_kernel.protocol.messages import OPS

from .harness import Kernel, check_reply

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=5),
    max_leaves=15)
# Near-misses of real requests: right keys, wrong types, unknown ops, odd ids and params.
NEAR_MISSES = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=12), st.text(min_size=190, max_size=260), JSON),
     "op": st.one_of(st.sampled_from(sorted(OPS)), st.text(max_size=12), JSON)},
    optional={"limit": JSON, "commit": st.one_of(st.text(max_size=40), JSON), "a": JSON,
              "b": JSON, "extra": JSON})
MESSAGES = st.one_of(JSON, NEAR_MISSES)


def _moves_state(data: object) -> bool:
    # A well-formed undo is a real request, not a malformed one: it would change the state.
    return (isinstance(data, dict) and data.get("op") == "undo"
            and isinstance(data.get("id"), str) and len(data["id"]) <= 200)


@pytest.fixture(scope="module")
def fuzz_kernel(jupyter_path, tmp_path_factory):
    kernel = Kernel(env={"TIMETRAVEL_STORE_DIR": str(tmp_path_factory.mktemp("fuzz-stores"))})
    kernel.execute("x = [1, 2]\ny = {'a': x}")
    kernel.open_comm()
    yield kernel
    kernel.shutdown()


@settings(max_examples=1000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=MESSAGES)
def test_malformed_comm_messages_get_one_reply_and_change_nothing(fuzz_kernel, data):
    if _moves_state(data):
        data = {**data, "op": "undo!"}
    kernel = fuzz_kernel
    msg_id = kernel.send_comm(data)
    replies = [m["content"]["data"] for m in kernel.collect_iopub(msg_id)
               if m["msg_type"] == "comm_msg"]
    assert len(replies) == 1, replies
    check_reply(replies[0])
    expected_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(expected_id, str) and len(expected_id) <= 200:
        assert replies[0]["id"] == expected_id


def test_after_the_fuzz_the_kernel_and_state_are_intact(fuzz_kernel):
    status = fuzz_kernel.op("status")["result"]
    assert status["commits"] == 2
    assert fuzz_kernel.value("[x, y]") == [[1, 2], {"a": [1, 2]}]
    reply, _ = fuzz_kernel.execute("x.append(3)")
    assert reply["status"] == "ok"
