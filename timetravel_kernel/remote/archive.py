"""Export and import a whole history as one file, for machines without a shared remote.

The file is a tar archive of exactly what a push to an empty remote writes (packs, signed
indexes, the signed ref), so importing it runs the same verification as a pull: every record
against its id, every pack against its signed hash (remote layer).
"""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING

from timetravel_kernel.errors import RemoteCorruptError
from timetravel_kernel.remote.memory import MemoryTransport
from timetravel_kernel.remote.sync import PullReport, PushReport, Remote

if TYPE_CHECKING:
    from pathlib import Path

    from timetravel_kernel.remote.signing import Signer
    from timetravel_kernel.store.object_store import ObjectStore

__all__ = ["export_history", "import_history"]

_NOTEBOOK = "history"


def export_history(store: ObjectStore, path: Path, *, signer: Signer) -> PushReport:
    """Write every commit of ``store`` to the archive ``path``."""
    transport = MemoryTransport(url=f"file:{path.name}")
    report = Remote(transport, _NOTEBOOK, signer=signer).push(store)
    temp = path.with_name(path.name + ".partial")
    with tarfile.open(temp, "w") as archive:
        for name, (data, _, modified) in sorted(transport.objects.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(modified)
            archive.addfile(info, io.BytesIO(data))
    temp.replace(path)
    return report


def import_history(path: Path, store: ObjectStore, *, signer: Signer,
                   trust: bool = False) -> PullReport:
    """Store the history held in the archive ``path`` (verified as a pull is).

    Raises:
        RemoteCorruptError: the file is not an archive this command wrote.
        RemoteTrustError: it was signed with another key (and not ``trust``).
    """
    transport = MemoryTransport(url=f"file:{path.name}")
    try:
        with tarfile.open(path, "r") as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None:
                    transport.put_if_absent(member.name, handle.read())
    except (tarfile.TarError, OSError) as exc:
        raise RemoteCorruptError(f"{path} is not a time-travel export ({exc})") from exc
    return Remote(transport, _NOTEBOOK, signer=signer, trust=trust).pull(store)
