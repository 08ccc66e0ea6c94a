"""TimeTravelKernel: IPythonKernel with a notebook's history session and the comm protocol.

The Jupyter glue only: ipykernel's hooks decide *when* (a cell's state is recorded after its
reply, its snapshot taken after its idle status), the notebook session (``session/``) is the
application (the store, restores, the remote, retention, the rebuild policy), the timeline
decides *what* is saved, and the session's protocol handler answers the frontends (kernel
layer).
"""

from __future__ import annotations

import contextvars
import datetime
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipykernel.ipkernel import IPythonKernel
from jupyter_core.paths import jupyter_data_dir
from typing_extensions import override

from timetravel_kernel.kernel.checkpoints import CellCheckpoints
from timetravel_kernel.kernel.magics import register_magics
from timetravel_kernel.kernel.settings import TimeTravelSettings
from timetravel_kernel.protocol import COMM_TARGET
from timetravel_kernel.session import NotebookSession, SessionSettings
from timetravel_kernel.timeline import BackgroundOptions, TimelineOptions

if TYPE_CHECKING:
    from collections.abc import Mapping

    from timetravel_kernel.protocol import ProtocolHandler, Response
    from timetravel_kernel.timeline import Timeline

__all__ = [
    "IPYTHON_HIDDEN_NAMES",
    "IPYTHON_HIDDEN_PATTERN",
    "VSCODE_NOTEBOOK_NAME",
    "TimeTravelKernel",
]

# IPython's own bookkeeping names: part of every session, never part of the user's state.
IPYTHON_HIDDEN_NAMES = frozenset({
    "In", "Out", "exit", "quit", "get_ipython", "_", "__", "___", "_i", "_ii", "_iii",
    "_ih", "_oh", "_dh", "__session__", "__builtin__", "__builtins__", "__name__", "__doc__",
    "__package__", "__loader__", "__spec__",
})
# dunders, input history (_i12), output history (_12).
IPYTHON_HIDDEN_PATTERN = r"__.*__|_i\d+|_\d+"
# What VS Code's Jupyter extension assigns the notebook's path to at kernel start.
VSCODE_NOTEBOOK_NAME = "__vsc_ipynb_file__"
# Loop iterations of the shell-channel thread to wait for: its receive handler forwards the
# reply into a ZMQStream send queue, which a later iteration writes to the socket.
_REPLY_HOPS = 4


def _sent_at(msg: object) -> float | None:
    """Return when a message was sent (its header's date, as a POSIX time), None if unknown."""
    header = msg.get("header") if isinstance(msg, dict) else None
    date = header.get("date") if isinstance(header, dict) else None
    if isinstance(date, str):
        try:
            date = datetime.datetime.fromisoformat(date)
        except ValueError:
            return None
    if not isinstance(date, datetime.datetime):
        return None
    if date.tzinfo is None:  # the spec says UTC; jupyter_client adds the zone when parsing
        date = date.replace(tzinfo=datetime.timezone.utc)
    return date.timestamp()


@dataclass(slots=True)
class _CellRun:
    """What the checkpoint needs to know about the execute_request being handled."""

    code: str
    cell_id: str | None
    recorded: bool  # a user's cell: neither silent nor kept out of the input history
    status: str = "ok"
    execution_count: int | None = None
    duration: float = 0.0
    uses_magic: bool = False


_current_run: contextvars.ContextVar[_CellRun | None] = contextvars.ContextVar(
    "timetravel_current_run", default=None)


class TimeTravelKernel(IPythonKernel, TimeTravelSettings):
    """The IPython kernel with a durable, navigable history of the user's namespace."""

    # ``implementation`` stays "ipython": tools that enable IPython features by it must treat
    # this kernel as the stock one. Frontends recognise it by its kernelspec name or its comm.

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._running = 0  # cells in flight: subshells run execute_requests in other threads
        self._running_lock = threading.Lock()
        self._lock = threading.RLock()
        self._comms: dict[str, Any] = {}
        self._last_cell_finished = 0.0
        self.notebook = NotebookSession(self._session_settings(), self.shell.user_ns, self._lock,
                                       is_busy=self.is_busy,
                                       transform_cell=self._python_source_or_code, log=self.log)
        self.checkpoints = CellCheckpoints(
            timeline=lambda: self.notebook.timeline, namespace=self.shell.user_ns,
            options=self._background_options, lock=self._lock, tell=self._tell,
            broadcast=self._broadcast, after_saved=self.notebook.after_saved, log=self.log,
            iopub_thread=lambda: getattr(self, "iopub_thread", None))
        self.comm_manager.register_target(COMM_TARGET, self._on_comm_open)
        register_magics(self.shell, self)

    @property
    def handler(self) -> ProtocolHandler:
        """The protocol handler the session serves the frontends with."""
        return self.notebook.handler

    @property
    def timeline(self) -> Timeline | None:
        """The session's history (None when time travel is off or unavailable)."""
        return self.notebook.timeline

    def is_busy(self) -> bool:
        """Return whether a cell (or the checkpoint after it) is running."""
        return self._running > 0

    @override
    def start(self) -> None:
        # Opened here, not in __init__: the app has run startup files and exec_lines by now,
        # so the root commit is the state a user's first cell really starts from.
        if self.enabled:
            self.notebook.open(startup_names=self.shell.user_ns_hidden)
        else:
            self.notebook.notice = "time travel is off (TimeTravelKernel.enabled)"
        super().start()

    def _session_settings(self) -> SessionSettings:
        """The session's settings, from the kernel's traits and Jupyter's environment."""
        hidden = set(IPYTHON_HIDDEN_NAMES) | set(self.skip_names)
        parent = self.parent
        connection = getattr(parent, "abs_connection_file", None) or getattr(
            parent, "connection_file", "")
        return SessionSettings(
            store_dir=Path(self.store_dir), store_path=self.store_path,
            notebook_path=self.notebook_path, connection_key=connection,
            timeline=TimelineOptions(skip_names=frozenset(hidden),
                                     skip_pattern=IPYTHON_HIDDEN_PATTERN,
                                     skip_types=frozenset(self.skip_types),
                                     max_covar_bytes=self.max_var_bytes or None),
            restore_after_crash=self.restore_after_crash,
            restore_after_restart=self.restore_after_restart,
            rebuild_unsaved=self.rebuild_unsaved, rebuild_budget=self.rebuild_budget,
            keep_newer_than=self.keep_newer_than, keep_last=self.keep_last,
            thin_every=self.thin_every, store_budget=self.store_budget, remote=self.remote,
            remote_trust=self.remote_trust, remote_key_file=self.remote_key_file,
            data_dir=Path(jupyter_data_dir()), home=os.path.expanduser("~"),
            env=dict(os.environ))

    def _background_options(self) -> BackgroundOptions:
        return BackgroundOptions(mode=self.checkpoint_mode,
                                 hang_seconds=self.checkpoint_hang_seconds,
                                 max_pending=self.checkpoint_max_pending)

    def save_now(self) -> None:
        """Return once every cell run so far is committed (shutdown; tools before a kill)."""
        self.checkpoints.save_now()

    def remote_command(self, op: str) -> str:
        """Run ``%tt push`` or ``%tt pull`` now; return what happened, in a sentence."""
        run = _current_run.get()
        if run is not None:
            run.uses_magic = True
        return self.notebook.remote_command(op)

    def _follow_vscode_notebook(self) -> None:
        """Key the store by the notebook once VS Code names it, and restore its state.

        VS Code's Jupyter extension sets no ``JPY_SESSION_NAME``; its start-up code assigns
        the notebook's path to ``__vsc_ipynb_file__`` before any user cell runs. Until then
        the store is keyed by the connection file, which changes with every kernel process:
        the session then switches to the notebook's own store, with the usual restore, so
        crash restore works in VS Code too.
        """
        if not self.enabled or self.store_path or self.notebook_path:
            return
        path = self.shell.user_ns.get(VSCODE_NOTEBOOK_NAME)
        if not isinstance(path, str) or not path:
            return
        self.notebook_path = path
        try:
            self.notebook.switch_notebook(path)
        except Exception as exc:
            # Boundary: the history is optional, the kernel is not.
            self.log.exception("time travel could not switch to the notebook's store")
            self.notebook.announce(f"time travel: could not open the history of {path} "
                                  f"({type(exc).__name__}: {exc})")

    @property  # type: ignore[misc]
    @override
    def banner(self) -> str:  # type: ignore[override]
        base = super().banner
        extra = "".join(f"{e['message']}\n" for e in self.notebook.startup_events
                        if "message" in e)
        return f"{base}{extra}"

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
        # Tools run their own code with store_history false (VS Code's start-up code and
        # variable viewer): like silent executions, not commits the user would undo.
        recorded = not content.get("silent", False) and content.get("store_history", True)
        run = _CellRun(code=str(content.get("code", "")),
                       cell_id=cell_id if isinstance(cell_id, str) else None,
                       recorded=bool(recorded))
        token = _current_run.set(run)
        with self._running_lock:
            self._running += 1
        try:
            await super().execute_request(stream, ident, parent)
        finally:
            # The reply is out: a move sent from now on was meant for the finished cell (it
            # waits for the checkpoint below); one sent earlier was not (_on_comm_msg).
            self._last_cell_finished = time.time()
            try:
                # Comm requests meanwhile are answered "busy", as during the cell.
                self._follow_vscode_notebook()
                self._checkpoint(run)
            finally:
                with self._running_lock:
                    self._running -= 1
                _current_run.reset(token)

    @override
    async def dispatch_shell(self, msg: Any, /, *args: Any, **kwargs: Any) -> None:
        # The idle status is published at the end of the parent's dispatch; the main shell's
        # next request waits for this one's task (ipykernel's lock), so a snapshot taken here
        # records this cell's state alone, after the person saw the cell done.
        try:
            await super().dispatch_shell(msg, *args, **kwargs)
        finally:
            if threading.current_thread() is threading.main_thread():
                self.checkpoints.after_idle()

    @override
    async def do_execute(self, code: str, silent: bool, store_history: bool = True,
                         user_expressions: dict[str, Any] | None = None,
                         allow_stdin: bool = False, *, cell_meta: dict[str, Any] | None = None,
                         cell_id: str | None = None) -> dict[str, Any]:
        notices = self.notebook.notices
        if not silent and store_history and notices:
            print("\n".join(notices), file=sys.stderr, flush=True)
            notices.clear()
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

    def _python_source_or_code(self, code: str) -> str:
        source = self._python_source(code)
        return code if source is None else source

    def _source_that_ran(self, code: str) -> str | None:
        """Return the Python IPython ran for the cell just recorded (magics expanded).

        IPython keeps it in its input history; transforming the cell again costs ~0.3 ms,
        which adds up over the cells of a Run All.
        """
        history = getattr(self.shell, "history_manager", None)
        raw = getattr(history, "input_hist_raw", None)
        parsed = getattr(history, "input_hist_parsed", None)
        if raw and parsed and len(raw) == len(parsed) and raw[-1] == code:
            return str(parsed[-1])
        return self._python_source(code)

    def _python_source(self, code: str) -> str | None:
        """Return the Python IPython ran for a cell (magics expanded), None if unknown."""
        try:
            return str(self.shell.transform_cell(code))
        except Exception:
            # Part of the checkpoint boundary: IPython's transformers may raise on any input;
            # without the source every name is examined, which is slower but correct.
            return None

    def _checkpoint(self, run: _CellRun) -> None:
        timeline = self.notebook.timeline
        if timeline is None or run.uses_magic:
            return
        if not run.recorded:
            # Not recorded; but what it may have changed in place must not be trusted as
            # unchanged by the next undo.
            try:
                timeline.recorder.note_unrecorded(self.shell.user_ns, self._python_source(run.code))
            except Exception:  # checkpoint boundary: never fail an execution
                self.log.warning("time travel: could not read a silent execution", exc_info=True)
            return
        from timetravel_kernel.timeline import CellInfo

        cell = CellInfo(code=run.code, source=self._source_that_ran(run.code),
                        cell_id=run.cell_id, execution_count=run.execution_count)
        self._let_reply_out()
        self.checkpoints.after_cell(cell, status=run.status, duration=run.duration)

    def _under_running_cell(self) -> bool:
        """Whether output printed now appears under a cell (its request is still running)."""
        return threading.current_thread() is threading.main_thread() and self.is_busy()

    def _tell(self, message: str) -> None:
        # Printed while the cell's request is still the parent: it appears under the cell. A
        # checkpoint that reports later (a snapshot, a catch-up once idle: frontends drop
        # output for a finished request) is told under the next cell.
        if not self._under_running_cell():
            self.notebook.notices.append(message)
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
        notice = self._after_move(dict(request), response)
        if notice:
            self._tell(notice)
        return response

    def _after_move(self, request: object, response: Response) -> str:
        """Broadcast what a request did and the session's follow-up; return its notice.

        The one follow-up of a move, asked from a cell (a magic) or over the comm.
        """
        events, notice = self.notebook.after_move(request, response)
        for event in (*response.events, *events):
            self._broadcast(event)
        return notice

    def _on_comm_open(self, comm: Any, msg: dict[str, Any]) -> None:
        self._comms[comm.comm_id] = comm
        comm.on_msg(lambda message: self._on_comm_msg(comm, message))
        comm.on_close(lambda _message: self._comms.pop(comm.comm_id, None))
        for event in self.notebook.startup_events:
            self._send(comm, event)

    def _on_comm_msg(self, comm: Any, msg: dict[str, Any]) -> None:
        content = msg.get("content") if isinstance(msg, dict) else None
        data = content.get("data") if isinstance(content, dict) else None
        # A synchronous cell holds the shell channel: a move sent meanwhile arrives only now.
        sent = _sent_at(msg)
        response = self.handler.handle(
            data, sent_during_cell=sent is not None and sent < self._last_cell_finished)
        self._send(comm, response.reply)
        self._after_move(data, response)

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
        self.notebook.close()
