"""LiveCache: the live objects of recent co-variable versions, for exact in-process undo.

Within one process, going back to a version whose objects still exist and have not changed
hands back those very objects (a generator, socket or open file survives undo and redo) and
skips loading. Unsaveable values are held strongly (the store cannot bring them back); small
values strongly up to a budget; large ones weakly, so old frames are not kept alive.
The timeline verifies a saved hit by its fingerprint before using it.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

import xxhash

if TYPE_CHECKING:
    from timetravel_kernel.ids import CovarId
    from timetravel_kernel.store.objects import Covar

__all__ = ["LiveCache"]

_STRONG_ITEM_BYTES = 1 << 20


class LiveCache:
    """Maps covar ids to the live values that were committed under them.

    Args:
        strong_budget: bytes of saved values held strongly (least recently used go first).
    """

    def __init__(self, *, strong_budget: int = 64 << 20) -> None:
        self._strong: OrderedDict[CovarId, tuple[tuple[object, ...], int]] = OrderedDict()
        self._strong_bytes = 0
        self._strong_budget = strong_budget
        self._unsaved: dict[CovarId, tuple[object, ...]] = {}
        self._weak: dict[CovarId, tuple[weakref.ref[object], ...]] = {}
        self._nonce = os.urandom(8)
        self._adopted: dict[tuple[int, ...], str] = {}

    def token_for(self, values: tuple[object, ...]) -> str:
        """Return a token naming the live identity of unsaveable values in this process.

        The cache holds unsaveable values strongly, so their ids cannot be reused while the
        token is in use. Values rebuilt for a recorded version keep that version's token.
        """
        adopted = self._adopted.get(tuple(id(v) for v in values))
        if adopted is not None:
            return adopted
        return xxhash.xxh3_64_hexdigest(self._nonce + repr([id(v) for v in values]).encode())

    def adopt(self, covar_id: CovarId, covar: Covar, values: tuple[object, ...]) -> None:
        """Hold rebuilt unsaveable values as the recorded version ``covar_id`` they replace.

        They keep its token, so the next checkpoint records the same version, and the lineage
        that made them goes on from where it was.
        """
        self._unsaved[covar_id] = values
        if covar.token is not None:
            self._adopted[tuple(id(v) for v in values)] = covar.token

    def put(self, covar_id: CovarId, covar: Covar, values: tuple[object, ...]) -> None:
        """Remember the values committed (or loaded) as ``covar_id``."""
        if covar.serializer == "unsaved":
            self._unsaved[covar_id] = values
            return
        if covar_id in self._strong or covar_id in self._weak:
            return
        if covar.nbytes <= _STRONG_ITEM_BYTES:
            self._strong[covar_id] = (values, covar.nbytes)
            self._strong_bytes += covar.nbytes
            while self._strong_bytes > self._strong_budget:
                _, (_, size) = self._strong.popitem(last=False)
                self._strong_bytes -= size
            return
        # Not weakly referenceable and too big to pin: the store has it.
        with contextlib.suppress(TypeError):
            self._weak[covar_id] = tuple(weakref.ref(v) for v in values)

    def get(self, covar_id: CovarId) -> tuple[object, ...] | None:
        """Return the live values of ``covar_id`` if they still exist."""
        if covar_id in self._unsaved:
            return self._unsaved[covar_id]
        entry = self._strong.get(covar_id)
        if entry is not None:
            self._strong.move_to_end(covar_id)
            return entry[0]
        refs = self._weak.get(covar_id)
        if refs is None:
            return None
        values = tuple(r() for r in refs)
        if any(v is None for v in values):
            del self._weak[covar_id]
            return None
        return values

    def discard(self, covar_id: CovarId) -> None:
        """Forget a saved entry whose objects changed since it was committed."""
        entry = self._strong.pop(covar_id, None)
        if entry is not None:
            self._strong_bytes -= entry[1]
        self._weak.pop(covar_id, None)
