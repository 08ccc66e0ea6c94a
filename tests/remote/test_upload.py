"""What a push sends and how (remote/upload.py): closures in order, packs chained by indexes."""

from __future__ import annotations

from pathlib import Path

import pytest

from timetravel_kernel.remote import MemoryTransport, PackWriter
from timetravel_kernel.remote.packs import read_pack
from timetravel_kernel.remote.signing import split_signed_document
from timetravel_kernel.remote.upload import unsent_records
from timetravel_kernel.store.keys import decode_key, encode_key
from timetravel_kernel.store.refs import REF_HEAD
from timetravel_kernel.timeline import CellInfo

from ..workloads import run_cell
from .test_sync import KEY, session

CELLS = ["import numpy as np\nbig = np.random.default_rng(0).random(100_000)",
         "small = [1, 2]", "big = big + 1", "small.append(3)"]


def kind(key: bytes) -> str:
    return decode_key(key)[0]


def test_heads_closure_and_commit_come_first_the_other_commits_last(tmp_path: Path) -> None:
    timeline, ns = session(tmp_path / "a", CELLS)
    timeline.undo(ns)  # HEAD is no longer the newest commit: it comes first all the same
    store = timeline.object_store
    head = store.load_commit(store.read_ref(REF_HEAD))
    records, expected = unsent_records(store, set())
    keys = [key for key, _ in records]
    at = keys.index(encode_key("commit", head.id))
    assert set(keys[:at]) == {key for key, _ in store.iter_reachable([head])}
    others = [key for key in keys[at + 1 :] if kind(key) == "commit"]
    assert keys[len(keys) - len(others) :] == others
    assert len(others) == len(list(store.iter_commits())) - 1
    assert all(value is None for key, value in records if kind(key) == "chunk")  # read later
    assert expected > 2 * 100_000 * 8  # two versions of big, counted decoded
    timeline.close()


def test_what_the_remote_holds_is_not_sent_nor_walked_into(tmp_path: Path) -> None:
    timeline, ns = session(tmp_path / "a", CELLS[:2])
    store = timeline.object_store
    sent = {key for key, _ in unsent_records(store, set())[0]}
    run_cell(ns, "small.append(3)")
    timeline.checkpoint(ns, CellInfo(code="small.append(3)"))
    records, _ = unsent_records(store, sent)
    # the commit, a tree root, one bucket and small's new version: not big's chunks
    assert sorted(kind(key) for key, _ in records) == ["commit", "covar", "tree", "tree"]
    timeline.close()


def test_an_upload_chains_its_indexes_and_ends_with_a_summary_every_nth(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("timetravel_kernel.remote.upload.MAX_PACK_BYTES", 64 << 10)
    monkeypatch.setattr("timetravel_kernel.remote.upload.SUMMARY_DEPTH", 3)
    timeline, _ = session(tmp_path / "a", CELLS)
    store = timeline.object_store
    records, expected = unsent_records(store, set())
    transport = MemoryTransport()
    seen: list[tuple[int, int]] = []
    writer = PackWriter(transport, "nb", KEY)
    *packs, (_, summary) = writer.upload(store, records, None, {}, expected,
                                         lambda done, total: seen.append((done, total)))
    assert len(packs) > 3 and summary.pack == "" and summary.embedded == dict(packs)
    assert [index.parents for _, index in packs] == [(), *[(name,) for name, _ in packs[:-1]]]
    assert [index.depth for _, index in packs] == list(range(1, len(packs) + 1))
    stored: dict[bytes, bytes] = {}
    for name, index in packs:
        stored.update(read_pack(transport.get(f"nb/packs/{index.pack}.pack").data, index))
        body, signature = split_signed_document(transport.get(f"nb/indexes/{name}.idx").data,
                                                "index")
        assert KEY.is_valid(body, signature)
    assert set(stored) == {key for key, _ in records}
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert all(total >= done for done, total in seen)
    timeline.close()
