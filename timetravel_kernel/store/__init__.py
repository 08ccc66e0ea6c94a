"""Store layer: bytes and records in an embedded key-value store; no Python objects."""

from timetravel_kernel.store.backend import Backend
from timetravel_kernel.store.memory import MemoryBackend
from timetravel_kernel.store.object_store import GarbageReport, ObjectStore, Transaction
from timetravel_kernel.store.objects import BufferRef, Commit, Covar
from timetravel_kernel.store.refs import SessionMarker
from timetravel_kernel.store.rocks import RocksBackend
from timetravel_kernel.store.tree import NamespaceTree

__all__ = [
    "Backend",
    "BufferRef",
    "Commit",
    "Covar",
    "GarbageReport",
    "MemoryBackend",
    "NamespaceTree",
    "ObjectStore",
    "RocksBackend",
    "SessionMarker",
    "Transaction",
]
