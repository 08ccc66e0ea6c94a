"""Exception hierarchy of every layer: one root, each error carrying its protocol code."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadRequestError",
    "BusyError",
    "CheckpointProcessError",
    "MissingObjectError",
    "NothingToRedoError",
    "NothingToRestoreError",
    "NothingToUndoError",
    "ProtocolError",
    "SerializationError",
    "StoreCorruptError",
    "StoreError",
    "StoreFormatError",
    "StoreLockedError",
    "TimeTravelError",
    "TimeTravelWarning",
    "TimelineError",
    "UnknownCommitError",
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

    def __init__(self, commit_id: str) -> None:
        self.commit_id = commit_id
        super().__init__(f"no commit {commit_id!r} in this store; list commits with `log`")

    def __str__(self) -> str:
        return str(self.args[0])


class NothingToUndoError(TimelineError):
    """HEAD is a root commit."""

    code = "nothing-to-undo"


class NothingToRedoError(TimelineError):
    """No undo since the last checkpoint or jump."""

    code = "nothing-to-redo"


class NothingToRestoreError(TimelineError):
    """No earlier session left a state to restore."""

    code = "nothing-to-restore"


class CheckpointProcessError(TimelineError):
    """A checkpoint in a forked snapshot died, hung or failed; nothing was committed."""


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


class TimeTravelWarning(UserWarning):
    """Something was not saved or restored; the history is still consistent."""
