"""Opening a store: what a dead kernel left, how the last session ended (timeline layer).

Before a kernel looks at a store's history, the states a dead kernel's snapshots spooled are
committed (``store/spool.py``); then the session marker says whether the last session crashed,
and HEAD is the state a restore would bring back, unless it is empty or a restore of it was
what killed the last kernel.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from timetravel_kernel.errors import MissingObjectError
from timetravel_kernel.store import ObjectStore, RocksBackend
from timetravel_kernel.store.refs import (
    REF_HEAD,
    REF_RESTORING,
    REF_SESSION,
    SessionMarker,
    decode_session,
    encode_session,
)
from timetravel_kernel.store.rocks import check_manifest
from timetravel_kernel.store.spool import IngestedSpool, ingest_spools

if TYPE_CHECKING:
    from timetravel_kernel.store import Commit

__all__ = ["PreviousSession", "mark_session", "open_store", "read_previous_session"]


@dataclass(frozen=True, slots=True)
class PreviousSession:
    """How the last session that used a store ended, and the state it left.

    ``restore_interrupted``: a restore of ``restorable`` was under way when it died (the
    restore itself may have killed it: not to be retried unasked).
    """

    crashed: bool
    restorable: Commit | None
    restore_interrupted: bool


def open_store(path: Path, *, read_only: bool, purpose: str, key: str,
               spool_wait: float) -> tuple[ObjectStore, list[IngestedSpool]]:
    """Open the store at ``path``, first committing what a dead kernel's snapshots spooled.

    Raises:
        StoreLockedError: another process has it open for writing.
        StoreCorruptError, StoreFormatError, StoreError: it cannot be used.
    """
    if not read_only and (path / "CURRENT").exists():
        check_manifest(path)
    backend = RocksBackend(path, read_only=read_only, purpose=purpose, key=key)
    try:
        store = ObjectStore(backend)
        return store, ingest_spools(store, backend.spool_dir, wait_seconds=spool_wait)
    except BaseException:
        # Closed at once: RocksDB keeps the path locked in this process while it is open, and
        # the caller may move a damaged store aside and create a new one there.
        backend.close()
        raise


def read_previous_session(store: ObjectStore) -> PreviousSession:
    """Return how the last session that used ``store`` ended."""
    marker = decode_session(store.read_ref(REF_SESSION))
    crashed = marker is not None and marker.state == "open"
    restorable = _nonempty_head(store)
    interrupted = (restorable is not None and crashed
                   and store.read_ref(REF_RESTORING) == restorable.id)
    return PreviousSession(crashed, restorable, interrupted)


def _nonempty_head(store: ObjectStore) -> Commit | None:
    head_id = store.read_ref(REF_HEAD)
    if head_id is None:
        return None
    try:
        commit = store.load_commit(head_id)  # type: ignore[arg-type]
        empty = len(store.load_tree(commit.tree)) == 0
    except MissingObjectError:
        return None
    return None if empty else commit


def mark_session(store: ObjectStore, state: Literal["open", "closed"]) -> None:
    """Mark this process's session open (a crash will be recognised) or cleanly closed."""
    marker = SessionMarker(state=state, pid=os.getpid(), started=time.time())
    store.set_refs({REF_SESSION: encode_session(marker)})
