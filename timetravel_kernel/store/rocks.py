"""RocksBackend: the Backend on an embedded RocksDB through rocksdict (store layer)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rocksdict import (
    AccessType,
    BottommostLevelCompaction,
    CompactOptions,
    DBCompressionType,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)
from typing_extensions import override

from timetravel_kernel.errors import StoreCorruptError, StoreError, StoreLockedError
from timetravel_kernel.store.backend import Backend
from timetravel_kernel.store.folder import (
    OWNER_FILE,
    make_private,
    make_private_dirs,
    read_owner,
    write_private_file,
)
from timetravel_kernel.store.object_store import ObjectStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["RocksBackend", "check_manifest"]

# RocksDB's status texts start with the status code ("IO error: ", "Corruption: "); the lock
# failure is an IO error about the LOCK file (held by another process, or by this one).
# Matched by whole phrases: "block checksum mismatch" contains "lock" (NOTES.md).
_LOCK_STATUS = re.compile(r"^IO error: (While lock file:|lock hold by current process)")
_CORRUPTION_STATUS = "Corruption:"
_NOTE_SUFFIX = ".note"
_SPOOL_FOLDER = "spool"
# How often durable writes re-tighten the permissions of files RocksDB created since.
_PRIVATE_EVERY_SECONDS = 1.0
# Values this large go to blob files: big chunks are written once instead of being rewritten
# by every compaction, which keeps checkpoints of large arrays near disk speed.
_MIN_BLOB_SIZE = 64 * 1024
_WRITE_BUFFER_BYTES = 8 * 1024 * 1024
_MAX_INFO_LOG_BYTES = 64 * 1024


def _options(*, create: bool) -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(create)
    options.set_compression_type(DBCompressionType.lz4())
    options.set_enable_blob_files(True)
    options.set_min_blob_size(_MIN_BLOB_SIZE)
    # No blob compression: chunks arrive already Blosc-compressed (store/codec.py), or raw
    # where that does not pay, so RocksDB would spend time for nothing on both paths.
    options.set_blob_compression_type(DBCompressionType.none())
    # RocksDB's own info LOG is part of the store on disk (and of its size budget): a blob
    # garbage collection alone wrote 2.8 MB of it. Rolled at 64 KiB, two old ones kept.
    options.set_max_log_file_size(_MAX_INFO_LOG_BYTES)
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


class RocksBackend(Backend):
    """A RocksDB database in a private directory, locked for one writer.

    Args:
        path: the store directory; created private to the user (0700) when missing.
        read_only: open beside a live writer without taking its lock.
        purpose: a short description of the opener, shown to a second opener that finds the
            store locked (for example the notebook path of the kernel).
        key: the file the store belongs to (a notebook, or a kernel's connection file),
            recorded so that tools can tell stores whose notebook is gone.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False,
                 purpose: str = "", key: str = "") -> None:
        self.path = Path(path)
        self._read_only = read_only
        if not read_only:
            try:
                make_private_dirs(self.path)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the time-travel store {self.path}: {exc.strerror}"
                    + (_hint(str(exc)) or "; choose another store directory")
                ) from exc
        elif not (self.path / "CURRENT").exists():
            raise StoreError(f"no time-travel store at {self.path}")
        self._purpose = purpose
        self._key = key
        self._db: Rdict | None = self._open(create=not read_only)
        self._write_failure: str | None = None
        self._sync = WriteOptions()
        self._sync.sync = True
        self._unlogged = WriteOptions()
        self._unlogged.disable_wal = True
        # RocksDB's CRC32C of blob values runs at ~1.2 GB/s in rocksdict's build (65% of a
        # restore's reading time, perf); chunks are verified against their xxh3 id anyway.
        self._unchecked = ReadOptions()
        self._unchecked.set_verify_checksums(False)
        self._closed = False
        self._made_private = 0.0
        self._note_fds: dict[str, int] = {}

    def _open(self, *, create: bool) -> Rdict:
        access = AccessType.read_only() if self._read_only else AccessType.read_write()
        try:
            db = Rdict(str(self.path), _options(create=create), access_type=access)
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
            raise self._translate_open_error(exc) from exc
        if not self._read_only:
            try:
                self._write_owner()
            except OSError as exc:
                db.close()
                raise StoreError(f"cannot write to the time-travel store {self.path}: "
                                 f"{exc.strerror}" + _hint(str(exc))) from exc
            make_private(self.path)
        return db

    def unlisted_tables(self) -> list[str]:
        """Return table files on disk that the database's MANIFEST does not list.

        After a crash these are tables a flush or compaction had not yet registered (RocksDB
        deletes them at the next writable open). Together with lost commits they mean a
        damaged MANIFEST, whose writable open would delete the whole history as obsolete.
        """
        listed = {Path(f["name"]).name for f in self._handle().live_files()}
        return sorted(p.name for p in self.path.glob("*.sst") if p.name not in listed)

    def _translate_open_error(self, exc: Exception) -> StoreError:
        """Name the cause of a failed open from RocksDB's status code, never by substring.

        "In use" needs both RocksDB's lock failure and a live owner: the lock is released by
        the kernel when a process dies, so a lock failure with a dead owner means the holder
        is a process that did not record itself (reported without a name). An existing store
        that fails any other way than lack of space or permission is damaged.
        """
        message = str(exc)
        if _LOCK_STATUS.match(message):
            owner = read_owner(self.path)
            holder = owner.describe() if owner is not None and owner.is_alive() else None
            return StoreLockedError(str(self.path), holder)
        hint = _hint(message)
        existing = (self.path / "CURRENT").exists()
        if message.startswith(_CORRUPTION_STATUS) or (existing and not hint):
            return StoreCorruptError(
                f"the time-travel store {self.path} is damaged ({message}); move it aside to "
                "start a fresh history"
            )
        return StoreError(f"cannot open the time-travel store {self.path}: {message}{hint}")

    def _write_owner(self) -> None:
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self._purpose,
                 "key": self._key, "since": time.time()}
        write_private_file(self.path / OWNER_FILE, json.dumps(owner).encode())

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
        if message.startswith(_CORRUPTION_STATUS) or "checksum" in message.lower():
            return StoreCorruptError(
                f"the time-travel store {self.path} is damaged ({message}); move it aside to "
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
    def get_unchecked(self, key: bytes) -> bytes | None:
        db = self._handle()
        try:
            # Single gets: rocksdict's multi-get (a list of keys) read the same chunks 3.5x
            # slower (0.53 s against 0.15 s for 3,815 chunks of 256 KiB from the page cache).
            value = db.get(key, read_opt=self._unchecked)
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
            raise self._read_error(exc) from exc
        return None if value is None else bytes(value)

    @override
    def has(self, key: bytes) -> bool:
        # key_may_exist answers "no" from bloom filters without reading values; a "maybe"
        # reads the value (RocksDB has no existence check without it) but need not verify it.
        if not self._handle().key_may_exist(key):
            return False
        return self.get_unchecked(key) is not None

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
        if durable and time.monotonic() - self._made_private > _PRIVATE_EVERY_SECONDS:
            self._made_private = time.monotonic()
            make_private(self.path)

    @override
    def flush(self) -> None:
        db = self._handle()
        if self._read_only:
            return
        try:
            db.flush(True)
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
            raise self._failed("flush", exc) from exc
        make_private(self.path)

    @override
    def compact(self) -> None:
        """Compact every level and rewrite blob files, so deletions leave the disk.

        Deleting a key only writes a tombstone, and a blob file is deleted only once every
        value in it is dead; blob garbage collection (relocating live values out of every
        blob file) is switched on for this one compaction only, since during checkpoints it
        would rewrite big arrays again and again.
        """
        db = self._handle()
        if self._read_only:
            raise StoreError(f"the time-travel store {self.path} is open read-only")
        compact = CompactOptions()
        compact.set_bottommost_level_compaction(BottommostLevelCompaction.force())
        try:
            db.set_options({"enable_blob_garbage_collection": "true",
                            "blob_garbage_collection_age_cutoff": "1.0",
                            "blob_garbage_collection_force_threshold": "0.0"})
            try:
                db.compact_range(None, None, compact)
            finally:
                db.set_options({"enable_blob_garbage_collection": "false"})
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
            raise self._failed("compact", exc) from exc
        make_private(self.path)

    @property
    @override
    def spool_dir(self) -> Path:
        return self.path / _SPOOL_FOLDER

    @override
    def read_note(self, name: str) -> bytes | None:
        try:
            return (self.path / f"{name}{_NOTE_SUFFIX}").read_bytes()
        except OSError:
            return None

    @override
    def write_note(self, name: str, data: bytes) -> None:
        # Overwritten in place through a descriptor kept open: it is written after every
        # commit, and a temporary file plus a rename measured ~180 µs here against ~3 µs. A
        # crash mid-write leaves a note that does not parse, which readers take as no note.
        if self._read_only:
            raise StoreError(f"the time-travel store {self.path} is open read-only")
        try:
            fd = self._note_fds.get(name)
            if fd is None:
                fd = os.open(self.path / f"{name}{_NOTE_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o600)
                self._note_fds[name] = fd
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        except OSError as exc:
            raise StoreError(f"cannot write to the time-travel store {self.path}: "
                             f"{exc.strerror}" + _hint(str(exc))) from exc

    @override
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in self._note_fds.values():
            os.close(fd)
        if self._db is not None:
            self._db.close()
        if not self._read_only:
            make_private(self.path)

    @override
    def size_bytes(self) -> int:
        return sum(self._file_sizes().values())

    @override
    def live_bytes(self) -> int:
        """Count tables and blob files as the database's current version lists them.

        Files a compaction or flush replaced stay on disk until RocksDB gets to delete them
        (later still while a read pins the version that lists them); their size once
        inflated a budget's plan enough to thin every state.
        """
        db = self._handle()
        sizes = self._file_sizes()
        listed = [db.property_int_value("rocksdb.live-sst-files-size"),
                  db.property_int_value("rocksdb.live-blob-file-size")]
        if None in listed:
            return sum(sizes.values())
        others = sum(size for name, size in sizes.items()
                     if not name.endswith((".sst", ".blob")))
        return others + sum(n for n in listed if n is not None)

    def _file_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for entry in self.path.iterdir():
            # RocksDB deletes files beside us (obsolete tables, rolled logs): gone is size 0.
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file():
                    sizes[entry.name] = entry.stat().st_size
        return sizes


def check_manifest(path: Path) -> None:
    """Refuse a store whose writable open would delete its history (a damaged MANIFEST).

    RocksDB recovers a truncated MANIFEST without an error and then deletes the tables it no
    longer lists as obsolete. A read-only open deletes nothing: there, recent commits missing
    while unlisted tables are on disk mean the MANIFEST lost them.

    Raises:
        StoreCorruptError: the MANIFEST is damaged (the store must be moved aside).
    """
    backend = RocksBackend(path, read_only=True)
    try:
        lost = ObjectStore(backend).lost_commits
        unlisted = backend.unlisted_tables() if lost else []
    finally:
        backend.close()
    if unlisted:
        raise StoreCorruptError(
            f"the time-travel store {path} is damaged: its MANIFEST lost {len(unlisted)} table "
            f"file(s) ({', '.join(unlisted[:3])}) holding its {lost} newest states; move it "
            "aside (the files are intact) to start a fresh history"
        )
