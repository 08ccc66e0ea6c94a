"""What a store must look like after its writer was killed (shared by the crash tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from timetravel_kernel.store import ObjectStore, RocksBackend
from timetravel_kernel.store.refs import REF_HEAD

if TYPE_CHECKING:
    from pathlib import Path


def check_head_after_kill(path: Path, last_commit: str | None, last_printed: str | None,
                          label: str) -> str | None:
    """Assert the killed writer's store is whole; return its HEAD (the new last commit).

    HEAD is the last commit the writer reported complete, or one it completed but was killed
    before reporting (whose parent is the last thing reported); every object of every commit
    is present and matches its hash.
    """
    store = ObjectStore(RocksBackend(path))
    try:
        head = store.read_ref(REF_HEAD)
        commits = {c.id.hex(): c for c in store.iter_commits()}
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
