"""MemoryGuard: a state the memory left cannot hold is refused before it is read (timeline layer).

A restore that runs out of memory gets the kernel killed (by the OOM killer, or by the
container's limit), which is the crash the person was recovering from. So each read from the
store is first checked against the memory the system (and the process's memory cgroup, in a
container) has left; a refusal changes nothing and says what the state needs, what is free,
and how to bring back some names alone (``%tt get``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from timetravel_kernel.errors import NotEnoughMemoryError
from timetravel_kernel.timeline.results import describe_cell

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from timetravel_kernel.store import Commit, Covar

__all__ = ["MemoryGuard", "estimated_bytes", "memory_available", "memory_left"]

STREAM_GROWTH = 3
"""Bytes of objects per byte of pickle stream: a list of floats takes ~3.5x its stream, short
strings 3-5x, a stream of out-of-band arrays ~1x (its arrays are counted as buffers)."""
_CHECK_EVERY = 16 << 20  # reads smaller than this are checked together (a /proc read each)
_NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a huge number


def estimated_bytes(covar: Covar) -> int:
    """Return about how much memory loading a stored covariable takes."""
    if not covar.buffers:
        return 0
    return covar.buffers[0].size * STREAM_GROWTH + sum(b.size for b in covar.buffers[1:])


def memory_available() -> int | None:
    """Return the bytes the system can still give without swapping, None if unknown."""
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_headroom(membership: Path, root: Path) -> int | None:
    """Return what this process's memory cgroup still allows, None when it sets no limit.

    ``membership`` is ``/proc/self/cgroup`` and ``root`` the cgroup file system. The page
    cache the cgroup holds (reading the store puts it there) counts as free: it is reclaimed
    before the limit kills anything.
    """
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            folder = root / path.lstrip("/")
            limit, used = folder / "memory.max", folder / "memory.current"
            cache_field = "file"
        elif "memory" in controllers.split(","):  # cgroup v1
            folder = root / "memory" / path.lstrip("/")
            limit, used = folder / "memory.limit_in_bytes", folder / "memory.usage_in_bytes"
            cache_field = "total_cache"
        else:
            continue
        most, now = _read_int(limit), _read_int(used)
        if most is None or now is None or most >= _NO_LIMIT:
            continue
        cache = 0
        try:
            for entry in (folder / "memory.stat").read_text().splitlines():
                key, _, value = entry.partition(" ")
                if key == cache_field and value.isdigit():
                    cache = int(value)
        except OSError:
            pass
        return max(0, most - now + cache)
    return None


def memory_left(membership: Path = Path("/proc/self/cgroup"),
                root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Return the bytes this process can still allocate without being killed, None if unknown.

    The least of the system's available memory (``MemAvailable``) and what the process's
    memory cgroup allows (v1 or v2), as a container's limit kills at the latter.
    """
    known = [m for m in (memory_available(), _cgroup_headroom(membership, root))
             if m is not None]
    return min(known) if known else None


def _size(count: float) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.0f} MB"


class MemoryGuard:
    """Checks each read of a state's values against the memory left, before it is read.

    Args:
        target: the commit being loaded (named in the message).
        covars: every covariable the load may read, for the message's sizes.
        memory_left: returns the bytes left (None: unknown, never refuse).
    """

    def __init__(self, target: Commit, covars: Iterable[Covar], *,
                 memory_left: Callable[[], int | None] = memory_left) -> None:
        self._target = target
        self._covars = list(covars)
        self._memory_left = memory_left
        self._pending = 0

    def reserve(self, names: tuple[str, ...], nbytes: int) -> None:
        """Refuse to read ``nbytes`` for ``names`` (and the small reads before) if they do not fit.

        Raises:
            NotEnoughMemoryError: they do not fit; nothing has been applied.
        """
        self._pending += nbytes
        if self._pending < _CHECK_EVERY:
            return
        needed, self._pending = self._pending, 0
        available = self._memory_left()
        if available is None or needed <= available:
            return
        raise NotEnoughMemoryError(self._explain(names, needed, available), needed=needed,
                                   available=available)

    def _explain(self, names: tuple[str, ...], needed: int, available: int) -> str:
        commit = self._target.id.hex()[:10]
        sizes = sorted(((estimated_bytes(c), ", ".join(c.members)) for c in self._covars
                        if c.serializer != "unsaved"), reverse=True)
        whole = sum(size for size, _ in sizes)
        biggest = "; ".join(f"{names} {_size(size)}" for size, names in sizes[:4])
        small = [names for size, names in sizes if size < available / 2 and "," not in names]
        example = f" (e.g. %tt get {small[-1]}@{commit})" if small else ""
        return (f"loading {', '.join(names)} of the state after "
                f"{describe_cell(self._target)} would need about {_size(needed)} more memory, "
                f"and {_size(available)} is free (the whole state needs about {_size(whole)}: "
                f"{biggest}); nothing was changed. Bring back some names alone with "
                f"%tt get NAME@{commit}{example}, or free memory (del large values, close "
                "other kernels) and try again")
