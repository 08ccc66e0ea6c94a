"""Factories of records and timelines shared by the tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from timetravel_kernel.ids import ChunkId, CommitId, TreeId, hash_bytes
from timetravel_kernel.store import BufferRef, Commit, Covar
from timetravel_kernel.timeline import CellInfo, Timeline, TimelineOptions

from .workloads import run_cell

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from timetravel_kernel.store import NamespaceTree, ObjectStore


def make_commit(**overrides: object) -> Commit:
    """Return a commit with plausible fields, overridden as given."""
    fields: dict[str, object] = {
        "parent": CommitId(hash_bytes(b"parent")),
        "tree": TreeId(hash_bytes(b"tree")),
        "code": "x = 1",
        "cell_id": "cell-1",
        "execution_count": 1,
        "time": 1_700_000_000.0,
        "duration": 0.25,
        "status": "ok",
        "changed": ("x",),
        "bytes_written": 42,
    }
    fields.update(overrides)
    return Commit(**fields)  # type: ignore[arg-type]


def make_covar(**overrides: object) -> Covar:
    """Return a covariable manifest with plausible fields, overridden as given."""
    fields: dict[str, object] = {
        "members": ("a", "b"),
        "serializer": "pickle",
        "types": ("list", "dict"),
        "nbytes": 10,
        "buffers": (
            BufferRef(3, inline=b"abc"),
            BufferRef(9000, chunks=(ChunkId(hash_bytes(b"1")), ChunkId(hash_bytes(b"2")))),
        ),
        "refs": ("Point",),
    }
    fields.update(overrides)
    return Covar(**fields)  # type: ignore[arg-type]


def open_timeline(path: Path, **options: object) -> Timeline:
    """Open a RocksDB-backed timeline with small chunks, so tests exercise chunking cheaply."""
    defaults: dict[str, object] = {"chunk_size": 4096, "inline_limit": 256}
    defaults.update(options)
    return Timeline.open(path, options=TimelineOptions(**defaults))  # type: ignore[arg-type]


def checkpoint_cell(timeline: Timeline, ns: dict, code: str, count: int | None = None) -> Commit:
    """Run ``code`` in ``ns`` as cell ``count`` and checkpoint it; return its commit."""
    run_cell(ns, code)
    return timeline.checkpoint(ns, CellInfo(code=code, execution_count=count)).commit


def commit_covars(store: ObjectStore, parent: Commit | None, tree: NamespaceTree,
                  covars: Mapping[str, Covar | None], **fields: object
                  ) -> tuple[Commit, NamespaceTree]:
    """Commit ``tree`` with ``covars`` set (None deletes a name); return the commit and tree.

    The commit lists the names as changed; ``fields`` override the rest (``make_commit``).
    """
    transaction = store.transaction()
    changes = {name: None if covar is None else transaction.add_covar(covar)
               for name, covar in covars.items()}
    new_tree, records = tree.updated(changes)
    transaction.add_tree_records(records)
    commit = make_commit(parent=parent.id if parent else None, tree=new_tree.root_id,
                         changed=tuple(sorted(covars)), **fields)
    return transaction.commit(commit, set_head=True), new_tree


# A notebook class whose version 1 cannot be loaded back (its rebuild function refuses).
FRAGILE = """
class Fragile:
    def __init__(self, value):
        self.value = value
    def __reduce__(self):
        return (rebuild, (self.value,))
def rebuild(value):
    if value == 1:
        raise RuntimeError('this version cannot come back')
    return Fragile(value)
"""
