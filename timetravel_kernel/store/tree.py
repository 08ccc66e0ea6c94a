"""NamespaceTree: the name -> covariable-version table of a commit, stored in hashed buckets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from timetravel_kernel.ids import CovarId, TreeId, hash_bytes
from timetravel_kernel.store.objects import (
    TREE_FANOUT,
    bucket_index,
    encode_bucket,
    encode_tree_root,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["NamespaceTree"]


@dataclass(frozen=True, slots=True)
class NamespaceTree:
    """An immutable snapshot of which covariable version each top-level name has.

    Updating returns a new tree and only the bucket records that changed, so the cost of a
    checkpoint follows the names a cell touched, not the size of the namespace.
    """

    buckets: tuple[Mapping[str, CovarId], ...]
    bucket_ids: tuple[TreeId | None, ...]
    root_id: TreeId

    @classmethod
    def empty(cls) -> NamespaceTree:
        """Return the tree of an empty namespace."""
        slots: tuple[TreeId | None, ...] = (None,) * TREE_FANOUT
        return cls(({},) * TREE_FANOUT, slots, TreeId(hash_bytes(encode_tree_root(slots))))

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.buckets[bucket_index(name)]

    def get(self, name: str) -> CovarId | None:
        """Return the covar version of ``name``, or None when the tree lacks it."""
        return self.buckets[bucket_index(name)].get(name)

    def items(self) -> Iterator[tuple[str, CovarId]]:
        """Yield every (name, covar id) pair."""
        for bucket in self.buckets:
            yield from bucket.items()

    def as_dict(self) -> dict[str, CovarId]:
        """Return the whole table as a dict."""
        table: dict[str, CovarId] = {}
        for bucket in self.buckets:
            table.update(bucket)
        return table

    def updated(
        self, changes: Mapping[str, CovarId | None]
    ) -> tuple[NamespaceTree, dict[TreeId, bytes]]:
        """Return the tree with ``changes`` applied (None deletes) and the new records to store.

        The records map ids to encodings: changed buckets and the new root.
        """
        buckets = list(self.buckets)
        touched: set[int] = set()
        for name, covar_id in changes.items():
            index = bucket_index(name)
            if index not in touched:
                buckets[index] = dict(buckets[index])
                touched.add(index)
            bucket = buckets[index]
            assert isinstance(bucket, dict)
            if covar_id is None:
                bucket.pop(name, None)
            else:
                bucket[name] = covar_id
        records: dict[TreeId, bytes] = {}
        bucket_ids = list(self.bucket_ids)
        for index in touched:
            if not buckets[index]:
                bucket_ids[index] = None
                continue
            data = encode_bucket(buckets[index])
            bucket_ids[index] = TreeId(hash_bytes(data))
            records[bucket_ids[index]] = data
        root = encode_tree_root(bucket_ids)
        root_id = TreeId(hash_bytes(root))
        records[root_id] = root
        return NamespaceTree(tuple(buckets), tuple(bucket_ids), root_id), records
