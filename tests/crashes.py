"""What a store must look like after its writer was killed (shared by the crash tests)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from timetravel_kernel.store import ObjectStore, RocksBackend
from timetravel_kernel.store.refs import REF_HEAD

if TYPE_CHECKING:
    from pathlib import Path


def check_head_after_kill(path: Path, last_commit: str | None, last_printed: str | None,
                          label: str, *, spooled: bool = False) -> str | None:
    """Assert the killed writer's store is whole; return its HEAD (the new last commit).

    Checked in a fresh process: opening and verifying a store after a kill leaves ~its size
    of native memory in the process (not understood yet), and 50 kills grew the test
    process by 18 GB, enough for the OOM killer to stop the suite on a 24 GB machine. Spawned,
    not forked: a fork of the test process, which runs threads by then, can hang.
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_check_head, path, last_commit, last_printed, label,
                           spooled).result()


def _check_head(path: Path, last_commit: str | None, last_printed: str | None,
                label: str, spooled: bool) -> str | None:
    """Assert the killed writer's store is whole; return its HEAD (see check_head_after_kill).

    HEAD is the last commit the writer reported complete, or one it completed but was killed
    before reporting (whose parent is the last thing reported) - or, ``spooled``, a commit
    its snapshots saved after it died, descending from the last one reported; every object
    of every commit is present and matches its hash.
    """
    store = ObjectStore(RocksBackend(path))
    try:
        head = store.read_ref(REF_HEAD)
        commits = {c.id.hex(): c for c in store.iter_commits()}
        if spooled and head is not None:
            ancestors, walk = set(), commits.get(head.hex())
            while walk is not None:
                ancestors.add(walk.id.hex())
                walk = commits.get(walk.parent.hex()) if walk.parent else None
            assert last_commit is None or last_commit in ancestors, label
        else:
            allowed = {last_commit} | {
                cid for cid, c in commits.items() if c.parent and c.parent.hex() == last_printed
            }
            assert (head.hex() if head else None) in allowed, label
        if head is not None:
            assert head.hex() in commits, label
        store.verify()
        return head.hex() if head is not None else last_commit
    finally:
        store.close()
