"""Timeline layer: commits as a tree; checkpoint, checkout, undo, redo, diff, log, gc."""

from timetravel_kernel.state.options import TimelineOptions
from timetravel_kernel.timeline.background import BackgroundOptions, CheckpointMode
from timetravel_kernel.timeline.plan import CheckoutPlan
from timetravel_kernel.timeline.recorder import RecordStart
from timetravel_kernel.timeline.results import (
    CellInfo,
    CheckoutResult,
    CheckpointResult,
    DiffResult,
    VarInfo,
    describe_cell,
)
from timetravel_kernel.timeline.retention import RetentionPolicy, RetentionReport
from timetravel_kernel.timeline.timeline import Namespace, Timeline

__all__ = [
    "BackgroundOptions",
    "CellInfo",
    "CheckoutPlan",
    "CheckoutResult",
    "CheckpointMode",
    "CheckpointResult",
    "DiffResult",
    "Namespace",
    "RecordStart",
    "RetentionPolicy",
    "RetentionReport",
    "Timeline",
    "TimelineOptions",
    "VarInfo",
    "describe_cell",
]
