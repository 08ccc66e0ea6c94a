"""Background retention: thin old states and collect garbage after checkpoints (session layer).

The kernel's history lock is held while states are thinned and garbage deleted, so neither a
checkpoint nor a checkout ever sees a half-collected store (a checkout meanwhile is refused
with ``busy``, as during a cell). Compaction, the slow part, runs after the lock is released:
RocksDB compacts beside writes and releases the GIL while it does.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timetravel_kernel.timeline import RetentionPolicy, Timeline

__all__ = ["BackgroundThinner"]

_log = logging.getLogger(__name__)
# Age limits are re-applied after this many checkpoints; a budget as soon as it is exceeded.
_CHECKPOINTS_BETWEEN_AGE_THINNING = 20


class BackgroundThinner:
    """Applies a retention policy to a timeline in a thread, one run at a time.

    Args:
        policy: the limits to keep.
        lock: the kernel's history lock (held by checkpoints and checkouts).
    """

    def __init__(self, policy: RetentionPolicy, lock: threading.RLock) -> None:
        self.policy = policy
        self._lock = lock
        self._since = 0
        self._thread: threading.Thread | None = None
        self.runs = 0

    def after_checkpoint(self, timeline: Timeline) -> None:
        """Start a run when one is due and none is running; return at once."""
        if not self.policy.is_active or self.is_running():
            return
        self._since += 1
        over_budget = self.policy.budget is not None and (
            timeline.store_bytes(settle=False, live=True) > self.policy.budget)
        by_age = (self.policy.thins_by_age
                  and self._since >= _CHECKPOINTS_BETWEEN_AGE_THINNING)
        if over_budget or by_age:
            self._since = 0
            self._thread = threading.Thread(target=self._run, args=(timeline,),
                                            name="timetravel-thinning", daemon=True)
            self._thread.start()

    def is_running(self) -> bool:
        """Whether a run is in progress."""
        return self._thread is not None and self._thread.is_alive()

    def join(self) -> None:
        """Wait for a run in progress (the store must not close under a compaction)."""
        if self._thread is not None:
            self._thread.join()

    def _run(self, timeline: Timeline) -> None:
        """Thin, collect, compact; again while a budget is still exceeded (3 rounds at most).

        Thinning is planned on estimates, and only the compacted disk tells whether the budget
        is met: without the later rounds a session that stops would stay over it.
        """
        budget = self.policy.budget
        try:
            for _ in range(3):
                # States being saved are waited for before the lock is taken: holding it
                # meanwhile would hold the next cell's reply until they are.
                timeline.settle()
                with self._lock:
                    if timeline.is_closed:
                        return
                    report = timeline.apply_retention(self.policy, compact=False)
                timeline.compact()
                _log.info("time travel: thinned %d states", len(report.thinned))
                if (budget is None or not report.thinned
                        or timeline.store_bytes(live=True) <= budget):
                    break
            self.runs += 1
        except Exception:
            # Maintenance boundary: a failed run leaves a consistent store (thinning marks and
            # deletions are atomic batches); the next checkpoint may try again.
            _log.warning("time travel: thinning the history failed", exc_info=True)
