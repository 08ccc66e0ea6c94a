"""Row: one system's measurements on one notebook, what run.py fills and report.py shows."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    """One system on one notebook; seconds, bytes; None where not applicable or failed."""

    notebook: str
    system: str
    cells: int
    reply_s: list[float] = field(default_factory=list)
    idle_s: list[float] = field(default_factory=list)
    storage_bytes: int | None = None
    undo_s: float | None = None
    first_s: float | None = None
    last_s: float | None = None
    restore_s: float | None = None
    start_s: float | None = None
    peak_rss: int | None = None
    exact: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
