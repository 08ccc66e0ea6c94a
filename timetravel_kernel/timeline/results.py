"""Inputs and results of timeline operations: plain frozen records (timeline layer)."""

from __future__ import annotations

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
    "VarInfo",
    "VersionInfo",
    "describe_cell",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class CellInfo:
    """The cell whose execution a checkpoint records.

    ``source`` is the Python that actually ran, when ``code`` (what the user typed, shown in
    the history) has IPython syntax; the checkpoint reads it to learn which names the cell may
    have touched. Without either, every name is examined. ``cells`` counts the cells this
    one stands for (more than one when cells were folded into one checkpoint).
    """

    code: str = ""
    source: str | None = None
    cell_id: str | None = None
    execution_count: int | None = None
    cells: int = 1


def describe_cell(cell: CellInfo | Commit) -> str:
    """Return how a user finds a recorded cell again: its execution count, else its first line."""
    if cell.execution_count is not None and cell.cells > 1:
        return f"one of the {cell.cells} cells up to [{cell.execution_count}]"
    if cell.execution_count is not None:
        return f"cell [{cell.execution_count}]"
    first = cell.code.strip().splitlines()[0] if cell.code.strip() else ""
    return f"the cell `{first[:60]}`" if first else "the session's start"


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
    target has but could not bring back to the reason; ``reconnected`` are the loaded names
    that could not be saved and were made again from their descriptions (a file reopened, a
    database file connected, a lock or an event), running none of the notebook's code.
    """

    head: Commit
    loaded: tuple[str, ...]
    deleted: tuple[str, ...]
    kept: tuple[str, ...]
    seconds: float
    unrestored: Mapping[str, str]
    reconnected: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffResult:
    """Names that differ between two commits.

    ``values`` (when asked for) says what changed inside each changed name, one line each.
    """

    added: tuple[str, ...]
    deleted: tuple[str, ...]
    changed: tuple[str, ...]
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class VarInfo:
    """One saved (or unsaveable) name of a commit, for display."""

    name: str
    type: str
    bytes: int
    covariable: str
    saved: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionInfo:
    """One version of a name: the commit that made it, or deleted the name, and its value.

    ``covariable`` is None for a deletion; ``members`` are the names stored with it (it
    shares objects with them); ``current`` says HEAD has this very version.
    """

    commit: Commit
    covariable: str | None
    type: str
    bytes: int
    saved: bool
    members: tuple[str, ...]
    current: bool
    reason: str | None = None
