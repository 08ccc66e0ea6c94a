"""PushThread: the session's link to its remote, off the cell path (session layer).

At start the kernel pulls what the remote has before its first cell (so a notebook opened on a
new machine comes back to its last state). After that every checkpoint only wakes a
background thread, which opens the store read-only (RocksDB allows that beside the writer),
pushes, and on failure keeps everything local and retries with exponential backoff. A push
refused because another machine pushed first is merged (a pull into the live store, holding the
kernel's history lock only for its last small batch) and retried; so is a history fetched only
up to its latest state at start.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timetravel_kernel.errors import (
    RemoteAccessError,
    RemoteConflictError,
    RemoteError,
    RemoteTrustError,
    StoreError,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from logging import Logger
    from pathlib import Path

    from timetravel_kernel.remote import PushReport, Remote

__all__ = ["PushThread", "RemoteStatus"]

_FIRST_RETRY = 2.0
_MAX_RETRY = 300.0


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """What ``%tt`` and ``status`` say about the remote."""

    url: str
    unpushed: int
    error: str | None
    last_push: float | None


class PushThread:
    """Background pushes of one store to one remote, with retries.

    Args:
        remote: the notebook's history on the remote.
        store_path: the local store (opened read-only for each push).
        merge: pulls the remote into the live store; returns False when it cannot run now.
        log: where retries are logged.
    """

    def __init__(self, remote: Remote, store_path: Path, *,
                 merge: Callable[[], bool], log: Logger) -> None:
        self.remote = remote
        self.store_path = store_path
        self._merge = merge
        self._log = log
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._checkpoints = 0
        self._error: str | None = None
        self._last_push: float | None = None
        self._thread: threading.Thread | None = None

    def status(self) -> RemoteStatus:
        """Return the unpushed count and the last failure."""
        with self._lock:
            return RemoteStatus(self.remote.url, self._checkpoints, self._error,
                                self._last_push)

    def start(self) -> None:
        """Start the background thread, which syncs once at once (idempotent).

        That first round pushes states a crash kept from the remote, and fetches the history
        behind a state restored from it.
        """
        self._wake.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="timetravel-push",
                                            daemon=True)
            self._thread.start()

    def note_checkpoint(self) -> None:
        """Count a new state and wake the pusher (returns at once)."""
        with self._lock:
            self._checkpoints += 1
        self._wake.set()

    def push_now(self) -> PushReport:
        """Push in the calling thread (``%tt push``)."""
        with self._lock:
            pending = self._checkpoints
        report = self._push_once()
        self._succeeded(pending)
        return report

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after the push in progress, waiting at most ``timeout`` seconds."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _push_once(self) -> PushReport:
        from timetravel_kernel.store import ObjectStore, RocksBackend

        store = ObjectStore(RocksBackend(self.store_path, read_only=True))
        try:
            return self.remote.push(store)
        finally:
            store.close()

    def _succeeded(self, pending: int) -> None:
        with self._lock:
            self._checkpoints = max(0, self._checkpoints - pending)
            self._error = None
            self._last_push = time.time()

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._error = str(exc)
        self._log.info("time travel: push to %s failed: %s", self.remote.url, exc)

    def _run(self) -> None:
        delay = _FIRST_RETRY
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            with self._lock:
                pending = self._checkpoints
            try:
                self._push_once()
            except RemoteConflictError as exc:
                self._failed(exc)
                merged = self._try_merge()
                self._retry_after(0.2 if merged else delay)
                continue
            except (RemoteAccessError, RemoteTrustError) as exc:
                # Retrying cannot fix credentials or keys: wait for the next checkpoint.
                self._failed(exc)
                continue
            except (RemoteError, StoreError, OSError) as exc:
                self._failed(exc)
                self._retry_after(delay)
                delay = min(delay * 2, _MAX_RETRY)
                continue
            except Exception as exc:
                # Background boundary: a bug here must not kill the thread or the kernel
                # (obstore's panics arrive translated into RemoteError by the S3 transport).
                self._log.warning("time travel: push failed", exc_info=True)
                self._failed(exc)
                continue
            delay = _FIRST_RETRY
            self._succeeded(pending)

    def _try_merge(self) -> bool:
        try:
            return self._merge()
        except (RemoteError, StoreError) as exc:
            self._failed(exc)
            return False

    def _retry_after(self, seconds: float) -> None:
        """Wake the thread again after ``seconds`` (unless a checkpoint wakes it first)."""
        timer = threading.Timer(seconds, self._wake.set)
        timer.daemon = True
        timer.start()
