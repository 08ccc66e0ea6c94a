"""Big dicts saved as content-defined groups of items (state layer).

pickle writes a dict's items in fixed batches of 1000, so inserting or deleting one key shifts
every later batch and changes every later byte of the stream. Cutting the items into groups
where a key's hash meets a mask (content-defined, like the stream's chunks) makes an edit
change one group's bytes. The serializers' reducer asks this module for the reduction; the
function that fills the dict back on load is theirs, as stored streams name it.
"""

from __future__ import annotations

import gc
import itertools
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["GROUPED_DICT_MIN", "GroupedDict", "reduce_grouped_dict", "with_grouped_dicts"]

GROUPED_DICT_MIN = 65536
"""Dicts with at least this many items are saved in content-defined groups."""
_GROUP_MASK = 1023
"""A group ends after a key whose hash has these bits clear: ~1024 items a group."""


class GroupedDict:
    """Stands in for a big dict in the values tuple.

    pickle's C pickler never asks ``reducer_override`` about an exact dict, but asks about this.
    """

    __slots__ = ("target",)

    def __init__(self, target: dict[object, object]) -> None:
        self.target = target


Groups = tuple[dict[object, object], ...]


def reduce_grouped_dict(
    obj: dict[object, object], fill: Callable[[dict[object, object], Groups], None]
) -> tuple[object, ...] | None:
    """Return a reduction of a big dict as content-defined groups, or None to pickle it whole.

    Boundaries depend only on the keys (their hashes), not on positions, so an edit moves no
    boundary but its own. ``str`` hashes are salted per process: the groups of a dict with
    string keys are stable within a session, which is where edits are compared. ``fill``
    puts the groups back into the new dict on load.
    """
    try:
        cuts = [i for i, h in enumerate(map(hash, obj), 1) if not h & _GROUP_MASK]
    except Exception:
        return None
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(obj)], strict=True) if b > a]
    items = iter(obj.items())
    groups = tuple(dict(itertools.islice(items, n)) for n in sizes)
    return (dict, (), groups, None, None, fill)


def with_grouped_dicts(
    values: tuple[object, ...], namespace: Mapping[str, object]
) -> tuple[object, ...]:
    """Return ``values`` with a lone big dict replaced by its grouped stand-in.

    Only a dict nothing but the namespace refers to (no alias, no cycle back to it, no other
    container, not IPython's output history): a reference from inside the stream would
    otherwise be pickled as a second dict and identity would be lost. Such a dict is pickled
    whole as before. Finding referrers walks the collector's objects (~10 ms per 100k
    containers), paid only for dicts whose pickling costs far more.
    """
    if len(values) != 1:
        return values
    value = values[0]
    if type(value) is not dict or len(value) < GROUPED_DICT_MIN:
        return values
    for referrer in gc.get_referrers(value):
        if referrer is not values and referrer is not namespace and not isinstance(
            referrer, types.FrameType
        ):
            return values
    return (GroupedDict(value),)
