"""Inputs and results of timeline operations: plain frozen records (timeline layer)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from timetravel_kernel.store.objects import Commit

__all__ = [
    "CellInfo",
    "CheckoutResult",
    "CheckpointResult",
    "DiffResult",
    "TimelineOptions",
    "VarInfo",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineOptions:
    """How a timeline decides what to save.

    Args:
        chunk_size: bytes per content chunk of a large buffer; a small in-place edit of a big
            array stores about one chunk.
        inline_limit: buffers up to this size are kept inside their manifest, not chunked.
        skip_names: names never saved (for example the shell's own ``In``/``Out``).
        skip_pattern: a regular expression; names matching it in full are never saved.
        skip_types: qualified type names (``module.Class``) whose values are never saved.
        max_covar_bytes: a co-variable larger than this is recorded as unsaved (a size budget);
            None for no limit.
    """

    chunk_size: int = 256 * 1024
    inline_limit: int = 64 * 1024
    skip_names: frozenset[str] = frozenset()
    skip_pattern: str = r"__.*__"
    skip_types: frozenset[str] = frozenset()
    max_covar_bytes: int | None = None
    _skip_re: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_skip_re", re.compile(self.skip_pattern))

    def is_tracked(self, name: str) -> bool:
        """Return whether ``name`` belongs to the saved state."""
        return name not in self.skip_names and self._skip_re.fullmatch(name) is None


@dataclass(frozen=True, slots=True, kw_only=True)
class CellInfo:
    """The cell whose execution a checkpoint records."""

    code: str = ""
    cell_id: str | None = None
    execution_count: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointResult:
    """A new commit and what it could not save.

    ``unsaved`` lists names first found unsaveable in this checkpoint, with the reason, so the
    user is told once; ``seconds`` is the checkpoint's wall time.
    """

    commit: Commit
    unsaved: Mapping[str, str]
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckoutResult:
    """What a checkout did to the namespace.

    ``loaded`` names got values from the store or the live cache, ``deleted`` names were
    removed, ``kept`` names were left untouched (same objects); ``unrestored`` maps names the
    target has but could not bring back to the reason.
    """

    head: Commit
    loaded: tuple[str, ...]
    deleted: tuple[str, ...]
    kept: tuple[str, ...]
    seconds: float
    unrestored: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffResult:
    """Names that differ between two commits."""

    added: tuple[str, ...]
    deleted: tuple[str, ...]
    changed: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class VarInfo:
    """One saved (or unsaveable) name of a commit, for display."""

    name: str
    type: str
    bytes: int
    covariable: str
    saved: bool
    reason: str | None = None
