"""Push, pull, conflicts, verification and remote gc, between real RocksDB stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from timetravel_kernel.errors import (
    RemoteConflictError,
    RemoteCorruptError,
    RemoteNotFoundError,
    RemoteTrustError,
    RemoteUnavailableError,
)
from timetravel_kernel.remote import (
    FileTransport,
    MemoryTransport,
    Remote,
    Signer,
)
from timetravel_kernel.remote.packs import decode_index
from timetravel_kernel.remote.signing import split_signed_document
from timetravel_kernel.store.keys import encode_key
from timetravel_kernel.store.refs import REF_HEAD
from timetravel_kernel.timeline import CellInfo, Timeline

from ..factories import checkpoint_cell, open_timeline
from ..workloads import fresh_namespace, run_cell

KEY = Signer(b"k" * 32)
OTHER_KEY = Signer(b"o" * 32)


def session(path: Path, cells: list[str]) -> tuple[Timeline, dict]:
    timeline = open_timeline(path)
    ns = fresh_namespace()
    timeline.start(ns)
    for number, code in enumerate(cells, start=1):
        run_cell(ns, code)
        timeline.checkpoint(ns, CellInfo(code=code, execution_count=number))
    return timeline, ns


def push_steps(timeline: Timeline, ns: dict, remote: Remote, steps: int) -> None:
    """Run ``counter += 1`` ``steps`` times, pushing after each cell."""
    for _ in range(steps):
        checkpoint_cell(timeline, ns, "counter += 1")
        remote.push(timeline.object_store)


def commits_of(timeline: Timeline) -> set[bytes]:
    return {c.id for c in timeline.object_store.iter_commits()}


def restored(path: Path) -> dict:
    timeline = open_timeline(path)
    ns = fresh_namespace()
    timeline.start(ns)
    timeline.restore(ns)
    timeline.close()
    return ns


CELLS = ["import numpy as np\ncounter = 0\nweights = np.arange(50_000, dtype=np.float64)",
         "class Point:\n    def __init__(self, x):\n        self.x = x\np = Point(3)",
         "words = ['alpha'] * 1000"]


@pytest.fixture(params=["memory", "file"])
def transport(request, tmp_path):
    if request.param == "memory":
        return MemoryTransport()
    (tmp_path / "remote").mkdir()
    return FileTransport(tmp_path / "remote")


def test_a_pushed_history_comes_back_exactly_in_another_store(transport, tmp_path):
    timeline, ns = session(tmp_path / "a", CELLS)
    report = Remote(transport, "nb.ipynb", signer=KEY).push(timeline.object_store)
    assert report.commits == len(commits_of(timeline)) and report.packs == 1
    head = timeline.object_store.read_ref(REF_HEAD)
    timeline.close()

    other = open_timeline(tmp_path / "b")
    pulled = Remote(transport, "nb.ipynb", signer=KEY).pull(other.object_store)
    assert pulled.head_moved and pulled.head == head.hex()
    other.close()
    fresh = restored(tmp_path / "b")
    assert fresh["counter"] == 0 and fresh["p"].x == 3 and fresh["words"] == ns["words"]
    assert (fresh["weights"] == ns["weights"]).all()
    assert isinstance(fresh["p"], fresh["Point"])


def test_an_incremental_push_sends_only_the_new_records(transport, tmp_path):
    timeline, ns = session(tmp_path / "a", CELLS)
    remote = Remote(transport, "nb.ipynb", signer=KEY)
    first = remote.push(timeline.object_store)
    checkpoint_cell(timeline, ns, "counter += 1")
    second = remote.push(timeline.object_store)
    # the commit, the tree root, one bucket and counter's covar
    assert second.commits == 1 and second.records <= 4
    assert second.requests <= 4 and second.bytes_sent <= 10_000
    assert second.bytes_sent < first.bytes_sent / 20
    again = remote.push(timeline.object_store)
    assert again.records == 0 and again.requests == 1 and again.bytes_sent == 0
    timeline.close()


def test_a_stale_push_is_refused_and_a_pull_merges_both_histories(transport, tmp_path):
    a, ns_a = session(tmp_path / "a", CELLS[:1])
    Remote(transport, "nb", signer=KEY).push(a.object_store)
    b = open_timeline(tmp_path / "b")
    remote_b = Remote(transport, "nb", signer=KEY)
    remote_b.pull(b.object_store)
    b.reload_history()
    ns_b = fresh_namespace()
    b.start(ns_b)
    b.restore(ns_b)

    remote_a = Remote(transport, "nb", signer=KEY)
    run_cell(ns_a, "counter = 10")
    a.checkpoint(ns_a, CellInfo(code="counter = 10"))
    run_cell(ns_b, "counter = 20")
    b.checkpoint(ns_b, CellInfo(code="counter = 20"))
    remote_a.push(a.object_store)
    with pytest.raises(RemoteConflictError, match="pull first"):
        remote_b.push(b.object_store)
    merged = remote_b.pull(b.object_store)
    assert not merged.head_moved  # b has its own newer state: its HEAD stays
    remote_b.push(b.object_store)

    c = open_timeline(tmp_path / "c")
    Remote(transport, "nb", signer=KEY).pull(c.object_store)
    assert commits_of(a) | commits_of(b) <= commits_of(c)  # no commit lost
    assert c.object_store.read_ref(REF_HEAD) == b.object_store.read_ref(REF_HEAD)
    for timeline in (a, b, c):
        timeline.close()


class RefuseRefWrites(MemoryTransport):
    """A server that goes away just before the ref is swapped (the last step of a push)."""

    down = False

    def put_if_tag(self, path, data, tag):
        if self.down:
            raise RemoteUnavailableError("the server went away")
        return super().put_if_tag(path, data, tag)


def test_a_push_cut_short_is_invisible_and_completes_later_then_gc_reclaims(tmp_path):
    transport = RefuseRefWrites()
    timeline, ns = session(tmp_path / "a", CELLS[:1])
    remote = Remote(transport, "nb", signer=KEY)
    remote.push(timeline.object_store)
    first_head = timeline.object_store.read_ref(REF_HEAD)
    run_cell(ns, "counter = 5")
    timeline.checkpoint(ns, CellInfo(code="counter = 5"))
    transport.down = True
    with pytest.raises(RemoteUnavailableError):
        remote.push(timeline.object_store)
    packs_before = len(list(transport.list("nb/packs/")))
    # Another machine sees only the first push.
    other = open_timeline(tmp_path / "b")
    assert Remote(transport, "nb", signer=KEY).pull(other.object_store).head == first_head.hex()
    other.close()

    orphan = Remote(transport, "nb", signer=KEY).collect_garbage(grace_seconds=3600)
    assert orphan.deleted == 0 and orphan.kept_in_grace == 2  # the cut push's pack and index

    transport.down = False
    report = remote.push(timeline.object_store)
    assert report.head == timeline.object_store.read_ref(REF_HEAD).hex()
    assert len(list(transport.list("nb/packs/"))) == packs_before  # same pack, same name
    timeline.close()

    # Fake an abandoned push from a day ago: gc deletes it, and keeps everything reachable.
    transport.put_if_absent("nb/packs/" + "0" * 64 + ".pack", b"abandoned")
    path = "nb/packs/" + "0" * 64 + ".pack"
    data, tag, _ = transport.objects[path]
    transport.objects[path] = (data, tag, 0.0)
    gone = Remote(transport, "nb", signer=KEY).collect_garbage(grace_seconds=3600)
    assert gone.deleted == 1 and path not in transport.objects
    third = open_timeline(tmp_path / "c")
    Remote(transport, "nb", signer=KEY).pull(third.object_store)
    third.close()
    assert restored(tmp_path / "c")["counter"] == 5


def test_a_tampered_pack_is_refused_and_nothing_is_stored(transport, tmp_path):
    timeline, _ = session(tmp_path / "a", CELLS)
    Remote(transport, "nb", signer=KEY).push(timeline.object_store)
    timeline.close()
    [pack] = [o.path for o in transport.list("nb/packs/")]
    data = bytearray(transport.get(pack).data)
    data[len(data) // 2] ^= 0xFF
    transport.delete(pack)
    transport.put_if_absent(pack, bytes(data))

    other = open_timeline(tmp_path / "b")
    with pytest.raises(RemoteCorruptError, match="tampered"):
        Remote(transport, "nb", signer=KEY).pull(other.object_store)
    assert other.object_store.read_ref(REF_HEAD) is None
    assert not list(other.object_store.backend.scan_prefix(encode_key("chunk", b"")))
    other.close()


def test_a_history_signed_with_another_key_is_refused_unless_trusted(transport, tmp_path):
    timeline, _ = session(tmp_path / "a", CELLS[:1])
    Remote(transport, "nb", signer=OTHER_KEY).push(timeline.object_store)
    timeline.close()
    other = open_timeline(tmp_path / "b")
    with pytest.raises(RemoteTrustError, match=r"not signed with this machine's key.*--trust"):
        Remote(transport, "nb", signer=KEY).pull(other.object_store)
    assert not list(other.object_store.backend.scan_prefix(encode_key("covar", b"")))
    assert Remote(transport, "nb", signer=KEY, trust=True).pull(other.object_store).head_moved
    other.close()


def test_pulling_a_notebook_never_pushed_says_so(transport, tmp_path):
    timeline = open_timeline(tmp_path / "a")
    with pytest.raises(RemoteNotFoundError, match="no history has been pushed"):
        Remote(transport, "nb", signer=KEY).pull(timeline.object_store)
    timeline.close()


def test_summaries_bound_what_a_new_machine_reads_and_survive_gc(monkeypatch, tmp_path):
    monkeypatch.setattr("timetravel_kernel.remote.upload.SUMMARY_DEPTH", 3)
    transport = MemoryTransport()
    timeline, ns = session(tmp_path / "a", ["counter = 0"])
    remote = Remote(transport, "nb", signer=KEY)
    remote.push(timeline.object_store)
    push_steps(timeline, ns, remote, 10)
    timeline.close()
    indexes = len(list(transport.list("nb/indexes/")))
    assert indexes >= 11 + 3  # one per push, plus the summaries

    fresh = Remote(transport, "nb", signer=KEY)
    other = open_timeline(tmp_path / "b")
    before = transport.requests
    report = fresh.pull(other.object_store)
    other.close()
    packs_read = 11
    assert transport.requests - before <= 1 + 3 + 1 + packs_read  # ref, <= 3 hops, a summary
    assert report.head_moved and restored(tmp_path / "b")["counter"] == 10

    packs = sorted(o.path for o in transport.list("nb/packs/"))
    gone = Remote(transport, "nb", signer=KEY).collect_garbage(grace_seconds=0)
    # Only the summaries a newer summary replaced go; every pack stays reachable.
    assert gone.deleted == 2 and sorted(o.path for o in transport.list("nb/packs/")) == packs
    third = open_timeline(tmp_path / "c")
    Remote(transport, "nb", signer=KEY).pull(third.object_store)
    third.close()
    assert restored(tmp_path / "c")["counter"] == 10


def summaries(transport, notebook: str) -> set[str]:
    """Return the paths of the summary indexes (no pack of their own)."""
    found = set()
    for info in transport.list(f"{notebook}/indexes/"):
        body, _ = split_signed_document(transport.get(info.path).data, "index")
        if not decode_index(body, info.path).pack:
            found.add(info.path)
    return found


def test_a_superseded_summary_goes_even_when_the_collector_wrote_it(monkeypatch, tmp_path):
    monkeypatch.setattr("timetravel_kernel.remote.upload.SUMMARY_DEPTH", 2)
    transport = MemoryTransport()
    timeline, ns = session(tmp_path / "a", ["counter = 0"])
    remote = Remote(transport, "nb", signer=KEY)
    remote.push(timeline.object_store)
    push_steps(timeline, ns, remote, 5)
    timeline.close()
    written = summaries(transport, "nb")
    assert len(written) == 3  # every second push
    gone = remote.collect_garbage(grace_seconds=0)  # the process that wrote them all
    assert gone.deleted == 2 and len(summaries(transport, "nb") & written) == 1
    other = open_timeline(tmp_path / "b")
    Remote(transport, "nb", signer=KEY).pull(other.object_store)
    other.close()
    assert restored(tmp_path / "b")["counter"] == 5


def test_only_the_latest_state_can_come_first_and_the_history_after(tmp_path):
    transport = MemoryTransport()
    timeline, _ = session(tmp_path / "a", [
        "import numpy as np\nold = np.random.default_rng(1).random(200_000)",
        "del old\nkept = list(range(10))", "kept.append(10)"])
    remote = Remote(transport, "nb", signer=KEY)
    remote.push(timeline.object_store)
    all_commits = commits_of(timeline)
    timeline.close()

    other = open_timeline(tmp_path / "b")
    fresh = Remote(transport, "nb", signer=KEY)
    first = fresh.pull(other.object_store, only_head=True)
    assert first.head_moved and first.commits == 1
    assert not list(other.object_store.backend.scan_prefix(encode_key("chunk", b"")))
    other.close()
    assert restored(tmp_path / "b")["kept"] == list(range(11))

    other = open_timeline(tmp_path / "b")
    rest = fresh.pull(other.object_store)
    assert rest.commits >= len(all_commits) - 2  # the empty root may exist already
    assert commits_of(other) >= all_commits
    other.close()
