"""Exception hierarchy of every layer: one root, each error carrying its protocol code."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadRequestError",
    "BusyError",
    "CheckpointProcessError",
    "CheckpointStalledError",
    "MissingObjectError",
    "NotEnoughMemoryError",
    "NothingToRedoError",
    "NothingToRestoreError",
    "NothingToUndoError",
    "ProtocolError",
    "RemoteAccessError",
    "RemoteConflictError",
    "RemoteCorruptError",
    "RemoteError",
    "RemoteNotFoundError",
    "RemoteTrustError",
    "RemoteUnavailableError",
    "SerializationError",
    "SharedObjectsError",
    "StoreCorruptError",
    "StoreError",
    "StoreFormatError",
    "StoreLockedError",
    "TimeTravelError",
    "TimeTravelWarning",
    "TimelineError",
    "UnknownCommitError",
    "UnknownNameError",
    "UnknownOpError",
]


class TimeTravelError(Exception):
    """Root of all errors raised by timetravel-kernel; ``code`` is the protocol error code."""

    code: ClassVar[str] = "internal"


class StoreError(TimeTravelError):
    """The store cannot be opened, read or written."""

    code = "store-error"


class StoreLockedError(StoreError):
    """Another process holds the store open for writing.

    Args:
        path: the store directory.
        holder: a description of the holding process (pid, host, purpose), if known.
    """

    code = "store-locked"

    def __init__(self, path: str, holder: str | None) -> None:
        self.path = path
        self.holder = holder
        who = f" by {holder}" if holder else " by another process"
        super().__init__(
            f"the time-travel store {path} is in use{who}; close that kernel or open the "
            "store read-only"
        )


class StoreCorruptError(StoreError):
    """Bytes read back from the store do not match what was written."""

    code = "store-corrupt"


class StoreFormatError(StoreError):
    """The store was written by an incompatible version of timetravel-kernel."""

    code = "store-format"


class MissingObjectError(StoreError, KeyError):
    """An object that a commit refers to is not in the store."""

    code = "missing-object"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "missing object"


class SerializationError(TimeTravelError):
    """A value cannot be saved (or loaded back); the checkpoint records the reason.

    Args:
        name: the top-level name(s) concerned.
        type_name: the qualified type of the offending object.
        reason: a sentence for the user saying why and what to do.
    """

    code = "serialization"

    def __init__(self, name: str, type_name: str, reason: str) -> None:
        self.name = name
        self.type_name = type_name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


class TimelineError(TimeTravelError):
    """A history operation cannot be carried out."""

    code = "timeline-error"


class UnknownCommitError(TimelineError, KeyError):
    """No commit has the given id."""

    code = "unknown-commit"

    def __init__(self, commit_id: str, *, thinned: bool = False) -> None:
        self.commit_id = commit_id
        if thinned:
            super().__init__(f"the state {commit_id[:12]} was thinned by the store's retention "
                             "settings (its cell is still in the history); list the states "
                             "kept with `log`")
        else:
            super().__init__(f"no commit {commit_id!r} in this store; list commits with `log`")

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownNameError(TimelineError, KeyError):
    """A commit has no saved value for the given name.

    Args:
        name: the variable asked for.
        message: what the user can do instead.
    """

    code = "unknown-name"

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class SharedObjectsError(TimelineError):
    """A name shares objects with other names, so restoring it alone would unlink them.

    Args:
        name: the variable asked for.
        members: every name of its co-variable at that state.
        message: what the user can do instead.
    """

    code = "covariable"

    def __init__(self, name: str, members: tuple[str, ...], message: str) -> None:
        self.name = name
        self.members = members
        super().__init__(message)


class NothingToUndoError(TimelineError):
    """HEAD is a root commit."""

    code = "nothing-to-undo"


class NothingToRedoError(TimelineError):
    """No undo since the last checkpoint or jump."""

    code = "nothing-to-redo"


class NothingToRestoreError(TimelineError):
    """No earlier session left a state to restore."""

    code = "nothing-to-restore"


class NotEnoughMemoryError(TimelineError):
    """Loading a state would need more memory than the system has left; nothing was changed.

    ``needed`` and ``available`` are bytes; the message says which names are big and how to
    bring some of them back alone.
    """

    code = "not-enough-memory"

    def __init__(self, message: str, *, needed: int, available: int) -> None:
        self.needed = needed
        self.available = available
        super().__init__(message)


class CheckpointProcessError(TimelineError):
    """A checkpoint in a forked snapshot died, hung or failed; nothing was committed."""


class CheckpointStalledError(CheckpointProcessError):
    """A forked snapshot stopped making progress: blocked, not slow (a lock held at fork)."""


class BusyError(TimelineError):
    """A cell is running; the namespace cannot be changed now."""

    code = "busy"


class ProtocolError(TimeTravelError):
    """A comm message does not follow protocol v1."""

    code = "bad-request"


class BadRequestError(ProtocolError):
    """A request is malformed: not an object, missing or ill-typed fields."""

    code = "bad-request"


class UnknownOpError(ProtocolError):
    """A request names an op that protocol v1 does not have."""

    code = "unknown-op"


class RemoteError(TimeTravelError):
    """A remote (object storage, a shared folder) cannot be read or written."""

    code = "remote-error"


class RemoteUnavailableError(RemoteError):
    """The remote cannot be reached (network, server down, timeout); worth retrying later."""

    code = "remote-unavailable"


class RemoteAccessError(RemoteError):
    """The remote refused the credentials or the permission; retrying will not help."""

    code = "remote-access"


class RemoteNotFoundError(RemoteError):
    """The bucket, folder or notebook history does not exist on the remote."""

    code = "remote-not-found"


class RemoteConflictError(RemoteError):
    """The remote moved since this store last synced: pull first, then push again."""

    code = "remote-conflict"


class RemoteCorruptError(RemoteError):
    """Bytes read from the remote do not match their names or hashes; nothing was loaded."""

    code = "remote-corrupt"


class RemoteTrustError(RemoteError):
    """A history on the remote is not signed with a key this machine trusts."""

    code = "remote-untrusted"


class TimeTravelWarning(UserWarning):
    """Something was not saved or restored; the history is still consistent."""
