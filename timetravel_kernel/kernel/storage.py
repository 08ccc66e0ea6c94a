"""Where a kernel's history lives, and opening it with fallbacks that never stop the kernel.

One store per notebook (keyed by the notebook path the server gives the kernel), else per
connection file. A store the kernel cannot use as its own (locked by a second kernel on the
same notebook, corrupt, unwritable) never stops the kernel: it gets a temporary history and a
sentence telling the user why (kernel layer).
"""

from __future__ import annotations

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

if TYPE_CHECKING:
    from timetravel_kernel.timeline import Timeline, TimelineOptions

__all__ = [
    "STORES_SUBDIR",
    "OpenedTimeline",
    "default_store_dir",
    "open_timeline_with_fallback",
    "store_path_for",
]

STORES_SUBDIR = "timetravel/stores"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_store_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Return the folder holding every store, under a Jupyter data dir."""
    return Path(data_dir) / STORES_SUBDIR


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
    (None when all is as configured); ``temporary`` is a folder to delete at shutdown.
    """

    timeline: Timeline | None
    path: Path | None
    notice: str | None = None
    temporary: Path | None = None


def open_timeline_with_fallback(
    path: Path, options: TimelineOptions, *, purpose: str
) -> OpenedTimeline:
    """Open the notebook's store; on failure fall back to a temporary one, never raising.

    A corrupt or incompatible store is moved aside (renamed, never deleted) and a fresh one
    created in its place, so the next session works again and nothing is lost.
    """
    from timetravel_kernel.timeline import Timeline

    try:
        return OpenedTimeline(Timeline.open(path, options=options, purpose=purpose), path)
    except StoreLockedError as exc:
        why = (f"time travel: the history of this notebook is in use by "
               f"{exc.holder or 'another kernel'}; this kernel keeps its own temporary "
               "history, discarded at shutdown (the other kernel's history is untouched)")
    except (StoreCorruptError, StoreFormatError) as exc:
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        try:
            path.rename(aside)
            timeline = Timeline.open(path, options=options, purpose=purpose)
        except (OSError, StoreError) as again:
            why = (f"time travel: the history store {path} cannot be used ({exc}; {again}); "
                   "this kernel keeps a temporary history")
        else:
            notice = (f"time travel: the history store was unreadable ({exc}); it was moved "
                      f"to {aside} and a new history started")
            return OpenedTimeline(timeline, path, notice)
    except (OSError, StoreError) as exc:
        why = (f"time travel: cannot write the history store {path} ({exc}); this kernel "
               "keeps a temporary history, discarded at shutdown; set "
               "TimeTravelKernel.store_dir (or TIMETRAVEL_STORE_DIR) to a writable folder")
    return _open_temporary(options, purpose=purpose, why=why)


def _open_temporary(options: TimelineOptions, *, purpose: str, why: str) -> OpenedTimeline:
    from timetravel_kernel.timeline import Timeline

    folder: Path | None = None
    try:
        folder = Path(tempfile.mkdtemp(prefix="timetravel-"))
        store = folder / "store"
        return OpenedTimeline(Timeline.open(store, options=options, purpose=purpose), store,
                              why, folder)
    except (OSError, StoreError) as exc:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return OpenedTimeline(None, None, f"{why}; that failed too ({exc}): time travel is off")
