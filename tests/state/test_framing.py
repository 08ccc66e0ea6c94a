from __future__ import annotations

import pickle
import pickletools

from timetravel_kernel.state.framing import unframed


def _frames(stream: bytes) -> int:
    return sum(1 for op, _, _ in pickletools.genops(stream) if op.name == "FRAME")


def test_frames_are_dropped_and_the_stream_still_loads() -> None:
    # the blob's payload is written outside any frame, and so is the short tail after it
    value = {"rows": [(i, str(i), float(i)) for i in range(50_000)], "blob": b"x" * 200_000}
    stream = pickle.dumps(value, protocol=5)
    assert _frames(stream) > 1
    bare = unframed(stream)
    assert _frames(bare) == 0 and len(bare) < len(stream)
    assert pickle.loads(bare) == value


def test_an_early_insert_changes_no_later_bytes() -> None:
    rows = tuple(str(i) * 3 for i in range(100_000))  # a tuple: no batches of 1000 to shift
    before = unframed(pickle.dumps(rows, protocol=5))
    after = unframed(pickle.dumps(("new", *rows), protocol=5))
    # framed, every later frame header would differ; bare, the tails are equal
    common_tail = next(i for i, (x, y) in enumerate(zip(before[::-1], after[::-1],
                                                        strict=False)) if x != y)
    assert common_tail >= len(before) - 4


def test_streams_it_does_not_understand_are_returned_unchanged() -> None:
    old = pickle.dumps([1, 2, 3], protocol=2)  # no frames, other opcodes
    assert unframed(old) == old
    assert unframed(b"") == b""
    truncated = pickle.dumps(list(range(100_000)), protocol=5)[:-10]
    assert unframed(truncated) == truncated
