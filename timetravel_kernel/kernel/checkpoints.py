"""How the kernel hands each cell to the recorder and tells what became of it (kernel layer).

The timeline's recorder decides how a cell's state is saved (``timeline/recorder.py``). The
kernel's part is Jupyter timing and telling the person: a snapshot a main-shell cell needs is
taken once the cell's idle status is out (the person sees the cell done sooner; the next
request waits for ipykernel's shell lock, so the state is this cell's alone), and every
outcome is told where it belongs: under the cell while it runs, otherwise in a comm event and
under the very next cell, naming the cell whose state it was.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from timetravel_kernel.protocol.messages import format_checkpoint_event
from timetravel_kernel.session import sentences

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from timetravel_kernel.protocol.messages import SavingEvent
    from timetravel_kernel.timeline import (
        BackgroundOptions,
        CellInfo,
        CheckpointResult,
        Timeline,
    )

__all__ = ["CellCheckpoints"]


class CellCheckpoints:
    """Records each executed cell and reports the outcome (see the module docstring).

    Args:
        timeline: returns the session's timeline (None while time travel is off).
        namespace: the user's namespace.
        options: the background options the kernel's settings make.
        lock: the kernel's history lock, held while the timeline is used.
        tell: says a sentence under the running cell, or under the next one.
        broadcast: sends an event to every open comm.
        after_saved: runs after each durable commit (background push, retention).
        log: the kernel's logger.
        iopub_thread: returns ipykernel's IOPub thread (to let the idle status out first).
    """

    def __init__(self, *, timeline: Callable[[], Timeline | None], namespace: dict[str, Any],
                 options: Callable[[], BackgroundOptions], lock: threading.RLock,
                 tell: Callable[[str], None], broadcast: Callable[[Mapping[str, object]], None],
                 after_saved: Callable[[Timeline], None], log: Any,
                 iopub_thread: Callable[[], Any]) -> None:
        self._timeline = timeline
        self._namespace = namespace
        self._options = options
        self._lock = lock
        self._tell = tell
        self._broadcast = broadcast
        self._after_saved = after_saved
        self._log = log
        self._iopub_thread = iopub_thread
        self._snapshot_due = False
        self._failing = ""  # the kind of error the last checkpoint failed with, until one works
        self._recording: CellInfo | None = None  # the cell whose record() call runs now
        self._last_cell: CellInfo | None = None  # the cell whose snapshot is due

    def after_cell(self, cell: CellInfo, *, status: str, duration: float) -> None:
        """Record a finished cell's state (before its idle status; a snapshot may wait)."""
        timeline = self._timeline()
        if timeline is None:
            return
        later = threading.current_thread() is threading.main_thread()
        self._recording = cell
        try:
            with self._lock:
                started = timeline.recorder.record(
                    self._namespace, cell, on_done=self._outcome(cell), status=status,
                    duration=duration, background=self._options(), later=later)
        except (Exception, KeyboardInterrupt) as exc:
            # Checkpoint boundary (STYLE.md): nothing here may fail or hang the user's cell.
            # A Ctrl-C lands here too when it arrives after the cell finished.
            self._outcome(cell)(None, exc)
            return
        finally:
            self._recording = None
        if started == "due":
            self._snapshot_due = True
            self._last_cell = cell
        elif started == "saving":
            self._announce_saving(timeline)

    def after_idle(self) -> None:
        """Take the snapshot the last main-shell cell needs, its idle status being out."""
        timeline = self._timeline()
        if not self._snapshot_due or timeline is None:
            return
        self._snapshot_due = False
        self._let_status_out()
        try:
            with self._lock:
                timeline.recorder.take_due_snapshot()
        except (Exception, KeyboardInterrupt) as exc:  # checkpoint boundary
            self._log.warning("time travel: the snapshot after a cell failed", exc_info=exc)
            self._tell(sentences.checkpoint_failed(self._last_cell, exc, again=False))
            return
        self._announce_saving(timeline)

    def save_now(self) -> None:
        """Return once every cell run so far is committed (shutdown; tools before a kill)."""
        timeline = self._timeline()
        if timeline is not None:
            with self._lock:
                timeline.settle()

    def _announce_saving(self, timeline: Timeline) -> None:
        """Tell frontends that states are being saved (the status bar shows it until durable)."""
        saving = timeline.recorder.saving
        if saving:
            event: SavingEvent = {"event": "saving", "saving": len(saving),
                                  "execution_count": saving[-1].execution_count}
            self._broadcast(event)

    def _let_status_out(self) -> None:
        """Wait (GIL released, at most 10 ms) until the IOPub thread sent what was published.

        A fork holds the GIL for its whole duration: started before the IOPub thread sent the
        idle status, it would delay that status by as long. The thread runs its scheduled
        sends in order, so an event scheduled now is set once the status left.
        """
        thread = self._iopub_thread()
        try:
            if thread is None or not thread.thread.is_alive():
                return
            sent = threading.Event()
            thread.schedule(sent.set)
        except Exception:  # ipykernel internals changed: fork at once
            return
        sent.wait(0.01)

    def _outcome(self, cell: CellInfo) -> Callable[[CheckpointResult | None,
                                                     BaseException | None], None]:
        """Return the callback that reports what became of ``cell``'s state."""

        def report(result: CheckpointResult | None, error: BaseException | None) -> None:
            if result is None:
                self._failed(cell, error)
            else:
                self._saved(result)

        return report

    def _failed(self, cell: CellInfo, error: BaseException | None) -> None:
        """Tell that a cell's state could not be saved: every time, in full the first time."""
        self._log.warning("time travel: checkpoint failed", exc_info=error)
        running = self._recording is cell  # told under it: its output is still open
        message = sentences.checkpoint_failed(None if running else cell, error,
                                              again=type(error).__name__ == self._failing)
        self._failing = type(error).__name__
        self._tell(message)
        if not running:
            self._broadcast({"event": "warning", "names": {}, "message": message,
                             "execution_count": cell.execution_count})

    def _saved(self, result: CheckpointResult) -> None:
        timeline = self._timeline()
        if self._failing:
            self._failing = ""
            self._tell(sentences.saving_resumed(result.commit.cells))
        if result.unsaved:
            self._tell(sentences.not_saved(result.unsaved))
            self._broadcast({"event": "warning", "names": dict(result.unsaved),
                             "message": sentences.NOT_SAVED_EVENT})
        saving = len(timeline.recorder.saving) if timeline is not None else 0
        self._broadcast(format_checkpoint_event(result, saving=saving))
        if timeline is not None:
            self._after_saved(timeline)
