"""Where a kernel's history lives, and opening it with fallbacks that never stop the kernel.

One store per notebook (keyed by the notebook path the server gives the kernel), else per
connection file. A store the kernel cannot use as its own (locked by a second kernel on the
same notebook, damaged, unwritable) never stops the kernel: it gets a temporary history and a
sentence telling the user why; a damaged store is moved aside, never deleted (session layer).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import xxhash

from timetravel_kernel.errors import (
    StoreCorruptError,
    StoreError,
    StoreFormatError,
    StoreLockedError,
)
from timetravel_kernel.store.folder import read_owner

if TYPE_CHECKING:
    from timetravel_kernel.timeline import Timeline, TimelineOptions

__all__ = [
    "STORES_SUBDIR",
    "TEMPORARY_PREFIX",
    "OpenedTimeline",
    "default_store_dir",
    "make_default_store_dir_private",
    "move_aside_and_reopen",
    "open_timeline_with_fallback",
    "remove_stale_temporaries",
    "store_path_for",
]

STORES_SUBDIR = "timetravel/stores"
TEMPORARY_PREFIX = "timetravel-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A temporary history without an owner record (its kernel died while creating it) is removed
# once it is this old.
_ORPHAN_TEMPORARY_SECONDS = 24 * 3600


def default_store_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Return the folder holding every store, under a Jupyter data dir."""
    return Path(data_dir) / STORES_SUBDIR


def make_default_store_dir_private(store_dir: Path) -> None:
    """Make ``<data>/timetravel`` and ``<data>/timetravel/stores`` 0700 if they exist.

    Folders created by earlier versions are 0755, which lets other users list notebook names.
    Only the default location is changed; a folder the user chose keeps the mode they gave it.
    """
    for folder in (store_dir.parent, store_dir):
        with contextlib.suppress(OSError):
            if folder.is_dir() and folder.stat().st_uid == os.getuid():
                os.chmod(folder, 0o700)


def store_path_for(store_dir: str | os.PathLike[str], key: str) -> Path:
    """Return the store directory for a notebook path or connection file.

    The name keeps a readable stem (``analysis.ipynb-1f2e...``) and a hash of the full absolute
    key, so two notebooks with the same file name in different folders never share a store.
    """
    absolute = os.path.abspath(key)
    stem = _UNSAFE.sub("_", os.path.basename(absolute))[:60] or "session"
    digest = xxhash.xxh3_64_hexdigest(absolute.encode())
    return Path(store_dir) / f"{stem}-{digest}"


@dataclass(frozen=True, slots=True)
class OpenedTimeline:
    """A timeline the kernel can use, and how it came to be.

    ``notice`` is a plain sentence for the user when the store is not the notebook's own
    (None when all is as configured); ``temporary`` is a folder to delete at shutdown;
    ``created`` says the store did not exist before this open.
    """

    timeline: Timeline | None
    path: Path | None
    notice: str | None = None
    temporary: Path | None = None
    created: bool = False


def open_timeline_with_fallback(
    path: Path, options: TimelineOptions, *, purpose: str, key: str = ""
) -> OpenedTimeline:
    """Open the notebook's store; on failure fall back to a temporary one, never raising.

    A corrupt or incompatible store is moved aside (renamed, never deleted) and a fresh one
    created in its place, so the next session works again and nothing is lost.
    """
    from timetravel_kernel.timeline import Timeline

    created = not (path / "CURRENT").exists()
    try:
        return OpenedTimeline(Timeline.open(path, options=options, purpose=purpose, key=key),
                              path, created=created)
    except StoreLockedError as exc:
        why = (f"time travel: the history of this notebook is in use by "
               f"{exc.holder or 'another process'}; this kernel keeps its own temporary "
               "history, discarded at shutdown (the other kernel's history is untouched)")
    except (StoreCorruptError, StoreFormatError) as exc:
        return move_aside_and_reopen(path, options, purpose=purpose, reason=str(exc), key=key)
    except (OSError, StoreError) as exc:
        why = (f"time travel: cannot use the history store {path} ({exc}); this kernel "
               "keeps a temporary history, discarded at shutdown")
        if isinstance(exc, PermissionError) or "ermission denied" in str(exc):
            why += "; set TimeTravelKernel.store_dir (or TIMETRAVEL_STORE_DIR) to a writable folder"
    return _open_temporary(options, purpose=purpose, why=why)


def move_aside_and_reopen(path: Path, options: TimelineOptions, *, purpose: str,
                          reason: str, key: str = "") -> OpenedTimeline:
    """Rename a damaged store (never deleting it) and start a new history in its place."""
    from timetravel_kernel.timeline import Timeline

    aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
    try:
        path.rename(aside)
        timeline = Timeline.open(path, options=options, purpose=purpose, key=key)
    except (OSError, StoreError) as again:
        why = (f"time travel: the history store {path} is damaged ({reason}) and could not be "
               f"replaced ({again}); this kernel keeps a temporary history")
        return _open_temporary(options, purpose=purpose, why=why)
    notice = (f"time travel: the history store is damaged and was moved to {aside} (nothing "
              f"deleted); a new history started. The damage: {reason}")
    return OpenedTimeline(timeline, path, notice)


def remove_stale_temporaries(folder: Path | None = None) -> list[Path]:
    """Delete temporary histories left by kernels that died; return what was removed.

    A temporary history is stale when its owner record names a dead process on this host,
    or, lacking one, when it is older than a day. Only the user's own folders are touched.
    """
    folder = Path(folder or tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(TEMPORARY_PREFIX)]
    except OSError:
        return removed
    for candidate in candidates:
        try:
            info = candidate.stat(follow_symlinks=False)
        except OSError:
            continue
        if not candidate.is_dir() or candidate.is_symlink() or info.st_uid != os.getuid():
            continue
        owner = read_owner(candidate / "store")
        stale = (not owner.is_alive() if owner is not None
                 else time.time() - info.st_mtime > _ORPHAN_TEMPORARY_SECONDS)
        if stale:
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def _open_temporary(options: TimelineOptions, *, purpose: str, why: str) -> OpenedTimeline:
    from timetravel_kernel.timeline import Timeline

    folder: Path | None = None
    try:
        folder = Path(tempfile.mkdtemp(prefix=TEMPORARY_PREFIX))
        store = folder / "store"
        return OpenedTimeline(Timeline.open(store, options=options, purpose=purpose), store,
                              why, folder)
    except (OSError, StoreError) as exc:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return OpenedTimeline(None, None, f"{why}; that failed too ({exc}): time travel is off")
