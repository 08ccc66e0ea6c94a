"""TimelineOptions: what a timeline saves and how it cuts buffers (state layer)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["TimelineOptions"]


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
