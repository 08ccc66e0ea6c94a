"""RecentCommits: the newest commits written, noted beside the database (store layer).

The note lives outside the database (``Backend.read_note``), so it survives damage to the
database's write-ahead log: after a recovery, the noted commits the store lacks are the states
the damage lost, and the kernel can say so once.
"""

from __future__ import annotations

import json
from contextlib import suppress
from typing import TYPE_CHECKING

from timetravel_kernel.errors import StoreError
from timetravel_kernel.ids import CommitId, hex_to_id, id_to_hex

if TYPE_CHECKING:
    from collections.abc import Callable

    from timetravel_kernel.store.backend import Backend

__all__ = ["RecentCommits"]

_NOTE = "recent-commits"
_KEPT = 64


class RecentCommits:
    """The recent-commits note of one store, and what it said was lost when the store opened.

    Args:
        backend: the store's backend, which keeps the note.
        is_stored: whether the store holds a commit.
    """

    def __init__(self, backend: Backend, is_stored: Callable[[CommitId], bool]) -> None:
        self._backend = backend
        self._ids = self._read()
        kept = [c for c in self._ids if is_stored(c)]
        # How many of the newest commits earlier sessions wrote are gone (a damaged log); when
        # every noted one is, more may be gone than the note holds.
        self.lost = len(self._ids) - len(kept)
        self.lost_more_than_noted = not kept and len(self._ids) >= _KEPT
        if self.lost and not backend.read_only:
            self._ids = kept
            self._write()

    def note(self, commit_id: CommitId) -> None:
        """Record a durable commit in the note.

        Best effort: the commit is already durable, and a note that could not be written only
        weakens the detection of a later damaged log.
        """
        self._ids = [*self._ids[-(_KEPT - 1):], commit_id]
        with suppress(StoreError):
            self._write()

    def _read(self) -> list[CommitId]:
        data = self._backend.read_note(_NOTE)
        try:
            return [CommitId(hex_to_id(h)) for h in json.loads(data)] if data else []
        except (ValueError, TypeError):
            return []  # a note damaged too witnesses nothing

    def _write(self) -> None:
        self._backend.write_note(_NOTE, json.dumps([id_to_hex(c) for c in self._ids]).encode())
