"""TimeTravelKernel: IPythonKernel plus a checkpoint after every cell and the comm protocol.

The kernel is a thin facade: it decides *when* (after each non-silent execution, before the
next request), the timeline decides *what*, the protocol handler answers the frontends
(kernel layer).
"""

from __future__ import annotations

import contextvars
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ipykernel.ipkernel import IPythonKernel
from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Enum, Float, Int, List, Unicode, default
from typing_extensions import override

from timetravel_kernel.kernel.magics import register_magics
from timetravel_kernel.kernel.storage import (
    OpenedTimeline,
    default_store_dir,
    open_timeline_with_fallback,
    store_path_for,
)
from timetravel_kernel.protocol import COMM_TARGET, ProtocolHandler
from timetravel_kernel.protocol.messages import (
    format_checkpoint_event,
    format_commit,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from timetravel_kernel.protocol import Response
    from timetravel_kernel.timeline import CheckpointResult, Timeline

__all__ = ["IPYTHON_HIDDEN_NAMES", "IPYTHON_HIDDEN_PATTERN", "TimeTravelKernel"]

# IPython's own bookkeeping names: part of every session, never part of the user's state.
IPYTHON_HIDDEN_NAMES = frozenset({
    "In", "Out", "exit", "quit", "get_ipython", "_", "__", "___", "_i", "_ii", "_iii",
    "_ih", "_oh", "_dh", "__session__", "__builtin__", "__builtins__", "__name__", "__doc__",
    "__package__", "__loader__", "__spec__",
})
# dunders, input history (_i12), output history (_12).
IPYTHON_HIDDEN_PATTERN = r"__.*__|_i\d+|_\d+"
_POLICIES = ("restore", "offer", "never")
_CHECKPOINT_MODES = ("auto", "background", "sync")
# Loop iterations of the shell-channel thread to wait for: its receive handler forwards the
# reply into a ZMQStream send queue, which a later iteration writes to the socket.
_REPLY_HOPS = 4


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _env_choice(name: str, choices: tuple[str, ...], fallback: str) -> str:
    value = os.environ.get(name, fallback)
    return value if value in choices else fallback


@dataclass(slots=True)
class _CellRun:
    """What the checkpoint needs to know about the execute_request being handled."""

    code: str
    cell_id: str | None
    silent: bool
    status: str = "ok"
    execution_count: int | None = None
    duration: float = 0.0
    uses_magic: bool = False


_current_run: contextvars.ContextVar[_CellRun | None] = contextvars.ContextVar(
    "timetravel_current_run", default=None)


class TimeTravelKernel(IPythonKernel):
    """The IPython kernel with a durable, navigable history of the user's namespace."""

    # ``implementation`` stays "ipython": tools that enable IPython features by it must treat
    # this kernel as the stock one. Frontends recognise it by its kernelspec name or its comm.

    enabled = Bool(
        help="Checkpoint the namespace after every cell (env TIMETRAVEL_ENABLED=0 turns it off)."
    ).tag(config=True)
    store_dir = Unicode(
        help="Folder holding one history store per notebook (env TIMETRAVEL_STORE_DIR); "
        "defaults to <jupyter data dir>/timetravel/stores."
    ).tag(config=True)
    store_path = Unicode(
        help="Use exactly this store directory instead of one derived from the notebook path "
        "(env TIMETRAVEL_STORE)."
    ).tag(config=True)
    notebook_path = Unicode(
        help="The notebook this kernel serves; its store is keyed by it. Defaults to "
        "JPY_SESSION_NAME, which Jupyter Server sets; without it the connection file is the key."
    ).tag(config=True)
    skip_names = List(
        Unicode(), help="Top-level names never saved (env TIMETRAVEL_SKIP_NAMES, comma-separated)."
    ).tag(config=True)
    skip_types = List(
        Unicode(), help="Qualified type names (module.Class) whose values are never saved "
        "(env TIMETRAVEL_SKIP_TYPES, comma-separated)."
    ).tag(config=True)
    max_var_bytes = Int(
        help="Size budget: a group of variables larger than this many bytes is recorded as "
        "unsaved; 0 for no limit (env TIMETRAVEL_MAX_VAR_BYTES)."
    ).tag(config=True)
    restore_after_crash = Enum(
        _POLICIES, help="After the previous kernel of this notebook died (crash, kill, OOM): "
        "'restore' its last state before running anything, 'offer' it, or 'never' mention it "
        "(env TIMETRAVEL_RESTORE_AFTER_CRASH)."
    ).tag(config=True)
    restore_after_restart = Enum(
        _POLICIES, help="After a deliberate shutdown or restart: 'restore', 'offer' (start "
        "empty and announce that a restore is available) or 'never' "
        "(env TIMETRAVEL_RESTORE_AFTER_RESTART)."
    ).tag(config=True)

    checkpoint_mode = Enum(
        _CHECKPOINT_MODES, help="Where a checkpoint's work runs: 'auto' in a forked "
        "copy-on-write snapshot when the changed values are big (>= 1 MB) and memory allows, so "
        "the kernel is idle at once; 'background' always forked (Linux); 'sync' in the kernel, "
        "which stays busy until it is saved (env TIMETRAVEL_CHECKPOINT_MODE)."
    ).tag(config=True)
    checkpoint_hang_seconds = Float(
        300.0, help="A background checkpoint that makes no progress for this long is stopped "
        "and reported; the next checkpoint saves what it could not "
        "(env TIMETRAVEL_CHECKPOINT_HANG_SECONDS)."
    ).tag(config=True)

    @default("checkpoint_mode")
    def _default_checkpoint_mode(self) -> str:
        return _env_choice("TIMETRAVEL_CHECKPOINT_MODE", _CHECKPOINT_MODES, "auto")

    @default("checkpoint_hang_seconds")
    def _default_checkpoint_hang_seconds(self) -> float:
        try:
            return max(0.1, float(os.environ.get("TIMETRAVEL_CHECKPOINT_HANG_SECONDS", "300")))
        except ValueError:
            return 300.0

    @default("enabled")
    def _default_enabled(self) -> bool:
        return os.environ.get("TIMETRAVEL_ENABLED", "1").lower() not in ("0", "false", "no", "off")

    @default("store_dir")
    def _default_store_dir(self) -> str:
        return os.environ.get("TIMETRAVEL_STORE_DIR") or str(default_store_dir(jupyter_data_dir()))

    @default("store_path")
    def _default_store_path(self) -> str:
        return os.environ.get("TIMETRAVEL_STORE", "")

    @default("notebook_path")
    def _default_notebook_path(self) -> str:
        return os.environ.get("JPY_SESSION_NAME", "")

    @default("skip_names")
    def _default_skip_names(self) -> list[str]:
        return _env_list("TIMETRAVEL_SKIP_NAMES")

    @default("skip_types")
    def _default_skip_types(self) -> list[str]:
        return _env_list("TIMETRAVEL_SKIP_TYPES")

    @default("max_var_bytes")
    def _default_max_var_bytes(self) -> int:
        try:
            return max(0, int(os.environ.get("TIMETRAVEL_MAX_VAR_BYTES", "0")))
        except ValueError:
            return 0

    @default("restore_after_crash")
    def _default_restore_after_crash(self) -> str:
        return _env_choice("TIMETRAVEL_RESTORE_AFTER_CRASH", _POLICIES, "restore")

    @default("restore_after_restart")
    def _default_restore_after_restart(self) -> str:
        return _env_choice("TIMETRAVEL_RESTORE_AFTER_RESTART", _POLICIES, "offer")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._running = 0  # cells in flight: subshells run execute_requests in other threads
        self._running_lock = threading.Lock()
        self._lock = threading.RLock()
        self._comms: dict[str, Any] = {}
        self._notices: list[str] = []
        self._startup_events: list[Mapping[str, object]] = []
        self._warned_failure = False
        self._opened = OpenedTimeline(None, None, "time travel is starting")
        self.handler = ProtocolHandler(None, self.shell.user_ns, is_busy=self.is_busy,
                                       lock=self._lock, notice="time travel is starting")
        self.comm_manager.register_target(COMM_TARGET, self._on_comm_open)
        register_magics(self.shell, self)

    @property
    def timeline(self) -> Timeline | None:
        """The session's history (None when time travel is off or unavailable)."""
        return self.handler.timeline

    def is_busy(self) -> bool:
        """Return whether a cell (or the checkpoint after it) is running."""
        return self._running > 0

    @override
    def start(self) -> None:
        # Opened here, not in __init__: the app has run startup files and exec_lines by now,
        # so the root commit is the state a user's first cell really starts from.
        if self.enabled:
            self._open_history()
        else:
            self.handler.notice = "time travel is off (TimeTravelKernel.enabled)"
        super().start()

    # -- opening the store and restoring ------------------------------------------------

    def _store_location(self) -> tuple[Path, str]:
        from pathlib import Path

        if self.store_path:
            return Path(self.store_path), f"kernel for {self.notebook_path or self.store_path}"
        if self.notebook_path:
            return (store_path_for(self.store_dir, self.notebook_path),
                    f"kernel for {self.notebook_path}")
        parent = self.parent
        key = getattr(parent, "abs_connection_file", None) or getattr(
            parent, "connection_file", "") or f"pid-{os.getpid()}"
        return store_path_for(self.store_dir, key), f"kernel for {os.path.basename(key)}"

    def _timeline_options(self) -> Any:
        from timetravel_kernel.timeline import TimelineOptions

        hidden = set(IPYTHON_HIDDEN_NAMES) | set(self.shell.user_ns_hidden) | set(self.skip_names)
        return TimelineOptions(
            skip_names=frozenset(hidden),
            skip_pattern=IPYTHON_HIDDEN_PATTERN,
            skip_types=frozenset(self.skip_types),
            max_covar_bytes=self.max_var_bytes or None,
        )

    def _open_history(self) -> None:
        try:
            path, purpose = self._store_location()
            opened = open_timeline_with_fallback(path, self._timeline_options(), purpose=purpose)
            self._opened = opened
            self.handler.timeline = opened.timeline
            self.handler.notice = opened.notice
            if opened.notice:
                self._announce(opened.notice)
            if opened.timeline is not None:
                self._start_session(opened.timeline)
        except Exception as exc:
            # Checkpoint boundary (STYLE.md): the history is optional, the kernel is not.
            self.log.exception("time travel could not start")
            self.close_history()
            message = f"time travel is off: it could not start ({type(exc).__name__}: {exc})"
            self.handler.notice = message
            self._announce(message)

    def _start_session(self, timeline: Timeline) -> None:
        crashed = timeline.previous_session_crashed
        restorable = timeline.restorable
        timeline.start(self.shell.user_ns)
        head = timeline.head
        if restorable is None or (head is not None and head.id == restorable.id):
            return
        policy = self.restore_after_crash if crashed else self.restore_after_restart
        cell = f"cell [{restorable.execution_count}]" if restorable.execution_count else "its start"
        before = "the previous kernel crashed" if crashed else "the previous session ended"
        if policy == "restore":
            self._restore_at_start(timeline, crashed, f"{before}; restored its state after {cell}")
        elif policy == "offer":
            message = (f"time travel: {before}; its state after {cell} can be restored with "
                       "%timetravel restore (or the history panel)")
            self._startup_events.append({
                "event": "restore-available", "restorable": format_commit(restorable),
                "crashed": crashed, "message": message})
            self._notices.append(message)

    def _restore_at_start(self, timeline: Timeline, crashed: bool, what: str) -> None:
        try:
            result = timeline.restore(self.shell.user_ns)
        except Exception as exc:
            # Checkpoint boundary: a state that cannot come back must not stop the kernel; it
            # stays in the history for %tt restore or a jump.
            self.log.warning("time travel: restore failed", exc_info=True)
            self._announce(f"time travel: {what.replace('restored', 'restoring')} failed "
                           f"({type(exc).__name__}: {exc}); it stays in the history "
                           "(%timetravel log)")
            return
        missing = ""
        if result.unrestored:
            missing = "; could not restore: " + ", ".join(
                f"{name} ({why})" for name, why in sorted(result.unrestored.items()))
        message = f"time travel: {what} ({len(result.loaded)} names){missing}"
        self._startup_events.append({
            "event": "restored", "head": format_commit(result.head), "crashed": crashed,
            "unrestored": dict(result.unrestored), "message": message})
        self._notices.append(message)

    def _announce(self, message: str) -> None:
        """Tell the user once: in the next cell's output, the banner and a comm event."""
        self._notices.append(message)
        self._startup_events.append({"event": "warning", "message": message, "names": {}})

    @property  # type: ignore[misc]
    @override
    def banner(self) -> str:  # type: ignore[override]
        base = super().banner
        extra = "".join(f"{line}\n" for line in self._notices_for_banner())
        return f"{base}{extra}"

    def _notices_for_banner(self) -> list[str]:
        return [str(e["message"]) for e in self._startup_events if "message" in e]

    # -- executing cells ------------------------------------------------------------------

    @override
    async def execute_request(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        # Overridden (not do_execute) for timing: the parent sends the execute_reply when its
        # execute_request returns from do_execute, so a checkpoint placed after the await runs
        # once the client has its reply, while the kernel still shows busy and the next
        # request waits (NOTES.md). Work in do_execute would delay the reply.
        content = parent.get("content") if isinstance(parent, dict) else None
        content = content if isinstance(content, dict) else {}
        metadata = parent.get("metadata") if isinstance(parent, dict) else None
        cell_id = metadata.get("cellId") if isinstance(metadata, dict) else None
        run = _CellRun(code=str(content.get("code", "")),
                       cell_id=cell_id if isinstance(cell_id, str) else None,
                       silent=bool(content.get("silent", False)))
        token = _current_run.set(run)
        with self._running_lock:
            self._running += 1
        try:
            await super().execute_request(stream, ident, parent)
        finally:
            try:
                self._checkpoint(run)
            finally:
                with self._running_lock:
                    self._running -= 1
                _current_run.reset(token)

    @override
    async def do_execute(self, code: str, silent: bool, store_history: bool = True,
                         user_expressions: dict[str, Any] | None = None,
                         allow_stdin: bool = False, *, cell_meta: dict[str, Any] | None = None,
                         cell_id: str | None = None) -> dict[str, Any]:
        if not silent and self._notices:
            print("\n".join(self._notices), file=sys.stderr, flush=True)
            self._notices.clear()
        started = time.perf_counter()
        reply: dict[str, Any] = await super().do_execute(
            code, silent, store_history, user_expressions, allow_stdin,
            cell_meta=cell_meta, cell_id=cell_id)
        run = _current_run.get()
        if run is not None:
            run.duration = time.perf_counter() - started
            run.status = "ok" if reply.get("status") == "ok" else "error"
            count = reply.get("execution_count")
            run.execution_count = count if isinstance(count, int) else None
        return reply

    def _let_reply_out(self) -> None:
        """Wait (GIL released, at most 10 ms) until the execute_reply has left the kernel.

        ipykernel 7 forwards replies from its shell-channel thread. A checkpoint started at once
        competes with that thread for the GIL, and rocksdict holds the GIL through its synced
        write: measured, the reply then reached clients 1-3 ms later (about 0.3 ms with this
        wait, which itself costs a few loop iterations of that thread, ~0.1 ms).
        """
        loop = getattr(getattr(self, "shell_channel_thread", None), "io_loop", None)
        if loop is None:
            return
        forwarded = threading.Event()

        def hop(remaining: int) -> None:
            if remaining:
                loop.add_callback(hop, remaining - 1)
            else:
                forwarded.set()

        try:
            loop.add_callback(hop, _REPLY_HOPS)
        except RuntimeError:  # the thread's loop is closing: nothing to wait for
            return
        forwarded.wait(0.01)

    def _python_source(self, code: str) -> str | None:
        """Return the Python IPython ran for a cell (magics expanded), None if unknown."""
        try:
            return str(self.shell.transform_cell(code))
        except Exception:
            # Part of the checkpoint boundary: IPython's transformers may raise on any input;
            # without the source every name is examined, which is slower but correct.
            return None

    def _checkpoint(self, run: _CellRun) -> None:
        timeline = self.handler.timeline
        if timeline is None or run.uses_magic:
            return
        if run.silent:
            # Not recorded; but what it may have changed in place must not be trusted as
            # unchanged by the next undo.
            try:
                timeline.note_unrecorded(self.shell.user_ns, self._python_source(run.code))
            except Exception:  # checkpoint boundary: never fail an execution
                self.log.warning("time travel: could not read a silent execution", exc_info=True)
            return
        from timetravel_kernel.timeline import CellInfo

        cell = CellInfo(code=run.code, source=self._python_source(run.code), cell_id=run.cell_id,
                        execution_count=run.execution_count)
        from timetravel_kernel.timeline import BackgroundOptions

        background = BackgroundOptions(mode=self.checkpoint_mode,
                                       hang_seconds=self.checkpoint_hang_seconds)
        try:
            self._let_reply_out()
            with self._lock:
                timeline.start_checkpoint(self.shell.user_ns, cell, on_done=self._checkpoint_done,
                                          status=run.status, duration=run.duration,
                                          background=background)
        except (Exception, KeyboardInterrupt) as exc:
            # Checkpoint boundary (STYLE.md): nothing here may fail or hang the user's cell.
            # A Ctrl-C lands here too when it arrives after the cell finished.
            self._checkpoint_done(None, exc)

    def _checkpoint_done(self, result: CheckpointResult | None,
                         error: BaseException | None) -> None:
        """Report a checkpoint's outcome: inline, or from the ingest thread of a snapshot."""
        if result is None:
            self.log.warning("time travel: checkpoint failed", exc_info=error)
            if not self._warned_failure:
                self._warned_failure = True
                inline = threading.current_thread() is threading.main_thread()
                what = "this cell's state" if inline else "the state after an earlier cell"
                self._tell(f"time travel: {what} could not be saved "
                           f"({type(error).__name__}: {error}); the cell itself is fine and the "
                           "next cells will be saved again if the problem goes away")
            return
        if self._warned_failure:
            self._warned_failure = False
            self._tell("time travel: saving works again; this cell's state includes what the "
                       "cells since the failure changed")
        if result.unsaved:
            names = ", ".join(f"{n} ({why})" for n, why in sorted(result.unsaved.items()))
            self._tell(f"time travel: not saved, will not come back after undo or a crash: "
                       f"{names}")
            self._broadcast({"event": "warning", "names": dict(result.unsaved),
                             "message": "some values could not be saved: undo, jumps and "
                             "crash restore cannot bring them back"})
        self._broadcast(format_checkpoint_event(result))

    def _tell(self, message: str) -> None:
        # Printed while the cell's request is still the parent: it appears under the cell. A
        # background checkpoint reports after its cell: under the next one.
        if threading.current_thread() is not threading.main_thread():
            self._notices.append(message)
            return
        try:
            print(message, file=sys.stderr, flush=True)
        except (OSError, ValueError):
            self.log.warning("%s", message)

    # -- the comm and the magics ------------------------------------------------------------

    def handle_from_cell(self, request: Mapping[str, object]) -> Response:
        """Answer a request made by the running cell (a magic) and broadcast its events.

        A cell that uses a ``%timetravel`` magic is not checkpointed afterwards: undoing twice
        from cells must go back two steps, and looking at the log must not add a state.
        """
        run = _current_run.get()
        if run is not None:
            run.uses_magic = True
        response = self.handler.handle(dict(request), from_cell=True)
        for event in response.events:
            self._broadcast(event)
        return response

    def _on_comm_open(self, comm: Any, msg: dict[str, Any]) -> None:
        self._comms[comm.comm_id] = comm
        comm.on_msg(lambda message: self._on_comm_msg(comm, message))
        comm.on_close(lambda _message: self._comms.pop(comm.comm_id, None))
        for event in self._startup_events:
            self._send(comm, event)

    def _on_comm_msg(self, comm: Any, msg: dict[str, Any]) -> None:
        content = msg.get("content") if isinstance(msg, dict) else None
        data = content.get("data") if isinstance(content, dict) else None
        response = self.handler.handle(data)
        self._send(comm, response.reply)
        if response.events:
            # A restore or jump settles what the startup offer was about.
            self._startup_events = [e for e in self._startup_events
                                    if e.get("event") == "warning"]
        for event in response.events:
            self._broadcast(event)

    def _broadcast(self, event: Mapping[str, object]) -> None:
        for comm in list(self._comms.values()):
            self._send(comm, event)

    def _send(self, comm: Any, data: Mapping[str, object]) -> None:
        try:
            comm.send(dict(data))
        except Exception:
            # A frontend that went away must not break the others or the kernel.
            self.log.debug("time travel: dropping comm %s", comm.comm_id, exc_info=True)
            self._comms.pop(comm.comm_id, None)

    # -- shutdown ----------------------------------------------------------------------------

    @override
    def do_shutdown(self, restart: bool) -> dict[str, Any]:
        self.close_history()
        return super().do_shutdown(restart)  # type: ignore[no-any-return]

    def close_history(self) -> None:
        """Mark the session closed cleanly (no crash restore next time); delete a temporary."""
        timeline = self.handler.timeline
        self.handler.timeline = None
        self.handler.notice = "time travel is closed (the kernel is shutting down)"
        try:
            if timeline is not None:
                with self._lock:
                    timeline.close()
        except Exception:
            # Shutdown boundary: a failing close must not stop the kernel from exiting.
            self.log.warning("time travel: closing the store failed", exc_info=True)
        finally:
            if self._opened.temporary is not None:
                shutil.rmtree(self._opened.temporary, ignore_errors=True)
