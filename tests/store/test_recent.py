"""The recent-commits note (store/recent.py): what a damaged log lost, said once."""

from __future__ import annotations

from pathlib import Path

from timetravel_kernel.ids import CommitId, hash_bytes
from timetravel_kernel.store import MemoryBackend, ObjectStore, RocksBackend
from timetravel_kernel.store.keys import encode_key
from timetravel_kernel.store.recent import RecentCommits

from .test_object_store import commit_one

# Writes six commits and dies without closing: they are only in RocksDB's write-ahead log.
_UNCLOSED_CHILD = """
import os, sys
sys.path[:0] = sys.argv[2:]
from timetravel_kernel.store import ObjectStore, RocksBackend
from tests.store.test_object_store import commit_one
store = ObjectStore(RocksBackend(sys.argv[1]))
for i in range(6):
    commit_one(store, b"payload %d " % i * 1000)
os._exit(0)
"""


def test_commits_a_damaged_log_dropped_are_counted_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "store"
    root = str(Path(__file__).parents[2])
    subprocess.run([sys.executable, "-c", _UNCLOSED_CHILD, str(path), root], check=True,
                   timeout=120)
    intact = ObjectStore(RocksBackend(path, read_only=True))
    assert intact.lost_commits == 0 and len(list(intact.iter_commits())) == 6
    intact.close()
    log = next(path.glob("*.log"))
    log.write_bytes(log.read_bytes()[: log.stat().st_size * 2 // 3])
    damaged = ObjectStore(RocksBackend(path))
    kept = len(list(damaged.iter_commits()))
    assert 0 < damaged.lost_commits == 6 - kept
    damaged.close()
    again = ObjectStore(RocksBackend(path))
    assert again.lost_commits == 0  # said once; the note now lists what the store has
    again.close()


def test_memory_backend_keeps_notes_like_the_disk() -> None:
    store = ObjectStore(MemoryBackend())
    commit, _, _ = commit_one(store, b"x" * 100)
    assert commit.id.hex() in store.backend.read_note("recent-commits").decode()


def test_losing_every_noted_commit_is_a_lower_bound() -> None:
    backend = MemoryBackend()
    store = ObjectStore(backend)
    for i in range(70):
        commit_one(store, b"payload %d" % i)
    assert ObjectStore(backend).lost_commits == 0
    backend.write_batch((), [k for k, _ in backend.scan_prefix(encode_key("commit", b""))])
    again = ObjectStore(backend)
    assert again.lost_commits == 64 and again.lost_more_than_noted


def test_the_note_holds_the_newest_64_and_forgets_what_it_reported() -> None:
    backend = MemoryBackend()
    ids = [CommitId(hash_bytes(b"%d" % i)) for i in range(70)]
    recent = RecentCommits(backend, lambda _: True)
    for commit_id in ids:
        recent.note(commit_id)
    lost = RecentCommits(backend, lambda c: c != ids[-1])  # the newest did not survive
    assert lost.lost == 1 and not lost.lost_more_than_noted
    assert RecentCommits(backend, set(ids[6:69]).__contains__).lost == 0  # ids[:6] fell off
    nothing = RecentCommits(backend, lambda _: False)
    assert nothing.lost == 63 and nothing.lost_more_than_noted is False  # 63 < 64 noted now


def test_a_damaged_note_witnesses_nothing() -> None:
    backend = MemoryBackend()
    backend.write_note("recent-commits", b"[not json")
    recent = RecentCommits(backend, lambda _: False)
    assert recent.lost == 0 and not recent.lost_more_than_noted
