from __future__ import annotations

import pickle

from timetravel_kernel.state import dump_values
from timetravel_kernel.state.grouping import (
    GROUPED_DICT_MIN,
    GroupedDict,
    reduce_grouped_dict,
    with_grouped_dicts,
)

from ..workloads import fresh_namespace
from .test_serializers import round_trip


def _fill(target: dict, groups: tuple) -> None:
    for group in groups:
        target.update(group)


def test_groups_hold_every_item_in_order_and_cut_where_hashes_say() -> None:
    d = {i: -i for i in range(20_000)}
    reduction = reduce_grouped_dict(d, _fill)
    assert reduction is not None
    groups = reduction[2]
    assert 5 < len(groups) < 100  # ~1024 items a group
    assert [k for g in groups for k in g] == list(d)
    # every group but the last ends after a key whose hash has the mask's bits clear
    assert all(hash(list(g)[-1]) & 1023 == 0 for g in groups[:-1])


def test_deleting_a_key_changes_only_its_group() -> None:
    d = {i: str(i) for i in range(30_000)}
    before = reduce_grouped_dict(d, _fill)[2]
    del d[15_000]
    after = reduce_grouped_dict(d, _fill)[2]
    assert len(before) == len(after)
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1


def test_unhashable_surprises_leave_the_dict_whole() -> None:
    class Odd:
        def __hash__(self) -> int:
            raise TypeError("no hash today")

    d = {"x": 1}
    d.update({Odd(): 2} if False else {})
    assert reduce_grouped_dict({i: i for i in range(10)}, _fill) is not None
    broken = dict.fromkeys(range(3))
    broken_keys = type("K", (), {"__hash__": lambda self: 1, "__eq__": lambda s, o: s is o})
    broken[broken_keys()] = 1
    assert reduce_grouped_dict(broken, _fill) is not None


def test_only_a_big_dict_nothing_else_refers_to_is_grouped() -> None:
    ns = fresh_namespace()
    ns["small"] = {i: i for i in range(10)}
    assert with_grouped_dicts((ns["small"],), ns) == (ns["small"],)
    big = {i: i for i in range(GROUPED_DICT_MIN)}
    ns["big"] = big
    (stand_in,) = with_grouped_dicts((big,), ns)
    assert isinstance(stand_in, GroupedDict) and stand_in.target is big
    ns["alias"] = [big]  # a second referrer: pickled whole, so identity is kept
    assert with_grouped_dicts((big,), ns) == (big,)
    assert with_grouped_dicts((big, 1), ns) == (big, 1)  # only a lone value


def test_a_grouped_reduction_pickles_back_to_an_equal_dict() -> None:
    d = {f"k{i}": i for i in range(5_000)}
    reduction = reduce_grouped_dict(d, _fill)

    class Holder:
        def __reduce__(self) -> tuple:
            return reduction

    assert pickle.loads(pickle.dumps(Holder())) == d


def test_big_dicts_round_trip_in_order_with_cycles_and_aliases() -> None:
    ns = fresh_namespace()
    shared = [1, 2]
    d: dict = {f"k{i}": i for i in range(70_000)}
    d["self"] = d
    d["a"] = shared
    d["b"] = shared
    ns["d"] = d
    (back,) = round_trip(ns, "d")
    assert list(back) == list(d)
    assert back["self"] is back and back["a"] is back["b"]
    assert {k: v for k, v in back.items() if k != "self"} == {
        k: v for k, v in d.items() if k != "self"}


def test_one_key_delete_in_a_big_dict_changes_the_stream_locally() -> None:
    ns = fresh_namespace()
    ns["d"] = {i: str(i) for i in range(100_000)}
    before = dump_values((ns["d"],), ns, ("d",)).stream
    del ns["d"][50_000]
    after = dump_values((ns["d"],), ns, ("d",)).stream
    prefix = next(i for i, (x, y) in enumerate(zip(before, after, strict=False)) if x != y)
    tails = zip(before[::-1], after[::-1], strict=False)
    suffix = next(i for i, (x, y) in enumerate(tails) if x != y)
    # pickle's own fixed batches would make every byte after the delete differ
    assert len(before) - prefix - suffix < 64 * 1024


def test_the_stream_of_a_big_dict_is_grouped() -> None:
    ns = fresh_namespace()
    ns["d"] = {i: i for i in range(GROUPED_DICT_MIN)}
    assert b"_fill_dict" in dump_values((ns["d"],), ns, ("d",)).stream
    ns["d2"] = {i: i for i in range(GROUPED_DICT_MIN - 1)}
    assert b"_fill_dict" not in dump_values((ns["d2"],), ns, ("d2",)).stream
