"""Remote layer: sync a history's records with object storage; beside store/, off the cell path.

Nothing here is imported by the store, state, timeline or protocol layers, so a checkpoint can
never wait on a network; the kernel and the CLI use it.
"""

from timetravel_kernel.remote.archive import export_history, import_history
from timetravel_kernel.remote.fetch import PackReader
from timetravel_kernel.remote.files import FileTransport
from timetravel_kernel.remote.memory import MemoryTransport
from timetravel_kernel.remote.s3 import S3Options, S3Transport
from timetravel_kernel.remote.signing import Signer, load_or_create_key
from timetravel_kernel.remote.sync import (
    PullReport,
    PushReport,
    Remote,
    RemoteGarbageReport,
    RemoteRef,
)
from timetravel_kernel.remote.transport import ObjectInfo, Transport, Versioned
from timetravel_kernel.remote.upload import PackWriter
from timetravel_kernel.remote.urls import check_remote_url, notebook_remote_name, open_transport

__all__ = [
    "FileTransport",
    "MemoryTransport",
    "ObjectInfo",
    "PackReader",
    "PackWriter",
    "PullReport",
    "PushReport",
    "Remote",
    "RemoteGarbageReport",
    "RemoteRef",
    "S3Options",
    "S3Transport",
    "Signer",
    "Transport",
    "Versioned",
    "check_remote_url",
    "export_history",
    "import_history",
    "load_or_create_key",
    "notebook_remote_name",
    "open_transport",
]
