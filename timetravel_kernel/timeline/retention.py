"""Retention: which old states to give up so a store stays within its age and size limits.

Thinning a state keeps its commit record (the parent links, the cell's code) and gives up the
namespace it recorded; garbage collection then frees what only thinned states used. Branch
tips, HEAD and the states undo/redo/restore may go to are never thinned (timeline layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from timetravel_kernel.ids import CommitId
    from timetravel_kernel.store.object_store import GarbageReport, ObjectStore
    from timetravel_kernel.store.objects import Commit
    from timetravel_kernel.timeline.history import CommitIndex

__all__ = [
    "RetentionPolicy",
    "RetentionReport",
    "apply_retention",
    "parse_age",
    "parse_size",
    "plan_thinning",
]

_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    """How long and how much history a store keeps; None switches a limit off.

    Attributes:
        keep_last: the newest N states are always kept.
        older_than: states newer than this many seconds are always kept.
        every: of the states the two limits above leave, keep one per N cells (1 keeps all,
            None thins them all).
        budget: the store's size on disk in bytes; the oldest states away from HEAD go
            first, HEAD's own ancestors last.
    """

    keep_last: int | None = None
    older_than: float | None = None
    every: int | None = None
    budget: int | None = None

    @property
    def thins_by_age(self) -> bool:
        """Whether the age limits (not only the budget) thin anything."""
        return self.keep_last is not None or self.older_than is not None

    @property
    def is_active(self) -> bool:
        """Whether any limit is set."""
        return self.thins_by_age or self.budget is not None


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What applying a policy gave up, and the collection that followed (None on a dry run)."""

    thinned: tuple[Commit, ...]
    garbage: GarbageReport | None


def parse_age(text: str) -> float:
    """Return seconds for ``90s``, ``30m``, ``12h``, ``7d`` or ``2w``.

    Raises:
        ValueError: not a number followed by one of s, m, h, d, w.
    """
    text = text.strip().lower()
    unit = text[-1:] if text[-1:] in _AGE_UNITS else ""
    try:
        value = float(text[: len(text) - len(unit)])
    except ValueError:
        raise ValueError(f"not an age: {text!r} (use e.g. 90s, 30m, 12h, 7d, 2w)") from None
    if value < 0 or not unit:
        raise ValueError(f"not an age: {text!r} (use e.g. 90s, 30m, 12h, 7d, 2w)")
    return value * _AGE_UNITS[unit]


def parse_size(text: str) -> int:
    """Return bytes for ``500MB``, ``2GB``, ``1.5GiB`` or a plain number of bytes.

    Raises:
        ValueError: not a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB).
    """
    text = text.strip().lower().replace(" ", "")
    digits = len(text) - len(text.lstrip("0123456789."))
    unit = text[digits:]
    try:
        value = float(text[:digits])
    except ValueError:
        raise ValueError(f"not a size: {text!r} (use e.g. 500MB, 2GB)") from None
    if unit not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 500MB, 2GB)")
    return int(value * _SIZE_UNITS[unit])


def plan_thinning(
    commits: Mapping[CommitId, Commit],
    thinned: Collection[CommitId],
    protected: Collection[CommitId],
    head: CommitId | None,
    policy: RetentionPolicy,
    *,
    now: float,
    store_bytes: int,
) -> list[CommitId]:
    """Return the commits to thin under ``policy``, oldest first.

    ``commits`` are all commit records, ``thinned`` those already thinned. ``protected``
    ones (HEAD, the redo stack, the restorable state) and branch tips are never chosen. The
    budget is met on an estimate: thinning a state frees at most the bytes it wrote itself.
    """
    parents = {c.parent for c in commits.values()}
    keep = set(protected) | {cid for cid in commits if cid not in parents}  # branch tips
    kept = [c for c in commits.values() if c.id not in thinned]
    by_age = sorted(kept, key=lambda c: c.time)
    chosen: list[CommitId] = []
    if policy.thins_by_age:
        newest = {c.id for c in by_age[-policy.keep_last:]} if policy.keep_last else set()
        cutoff = now - policy.older_than if policy.older_than is not None else float("inf")
        old = [c for c in by_age if c.id not in newest and c.time < cutoff and c.id not in keep]
        chosen = [c.id for i, c in enumerate(old) if not policy.every or i % policy.every]
    if policy.budget is not None:
        estimate = store_bytes - sum(commits[c].bytes_written for c in chosen)
        on_head_path = _ancestors(commits, head)
        taken = set(chosen)
        rest = [c for c in by_age if c.id not in keep and c.id not in taken]
        # Away from HEAD first, then HEAD's own past; oldest first within each.
        for commit in sorted(rest, key=lambda c: c.id in on_head_path):
            if estimate <= policy.budget:
                break
            chosen.append(commit.id)
            estimate -= commit.bytes_written
    order = {c.id: i for i, c in enumerate(by_age)}
    return sorted(chosen, key=order.__getitem__)


def _ancestors(commits: Mapping[CommitId, Commit], start: CommitId | None) -> set[CommitId]:
    seen: set[CommitId] = set()
    while start is not None and start not in seen and start in commits:
        seen.add(start)
        start = commits[start].parent
    return seen


def apply_retention(store: ObjectStore, history: CommitIndex, policy: RetentionPolicy, *,
                    protected: Collection[CommitId], head: CommitId | None, now: float,
                    dry_run: bool = False, compact: bool = True) -> RetentionReport:
    """Thin old states as ``policy`` says, then collect garbage and compact.

    A budget is met on estimates, so the store is measured after each collection and thinned
    further while it is still over (three rounds at most). With ``compact=False`` one round
    runs and the disk is given back by a later compaction.
    """
    thinned: list[CommitId] = []
    garbage: GarbageReport | None = None
    for _ in range(3):
        plan = plan_thinning(history.every(), history.thinned, protected, head, policy,
                             now=now, store_bytes=store.live_bytes())
        if dry_run:
            return RetentionReport(tuple(history.every()[c] for c in plan), None)
        if plan:
            store.mark_thinned(plan)
            history.thin(set(plan))
            thinned += plan
        elif garbage is not None:
            break
        garbage = store.collect_garbage(compact=compact)
        if not compact or policy.budget is None or store.live_bytes() <= policy.budget:
            break
    every = history.every()
    return RetentionReport(tuple(every[c] for c in thinned), garbage)
