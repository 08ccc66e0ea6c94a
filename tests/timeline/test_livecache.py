from __future__ import annotations

import gc

import numpy as np

from timetravel_kernel.ids import CovarId, hash_bytes
from timetravel_kernel.store import Covar
from timetravel_kernel.timeline.livecache import LiveCache


def covar(nbytes: int, serializer: str = "pickle") -> Covar:
    return Covar(members=("x",), serializer=serializer, types=("t",), nbytes=nbytes)  # type: ignore[arg-type]


def cid(text: str) -> CovarId:
    return CovarId(hash_bytes(text.encode()))


def test_unsaveable_values_are_held_strongly() -> None:
    cache = LiveCache()
    generator = (i for i in range(3))
    cache.put(cid("g"), covar(0, "unsaved"), (generator,))
    del generator
    gc.collect()
    assert cache.get(cid("g")) is not None


def test_large_values_are_held_weakly() -> None:
    cache = LiveCache()
    big = np.zeros(1_000_000)
    cache.put(cid("big"), covar(8_000_000), (big,))
    assert cache.get(cid("big"))[0] is big
    del big
    gc.collect()
    assert cache.get(cid("big")) is None


def test_small_values_are_held_within_a_budget() -> None:
    cache = LiveCache(strong_budget=1000)
    for i in range(5):
        cache.put(cid(str(i)), covar(400), ([i],))
    assert cache.get(cid("0")) is None  # evicted, least recently used
    assert cache.get(cid("4")) == ([4],)
    cache.discard(cid("4"))
    assert cache.get(cid("4")) is None


def test_tokens_name_live_identity() -> None:
    cache = LiveCache()
    a, b = object(), object()
    assert cache.token_for((a,)) == cache.token_for((a,))
    assert cache.token_for((a,)) != cache.token_for((b,))
