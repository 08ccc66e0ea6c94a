"""A store's folder on disk: private to its user, and who holds it (store layer).

A store holds everything a notebook computed, so its folder is the user's alone (0700, files
0600) whatever the umask. OWNER.json names the process that last opened it for writing: a
second kernel can say who holds the store, and the CLI can tell stores whose notebook is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "OWNER_FILE",
    "StoreOwner",
    "is_orphan_store",
    "make_private",
    "make_private_dirs",
    "read_owner",
    "write_private_file",
]

OWNER_FILE = "OWNER.json"


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents 0700 (``mkdir(parents=True)`` uses the umask)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    os.chmod(path, 0o700)


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically by a file only the user can read (0600 whatever the umask)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    tmp.replace(path)


def make_private(folder: Path) -> None:
    """Make a store's folder 0700 and its files 0600.

    RocksDB creates its files with the process umask (0644, or 0666 under umask 000) and
    offers no mode option; changing the umask would change it for the user's code too. The
    folder being 0700 keeps others out at once; this makes copies (``cp -r``, ``tar``) private.
    """
    with contextlib.suppress(OSError):
        os.chmod(folder, 0o700)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            mode = 0o700 if entry.is_dir(follow_symlinks=False) else 0o600
            if entry.stat(follow_symlinks=False).st_mode & 0o777 != mode:
                os.chmod(entry.path, mode)


@dataclass(frozen=True, slots=True)
class StoreOwner:
    """Who last opened a store for writing (its OWNER.json)."""

    pid: int
    host: str
    purpose: str
    key: str = ""

    def is_alive(self) -> bool:
        """Return whether the owner process still runs (unknown hosts count as alive)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process
            return True
        return True

    def describe(self) -> str:
        """Return the owner as a user recognises it."""
        purpose = f" ({self.purpose})" if self.purpose else ""
        return f"process {self.pid} on {self.host}{purpose}"


def is_orphan_store(path: Path) -> bool:
    """Whether the notebook (or connection file) a store was keyed by no longer exists.

    Stores of earlier versions have no key; their purpose ("kernel for /abs/nb.ipynb") names
    the notebook when it was one. A store whose key is unknown, or whose owner still runs,
    is never an orphan.
    """
    owner = read_owner(path)
    if owner is None or owner.is_alive():
        return False
    key = owner.key
    if not key and owner.purpose.startswith("kernel for /"):
        key = owner.purpose.removeprefix("kernel for ")
    return bool(key) and os.path.isabs(key) and not os.path.exists(key)


def read_owner(path: Path) -> StoreOwner | None:
    """Return the owner record of the store at ``path``, None when absent or unreadable."""
    try:
        owner = json.loads((path / OWNER_FILE).read_text())
        return StoreOwner(int(owner["pid"]), str(owner["host"]), str(owner.get("purpose", "")),
                          str(owner.get("key", "")))
    except (OSError, ValueError, TypeError, KeyError):
        return None
