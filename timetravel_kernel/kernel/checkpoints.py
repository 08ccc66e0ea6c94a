"""How the kernel runs background checkpoints: bursts, catching up, reporting (kernel layer).

The part of ``TimeTravelKernel`` that decides, after a cell, whether to fold it into the next
checkpoint (a burst of requests) or to take its snapshot once the idle status is out, and that
records folded cells once the kernel is free; and reports every checkpoint's outcome, inline
or from a snapshot's ingest thread. A mixin: the kernel holds the state it uses (declared
below).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import weakref
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from timetravel_kernel.protocol.messages import format_checkpoint_event

if TYPE_CHECKING:

    from timetravel_kernel.kernel.sync import RemoteSync
    from timetravel_kernel.kernel.thinning import BackgroundThinner
    from timetravel_kernel.protocol import ProtocolHandler
    from timetravel_kernel.timeline import BackgroundOptions, CheckpointResult, Timeline

__all__ = ["BURST_RECHECK", "BackgroundCheckpoints"]

BURST_RECHECK = 0.05
"""Seconds between looks at whether a burst of requests (Run All) is over."""


_TIME_TRAVEL_MAGIC = re.compile(rb"%%?(?:tt|timetravel)\b")
"""A time-travel magic in a request's content (JSON bytes; a false hit only costs folding)."""


def _task_name(task: asyncio.Task[Any]) -> str:
    return str(getattr(task.get_coro(), "__qualname__", ""))


def _request_content(session: Any, task: asyncio.Task[Any]) -> bytes | None:
    """Return the content frame of the shell message a request task handles, None if unseen.

    The message is the coroutine's ``msg`` argument (``shell_main``) or the list among the
    arguments of its ``run_in_context`` wrapper: ZMQ frames, read here without deserializing
    (deserializing would record the message's signature, and the kernel would then refuse
    the message itself as a replay).
    """
    frame = getattr(task.get_coro(), "cr_frame", None)
    if frame is None:
        return None
    arguments = frame.f_locals
    message = arguments.get("msg")
    if message is None:
        message = next((a for a in arguments.get("args", ()) if isinstance(a, list)), None)
    if not message:
        return None
    _, frames = session.feed_identities(message, copy=False)
    content = frames[4]  # signature, header, parent header, metadata, content
    return content.bytes if hasattr(content, "bytes") else bytes(content)


class BackgroundCheckpoints:
    """Folding, catching up and reporting checkpoints (see the module docstring)."""

    handler: ProtocolHandler
    shell: Any
    log: Any
    checkpoint_mode: str
    checkpoint_hang_seconds: float
    checkpoint_burst_seconds: float
    _lock: threading.RLock
    _main_loop: asyncio.AbstractEventLoop | None
    _sync: RemoteSync | None
    _thinner: BackgroundThinner | None
    _warned_failure: bool
    _magic_requests: weakref.WeakKeyDictionary[asyncio.Task[Any], bool]
    session: Any
    iopub_thread: Any
    # and, from the kernel: is_busy(), _under_running_cell(), _tell(message),
    # _broadcast(event)

    def _burst_fold_delay(self, timeline: Timeline, duration: float) -> float | None:
        """Seconds until a burst this quick cell belongs to is recorded; None: not a burst.

        A burst is a run of requests sent at once (Run All). Its quick cells are folded into
        one checkpoint until they ran ``checkpoint_burst_seconds`` together; a slow cell is
        checkpointed at once (with the cells folded before it). The burst's last cell is
        folded too when cells before it were: the burst is recorded by the catch-up that runs
        as soon as the kernel is idle, so the Run All shows done when its last cell is.
        """
        if self.checkpoint_mode == "sync":
            return None
        if timeline.folded_seconds + duration >= self.checkpoint_burst_seconds:
            return None
        if self._requests_waiting():
            if self._time_travel_waits():
                return None  # a later %tt undo must find this cell's own state
            return BURST_RECHECK  # the burst goes on: look again once it may be over
        return 0.0 if timeline.folded_cells else None

    def _snapshot_once_idle(self) -> bool:
        """Whether a snapshot this cell needs is taken once its idle status is out.

        The fork costs the kernel 4-10 ms (page tables of a kernel with scipy loaded: 1800
        mappings) and its pages then fault as the kernel writes them. Taken right after the
        idle status, before the main shell runs another request (the kernel's
        ``dispatch_shell`` calls ``_record_folded``), it records the same state while the
        person sees the cell done sooner. Not in a burst
        (its requests wait; they are folded anyway) nor in a subshell's thread.
        """
        return (self.checkpoint_mode != "sync"
                and threading.current_thread() is threading.main_thread()
                and not self._requests_waiting())

    def _let_status_out(self) -> None:
        """Wait (GIL released, at most 10 ms) until the IOPub thread sent what was published.

        A fork holds the GIL for its whole duration: started before the IOPub thread sent the
        idle status, it would delay that status by as long. The thread runs its scheduled
        sends in order, so an event scheduled now is set once the status left.
        """
        thread = getattr(self, "iopub_thread", None)
        try:
            if thread is None or not thread.thread.is_alive():
                return
            sent = threading.Event()
            thread.schedule(sent.set)
        except Exception:  # ipykernel internals changed: fork at once, as before
            return
        sent.wait(0.01)

    def _request_tasks(self) -> list[asyncio.Task[Any]]:
        """Pending tasks of shell requests, but the current one's own (its outer task is in)."""
        current = asyncio.current_task()
        return [task for task in asyncio.all_tasks()
                if task is not current and not task.done()
                and _task_name(task).endswith(("shell_main", "run_in_context"))]

    def _requests_waiting(self) -> bool:
        """Whether shell requests wait behind the current one (a Run All in progress).

        ipykernel 7 hands the main shell's messages over an inproc socket pair; each one read
        becomes a task (``run_in_context``, which starts a ``shell_main`` task and awaits it)
        that runs under an asyncio lock, so a request read while a cell ran waits as such a
        task (``execute_request`` lets the loop read before it asks). The socket itself is
        not asked: reading ZMQ_EVENTS consumes the edge its stream waits for, and the kernel
        would never read that request. Internals, so any surprise answers "no" (every cell
        then gets its own checkpoint).
        """
        try:
            tasks = self._request_tasks()
            if any(_task_name(task).endswith("shell_main") for task in tasks):
                return True
            outer = sum(_task_name(task).endswith("run_in_context") for task in tasks)
            return outer > (asyncio.current_task() is not None)  # one is the current request's
        except Exception:
            return False

    def _time_travel_waits(self) -> bool:
        """Whether a waiting request uses a ``%tt`` magic (a Run All of a notebook with some).

        Its undo or jump must find one state per cell before it, so the cells before it are
        not folded. Each request's content is searched once; a request whose content cannot
        be found counts as using one (every cell then gets its own checkpoint).
        """
        try:
            for task in self._request_tasks():
                uses = self._magic_requests.get(task)
                if uses is None:
                    content = _request_content(self.session, task)
                    uses = content is None or _TIME_TRAVEL_MAGIC.search(content) is not None
                    self._magic_requests[task] = uses
                if uses:
                    return True
            return False
        except Exception:
            return True

    def _schedule_catch_up(self, delay: float = 0.0) -> None:
        """Have the main event loop record folded cells once the kernel is free (any thread)."""
        loop = self._main_loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
            loop.call_soon_threadsafe(loop.call_later, delay, self._catch_up)

    def _background_options(self) -> BackgroundOptions:
        from timetravel_kernel.timeline import BackgroundOptions

        return BackgroundOptions(mode=self.checkpoint_mode,
                                 hang_seconds=self.checkpoint_hang_seconds)

    def save_now(self) -> None:
        """Return once every cell run so far is committed (shutdown; tools before a kill).

        Waits for the snapshot in flight and records folded cells here, inline.
        """
        timeline = self.handler.timeline
        if timeline is None:
            return
        with self._lock:
            timeline.catch_up(self.shell.user_ns, on_done=self._checkpoint_done,
                              background=replace(self._background_options(), mode="sync"))

    def _catch_up(self) -> None:
        """Checkpoint the cells folded or deferred (on the main loop, once idle)."""
        timeline = self.handler.timeline
        if timeline is None or not timeline.folded_cells:
            return
        if self.is_busy() or self._requests_waiting() or timeline.background_pid is not None:
            # Later: a request runs (a silent one does not record), a burst goes on, or a
            # snapshot is still saving (waiting for it here would hold the idle kernel).
            self._schedule_catch_up(BURST_RECHECK)
            return
        self._record_folded()

    def _record_folded(self) -> None:
        """Checkpoint the folded or deferred cells now (the kernel is idle, its status out)."""
        timeline = self.handler.timeline
        if timeline is None or not timeline.folded_cells:
            return
        self._let_status_out()
        try:
            with self._lock:
                timeline.catch_up(self.shell.user_ns, on_done=self._checkpoint_done,
                                  background=self._background_options())
        except Exception as exc:  # checkpoint boundary
            self._checkpoint_done(None, exc)

    def _checkpoint_done(self, result: CheckpointResult | None,
                         error: BaseException | None) -> None:
        """Report a checkpoint's outcome: inline, or from the ingest thread of a snapshot."""
        if threading.current_thread() is not threading.main_thread():
            # Cells may have been folded while this snapshot was saving: record them next.
            self._schedule_catch_up()
        if result is None:
            self.log.warning("time travel: checkpoint failed", exc_info=error)
            if not self._warned_failure:
                self._warned_failure = True
                what = ("this cell's state" if self._under_running_cell()
                        else "the state after an earlier cell")
                self._tell(f"time travel: {what} could not be saved "
                           f"({type(error).__name__}: {error}); the cell itself is fine and the "
                           "next cells will be saved again if the problem goes away")
            return
        if self._sync is not None:
            self._sync.note_checkpoint()
        if self._warned_failure:
            self._warned_failure = False
            self._tell("time travel: saving works again; this cell's state includes what the "
                       "cells since the failure changed")
        if result.unsaved:
            names = ", ".join(f"{n} ({why})" for n, why in sorted(result.unsaved.items()))
            self._tell(f"time travel: not saved; after a crash or restart only running their "
                       f"recorded cells again brings them back (%tt rebuild): {names}")
            self._broadcast({"event": "warning", "names": dict(result.unsaved),
                             "message": "some values could not be saved: after a crash or "
                             "restart only running their recorded cells again (a rebuild) "
                             "brings them back"})
        self._broadcast(format_checkpoint_event(result))
        if self._thinner is not None:
            self._thinner.after_checkpoint(self.handler.timeline)
