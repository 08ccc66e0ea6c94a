"""FileTransport: a remote in a plain folder, such as an NFS share (remote layer).

Creating an object writes a temporary file and hard-links it into place, which fails if the
name exists, so two writers can never both create it. Replacing a ref takes an exclusive
``flock`` on a lock file beside it, checks the content tag and renames a temporary file over
it; readers never see a partly written object.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from typing_extensions import override

from timetravel_kernel.errors import (
    RemoteAccessError,
    RemoteConflictError,
    RemoteError,
    RemoteNotFoundError,
    RemoteUnavailableError,
)
from timetravel_kernel.ids import hash_bytes
from timetravel_kernel.remote.transport import ObjectInfo, Transport, Versioned

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["FileTransport"]

_LOCK_SUFFIX = ".lock"
_TEMP_PREFIX = ".tmp-"


def _tag(data: bytes) -> str:
    return hash_bytes(data).hex()


class FileTransport(Transport):
    """Objects as files under ``root`` (which must exist; subfolders are made as needed).

    Args:
        root: the remote's folder.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(root)
        self.url = self.root.as_uri() if self.root.is_absolute() else str(self.root)

    def _path(self, path: str) -> Path:
        if not self.root.is_dir():
            raise RemoteNotFoundError(
                f"the remote folder {self.root} does not exist; create it (or mount the share) "
                "and try again")
        return self.root / path

    def _error(self, action: str, path: str, exc: OSError) -> RemoteError:
        if isinstance(exc, PermissionError):
            return RemoteAccessError(f"cannot {action} {self.url}/{path}: permission denied")
        return RemoteUnavailableError(f"cannot {action} {self.url}/{path}: {exc.strerror}")

    @override
    def get(self, path: str) -> Versioned | None:
        target = self._path(path)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            self._count()
            return None
        except OSError as exc:
            raise self._error("read", path, exc) from exc
        self._count(received=len(data))
        return Versioned(data, _tag(data))

    @override
    def get_ranges(self, path: str, spans: list[tuple[int, int]]) -> list[bytes] | None:
        target = self._path(path)
        parts: list[bytes] = []
        try:
            with open(target, "rb") as handle:
                for start, end in spans:
                    handle.seek(start)
                    parts.append(handle.read(end - start))
        except FileNotFoundError:
            self._count()
            return None
        except OSError as exc:
            raise self._error("read", path, exc) from exc
        self._count(received=sum(map(len, parts)), requests=max(len(spans), 1))
        return parts

    def _write_temp(self, target: Path, data: bytes) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return Path(name)

    @override
    def put_if_absent(self, path: str, data: bytes) -> bool:
        target = self._path(path)
        self._count(sent=len(data))
        temp: Path | None = None
        try:
            temp = self._write_temp(target, data)
            os.link(temp, target)
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._error("write", path, exc) from exc
        finally:
            if temp is not None:
                with contextlib.suppress(OSError):
                    temp.unlink()
        return True

    @contextmanager
    def _locked(self, target: Path) -> Iterator[None]:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(target.name + _LOCK_SUFFIX), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @override
    def put_if_tag(self, path: str, data: bytes, tag: str | None) -> str:
        target = self._path(path)
        self._count(sent=len(data))
        try:
            with self._locked(target):
                try:
                    current: str | None = _tag(target.read_bytes())
                except FileNotFoundError:
                    current = None
                if current != tag:
                    raise RemoteConflictError(f"{self.url}/{path} changed since it was read")
                temp = self._write_temp(target, data)
                os.replace(temp, target)
        except OSError as exc:
            raise self._error("write", path, exc) from exc
        return _tag(data)

    @override
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        folder, _, _ = prefix.rpartition("/")
        base = self._path(folder)
        self._count()
        if not base.is_dir():
            return
        for entry in sorted(base.rglob("*")):
            name = entry.name
            if not entry.is_file() or name.startswith(_TEMP_PREFIX) or name.endswith(_LOCK_SUFFIX):
                continue
            relative = entry.relative_to(self.root).as_posix()
            if relative.startswith(prefix):
                stat = entry.stat()
                yield ObjectInfo(relative, stat.st_mtime, stat.st_size)

    @override
    def delete(self, path: str) -> None:
        self._count()
        try:
            self._path(path).unlink(missing_ok=True)
        except OSError as exc:
            raise self._error("delete", path, exc) from exc
