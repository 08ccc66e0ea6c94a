"""RocksBackend: the Backend on an embedded RocksDB through rocksdict (store layer)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rocksdict import AccessType, DBCompressionType, Options, Rdict, WriteBatch, WriteOptions
from typing_extensions import override

from timetravel_kernel.errors import StoreCorruptError, StoreError, StoreLockedError
from timetravel_kernel.store.backend import Backend

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["OWNER_FILE", "RocksBackend"]

OWNER_FILE = "OWNER.json"
# Values this large go to blob files: big chunks are written once instead of being rewritten
# by every compaction, which keeps checkpoints of large arrays near disk speed.
_MIN_BLOB_SIZE = 64 * 1024
_WRITE_BUFFER_BYTES = 8 * 1024 * 1024


def _options(*, create: bool) -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(create)
    options.set_compression_type(DBCompressionType.lz4())
    options.set_enable_blob_files(True)
    options.set_min_blob_size(_MIN_BLOB_SIZE)
    # No blob compression: chunks arrive already Blosc-compressed (store/codec.py), or raw
    # where that does not pay, so RocksDB would spend time for nothing on both paths.
    options.set_blob_compression_type(DBCompressionType.none())
    options.set_keep_log_file_num(2)
    # Small memtables: big checkpoints stream through them, and each one is resident memory
    # until flushed (the default 64 MiB would be the largest part of a checkpoint's peak).
    options.set_write_buffer_size(_WRITE_BUFFER_BYTES)
    return options


def _hint(message: str) -> str:
    """Return what the user can do about a failed write, when the cause is recognisable."""
    if "No space left" in message or "ENOSPC" in message:
        return "; free some disk space: checkpoints resume by themselves once writes succeed"
    if "Permission denied" in message or "Read-only file system" in message:
        return "; make the store directory writable, or use a store in another directory"
    return ""


def _describe_holder(path: Path) -> str | None:
    try:
        owner = json.loads((path / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(owner, dict):
        return None
    purpose = f" ({owner['purpose']})" if owner.get("purpose") else ""
    return f"process {owner.get('pid')} on {owner.get('host')}{purpose}"


class RocksBackend(Backend):
    """A RocksDB database in a private directory, locked for one writer.

    Args:
        path: the store directory; created private to the user (0700) when missing.
        read_only: open beside a live writer without taking its lock.
        purpose: a short description of the opener, shown to a second opener that finds the
            store locked (for example the notebook path of the kernel).
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False,
                 purpose: str = "") -> None:
        self.path = Path(path)
        self._read_only = read_only
        if not read_only:
            try:
                self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(self.path, 0o700)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the time-travel store {self.path}: {exc.strerror}; choose "
                    "another store directory"
                ) from exc
        elif not (self.path / "CURRENT").exists():
            raise StoreError(f"no time-travel store at {self.path}")
        self._purpose = purpose
        self._db: Rdict | None = self._open(create=not read_only)
        self._write_failure: str | None = None
        self._sync = WriteOptions()
        self._sync.sync = True
        self._unlogged = WriteOptions()
        self._unlogged.disable_wal = True
        self._closed = False

    def _open(self, *, create: bool) -> Rdict:
        access = AccessType.read_only() if self._read_only else AccessType.read_write()
        try:
            db = Rdict(str(self.path), _options(create=create), access_type=access)
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
            raise self._translate_open_error(exc) from exc
        if not self._read_only:
            self._write_owner(self._purpose)
        return db

    def _translate_open_error(self, exc: Exception) -> StoreError:
        message = str(exc)
        if "lock" in message.lower():
            return StoreLockedError(str(self.path), _describe_holder(self.path))
        if "Corruption" in message:
            return StoreCorruptError(
                f"the time-travel store {self.path} is corrupt ({message}); move it aside to "
                "start a fresh history, or run `timetravel gc` on a copy to salvage commits"
            )
        return StoreError(f"cannot open the time-travel store {self.path}: {message}")

    def _write_owner(self, purpose: str) -> None:
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                 "since": time.time()}
        tmp = self.path / (OWNER_FILE + ".tmp")
        tmp.write_text(json.dumps(owner))
        tmp.replace(self.path / OWNER_FILE)

    @property
    @override
    def read_only(self) -> bool:
        return self._read_only

    def _handle(self) -> Rdict:
        """Return the open database, reopening it after a failed write (see ``_failed``)."""
        if self._closed:
            raise StoreError(f"the time-travel store {self.path} is closed")
        if self._db is None:
            try:
                self._db = self._open(create=False)
            except (StoreError, OSError) as exc:
                raise StoreError(
                    f"the time-travel store {self.path} is unavailable since a write failed "
                    f"({self._write_failure}) and reopening it failed too ({exc})"
                    + _hint(f"{self._write_failure} {exc}")
                ) from exc
            self._write_failure = None
        return self._db

    def _failed(self, action: str, exc: Exception) -> StoreError:
        """Close the database after a failed write; the next call reopens it.

        RocksDB stops accepting writes after an I/O error (a full disk, say) until it is
        reopened, and what unlogged batches left in its memtable may or may not reach the disk.
        Reopening drops that doubt: the store is again exactly its synced commits plus whatever
        chunks did reach the disk (orphans for ``collect_garbage``), so checkpoints resume once
        the cause is gone.
        """
        self._write_failure = str(exc)
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):  # its own error is the one reported
                db.close()
        return StoreError(
            f"cannot {action} the time-travel store {self.path}: {exc}" + _hint(str(exc))
        )

    def _read_error(self, exc: Exception) -> StoreError:
        message = str(exc)
        if "Corruption" in message or "checksum" in message.lower():
            return StoreCorruptError(
                f"the time-travel store {self.path} is corrupt ({message}); move it aside to "
                "start a fresh history"
            )
        return StoreError(f"cannot read the time-travel store {self.path}: {message}")

    @override
    def get(self, key: bytes) -> bytes | None:
        db = self._handle()
        try:
            value = db.get(key)
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
            raise self._read_error(exc) from exc
        return None if value is None else bytes(value)

    @override
    def has(self, key: bytes) -> bool:
        # key_may_exist answers "no" from bloom filters without reading values.
        if not self._handle().key_may_exist(key):
            return False
        return self.get(key) is not None

    @override
    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        iterator = self._handle().iter()
        try:
            iterator.seek(prefix)
            while iterator.valid():
                key = iterator.key()
                if not key.startswith(prefix):
                    break
                yield key, iterator.value()
                iterator.next()
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
            raise self._read_error(exc) from exc

    @override
    def write_batch(
        self,
        puts: Iterable[tuple[bytes, bytes]],
        deletes: Iterable[bytes] = (),
        *,
        durable: bool = True,
    ) -> None:
        db = self._handle()
        if self._read_only:
            raise StoreError(f"the time-travel store {self.path} is open read-only")
        batch = WriteBatch(raw_mode=True)
        for key in deletes:
            batch.delete(key)
        for key, value in puts:
            batch.put(key, bytes(value))
        try:
            db.write(batch, self._sync if durable else self._unlogged)
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
            raise self._failed("write to", exc) from exc

    @override
    def flush(self) -> None:
        db = self._handle()
        if self._read_only:
            return
        try:
            db.flush(True)
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
            raise self._failed("flush", exc) from exc

    @override
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._db is not None:
            self._db.close()

    @override
    def size_bytes(self) -> int:
        return sum(entry.stat().st_size for entry in self.path.iterdir() if entry.is_file())
