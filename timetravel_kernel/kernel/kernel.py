"""TimeTravelKernel: IPythonKernel plus a checkpoint after every cell and the comm protocol.

The kernel is a thin facade: it decides *when* (after each non-silent execution, before the
next request), the timeline decides *what*, the protocol handler answers the frontends
(kernel layer).
"""

from __future__ import annotations

import contextvars
import datetime
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipykernel.ipkernel import IPythonKernel
from jupyter_core.paths import jupyter_data_dir
from typing_extensions import override

from timetravel_kernel.errors import (
    NotEnoughMemoryError,
    RemoteError,
    RemoteNotFoundError,
    StoreError,
    TimelineError,
)
from timetravel_kernel.kernel.checkpoints import CellCheckpoints
from timetravel_kernel.kernel.magics import register_magics
from timetravel_kernel.kernel.settings import TimeTravelSettings
from timetravel_kernel.protocol import COMM_TARGET, ProtocolHandler
from timetravel_kernel.protocol.messages import (
    format_commit,
)
from timetravel_kernel.session.rebuild_policy import after_loss
from timetravel_kernel.session.storage import (
    OpenedTimeline,
    default_store_dir,
    make_default_store_dir_private,
    move_aside_and_reopen,
    open_timeline_with_fallback,
    remove_stale_temporaries,
    store_path_for,
)
from timetravel_kernel.session.thinning import BackgroundThinner

if TYPE_CHECKING:
    from collections.abc import Mapping

    from timetravel_kernel.protocol import Response
    from timetravel_kernel.protocol.messages import RemoteStatusJSON
    from timetravel_kernel.session.push_thread import PushThread
    from timetravel_kernel.timeline import (
        BackgroundOptions,
        RetentionPolicy,
        Timeline,
    )

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
        self._notices: list[str] = []
        self._startup_events: list[Mapping[str, object]] = []
        self._last_cell_finished = 0.0
        self._thinner: BackgroundThinner | None = None
        self._opened = OpenedTimeline(None, None, "time travel is starting")
        self._sync: PushThread | None = None
        self.handler = ProtocolHandler(None, self.shell.user_ns, is_busy=self.is_busy,
                                       lock=self._lock, notice="time travel is starting",
                                       transform_cell=self._python_source_or_code,
                                       rebuild_budget=self.rebuild_budget,
                                       remote_status=self._remote_status)
        self.checkpoints = CellCheckpoints(
            timeline=lambda: self.handler.timeline, namespace=self.shell.user_ns,
            options=self._background_options, lock=self._lock, tell=self._tell,
            broadcast=self._broadcast, after_saved=self._after_saved, log=self.log,
            iopub_thread=lambda: getattr(self, "iopub_thread", None))
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

    def _store_location(self) -> tuple[Path, str, str]:
        """Return the store's path, how to name its owner, and the file it is keyed by."""
        notebook = os.path.abspath(self.notebook_path) if self.notebook_path else ""
        if self.store_path:
            return (Path(self.store_path), f"kernel for {self.notebook_path or self.store_path}",
                    notebook)
        if self.notebook_path:
            return (store_path_for(self.store_dir, self.notebook_path),
                    f"kernel for {self.notebook_path}", notebook)
        parent = self.parent
        key = getattr(parent, "abs_connection_file", None) or getattr(
            parent, "connection_file", "") or f"pid-{os.getpid()}"
        return (store_path_for(self.store_dir, key), f"kernel for {os.path.basename(key)}",
                os.path.abspath(key))

    def _timeline_options(self) -> Any:
        from timetravel_kernel.timeline import TimelineOptions

        hidden = set(IPYTHON_HIDDEN_NAMES) | set(self.shell.user_ns_hidden) | set(self.skip_names)
        return TimelineOptions(
            skip_names=frozenset(hidden),
            skip_pattern=IPYTHON_HIDDEN_PATTERN,
            skip_types=frozenset(self.skip_types),
            max_covar_bytes=self.max_var_bytes or None,
        )

    def _retention_policy(self) -> RetentionPolicy:
        """Return the retention settings as a policy; a setting that does not parse is off."""
        from timetravel_kernel.timeline import RetentionPolicy
        from timetravel_kernel.timeline.retention import parse_age, parse_size

        older_than = budget = None
        try:
            older_than = parse_age(self.keep_newer_than) if self.keep_newer_than else None
            budget = parse_size(self.store_budget) if self.store_budget else None
        except ValueError as exc:
            self._announce(f"time travel: a retention setting is ignored: {exc}")
        keep_last = self.keep_last or None
        if keep_last is not None and older_than is None:
            older_than = 0.0
        if older_than is not None and keep_last is None:
            keep_last = 0
        return RetentionPolicy(keep_last=keep_last, older_than=older_than,
                               every=self.thin_every or None, budget=budget)

    def _open_history(self) -> None:
        remove_stale_temporaries()
        default = default_store_dir(jupyter_data_dir())
        if Path(self.store_dir) == default:
            make_default_store_dir_private(default)
        try:
            path, purpose, key = self._store_location()
            opened = open_timeline_with_fallback(path, self._timeline_options(), purpose=purpose,
                                                 key=key)
            self._opened = opened
            self.handler.timeline = opened.timeline
            self.handler.notice = opened.notice
            policy = self._retention_policy()
            self.handler.budget = policy.budget
            self._thinner = BackgroundThinner(policy, self._lock)
            if opened.notice:
                self._announce(opened.notice)
            if opened.timeline is not None:
                fetched = False
                if opened.temporary is None and self.remote:
                    fetched = self._connect_remote(opened.timeline, path)
                self._start_session(opened.timeline, fetched=fetched)
        except Exception as exc:
            # Checkpoint boundary (STYLE.md): the history is optional, the kernel is not.
            self.log.exception("time travel could not start")
            self.close_history()
            message = f"time travel is off: it could not start ({type(exc).__name__}: {exc})"
            self.handler.notice = message
            self._announce(message)

    def _start_session(self, timeline: Timeline, *, fetched: bool = False) -> None:
        crashed = timeline.previous_session_crashed
        restorable = timeline.restorable
        timeline.start(self.shell.user_ns)
        cell = ("its start" if restorable is None or not restorable.execution_count
                else f"cell [{restorable.execution_count}]")
        if timeline.lost_commits:
            lost = timeline.lost_commits
            count = f"at least {lost}" if timeline.lost_commits_is_a_lower_bound else str(lost)
            self._announce(
                f"time travel: the last {count} saved state{'s' if lost > 1 else ''} could not "
                "be recovered (the store's log was damaged); the newest intact state is the "
                f"one after {cell}")
        self._announce_recovered(timeline)
        head = timeline.head
        if restorable is None or (head is not None and head.id == restorable.id):
            return
        # A state fetched from the remote is a session that ended elsewhere, as abruptly as
        # a crash from this machine's point of view (a rescheduled pod, a culled kernel).
        policy = self.restore_after_crash if crashed or fetched else self.restore_after_restart
        before = ("its latest state was fetched from the remote" if fetched else
                  "the previous kernel crashed" if crashed else "the previous session ended")
        if policy == "restore" and timeline.restore_interrupted:
            # Restoring it is what killed the previous kernel (out of memory, most likely):
            # trying again at every start would be a crash loop.
            self._offer_restore(timeline, crashed, _interrupted_restore(timeline, cell))
        elif policy == "restore":
            self._restore_at_start(timeline, crashed, f"{before}; restored its state after {cell}")
        elif policy == "offer":
            self._offer_restore(timeline, crashed, (
                f"time travel: {before}; its state after {cell} can be restored with "
                "%timetravel restore (or the history panel)"))

    def _offer_restore(self, timeline: Timeline, crashed: bool, message: str) -> None:
        """Say (once, under the first cell) that the previous state can be restored."""
        self._startup_events.append({
            "event": "restore-available", "restorable": format_commit(timeline.restorable),
            "crashed": crashed, "message": message})
        self._notices.append(message)

    def _announce_recovered(self, timeline: Timeline) -> None:
        """Say which states the previous kernel's snapshots saved after it died, if any."""
        from timetravel_kernel.timeline import describe_cell

        saved = [r.commit for r in timeline.recovered if r.commit is not None]
        dropped = [r for r in timeline.recovered if r.commit is None
                   and r.problem != "already committed by its kernel"]
        if saved:
            cells = ", ".join(describe_cell(c) for c in saved)
            self.log.info("time travel: states saved by snapshots of the dead kernel: %s", cells)
        for spool in dropped:
            count = spool.header.execution_count if spool.header is not None else None
            cell = f"cell [{count}]" if count is not None else "a cell"
            self._announce(f"time travel: the state after {cell}, which the previous kernel's "
                           f"snapshot saved after it died, could not be used ({spool.problem})")

    def _connect_remote(self, timeline: Timeline, path: Path) -> bool:
        """Open the remote, pull what it has before the first cell, start background pushes.

        Returns whether the local HEAD moved to the remote's (the store was missing or behind).
        """
        from timetravel_kernel.remote import notebook_remote_name
        from timetravel_kernel.session.push_thread import PushThread
        from timetravel_kernel.session.remotes import open_remote

        if not self.notebook_path:
            self._announce("time travel: the remote is not used: this kernel does not know its "
                           "notebook's path (set TimeTravelKernel.notebook_path)")
            return False
        try:
            name = notebook_remote_name(self.notebook_path, os.path.expanduser("~"))
            remote = open_remote(self.remote, name, data_dir=jupyter_data_dir(), env=os.environ,
                                 key_file=self.remote_key_file or None, trust=self.remote_trust)
        except RemoteError as exc:
            self._announce(f"time travel: the remote is not used: {exc}")
            return False
        self._sync = PushThread(remote, path, merge=self._merge_remote, log=self.log)
        fetched = False
        try:
            # Only what the latest state needs: the rest of the history follows in the
            # background (the first push finds it missing and merges it).
            report = remote.pull(timeline.object_store, move_head=True, only_head=True)
        except RemoteNotFoundError:
            pass  # nothing pushed yet: the first checkpoint creates the history there
        except (RemoteError, StoreError) as exc:
            self._announce(f"time travel: could not fetch this notebook's history from "
                           f"{remote.url} ({exc}); continuing with the local history")
        else:
            timeline.reload_history()
            fetched = report.head_moved
        self._sync.start()
        return fetched

    def _merge_remote(self) -> bool:
        """Pull the remote's states into the live store (from the push thread).

        Records are written beside the running kernel (RocksDB takes concurrent writers);
        the history lock is held only for the commits and the re-read of the history.
        """
        timeline, sync = self.handler.timeline, self._sync
        if timeline is None or sync is None:
            return False
        report = sync.remote.pull(timeline.object_store, move_head=False,
                                  commit_lock=self._lock)
        if report.commits:
            with self._lock:
                timeline.reload_history()
        return True

    def _pull_history_now(self) -> None:
        """Fetch the rest of the remote's history before going on (what the push thread does)."""
        try:
            self._merge_remote()
        except (RemoteError, StoreError) as exc:
            self.log.warning("time travel: could not fetch the history from the remote: %s", exc)

    def _remote_status(self) -> RemoteStatusJSON | None:
        if self._sync is None:
            return None
        status = self._sync.status()
        # A state still being saved is not pushed either.
        timeline = self.handler.timeline
        saving = len(timeline.recorder.saving) if timeline is not None else 0
        return {"url": status.url, "unpushed": status.unpushed + saving, "error": status.error,
                "last_push": status.last_push}

    def _background_options(self) -> BackgroundOptions:
        from timetravel_kernel.timeline import BackgroundOptions

        return BackgroundOptions(mode=self.checkpoint_mode,
                                 hang_seconds=self.checkpoint_hang_seconds,
                                 max_pending=self.checkpoint_max_pending)

    def _after_saved(self, timeline: Timeline) -> None:
        """After each durable commit: the background push and retention may act on it."""
        if self._sync is not None:
            self._sync.note_checkpoint()
        if self._thinner is not None:
            self._thinner.after_checkpoint(timeline)

    def save_now(self) -> None:
        """Return once every cell run so far is committed (shutdown; tools before a kill)."""
        self.checkpoints.save_now()

    def remote_command(self, op: str) -> str:
        """Run ``%tt push`` or ``%tt pull`` now; return what happened, in a sentence."""
        run = _current_run.get()
        if run is not None:
            run.uses_magic = True
        sync, timeline = self._sync, self.handler.timeline
        if sync is None or timeline is None:
            return ("time travel: no remote for this kernel; set TimeTravelKernel.remote (or "
                    "TIMETRAVEL_REMOTE) and restart it")
        try:
            if op == "push":
                pushed = sync.push_now()
                return (f"time travel: pushed {pushed.commits} states ({pushed.bytes_sent} "
                        f"bytes, {pushed.requests} requests) to {sync.remote.url}")
            with self._lock:
                pulled = sync.remote.pull(timeline.object_store, move_head=False)
                timeline.reload_history()
        except RemoteError as exc:
            return f"time travel: {op} failed: {exc}"
        newest = f"; the remote's latest state is {pulled.head[:10]} (%tt checkout " \
                 f"{pulled.head[:10]})" if pulled.head else ""
        return f"time travel: fetched {pulled.commits} states from {sync.remote.url}{newest}"

    def _restore_at_start(self, timeline: Timeline, crashed: bool, what: str) -> None:
        damage: str | None = None
        try:
            result = timeline.restore(self.shell.user_ns)
        except NotEnoughMemoryError as exc:
            self._offer_restore(timeline, crashed, f"time travel: the previous state was not "
                                f"restored: {exc}")
            return
        except StoreError as exc:
            # The state's records cannot be read back: the store is damaged, not the state.
            # Only the text is kept: the traceback holds the store's iterators, and RocksDB
            # keeps its lock while they live, which would block moving the store aside.
            self.log.warning("time travel: restore failed", exc_info=True)
            damage = str(exc)
        except Exception as exc:
            # Checkpoint boundary: a state that cannot come back must not stop the kernel; it
            # stays in the history for %tt restore or a jump.
            self.log.warning("time travel: restore failed", exc_info=True)
            self._announce(f"time travel: {what.replace('restored', 'restoring')} failed "
                           f"({type(exc).__name__}: {exc}); it stays in the history "
                           "(%timetravel log)")
            return
        if damage is not None:
            self._replace_damaged_store(timeline, damage)
            return
        missing = ""
        if result.unrestored:
            missing = "; could not restore: " + ", ".join(
                f"{name} ({why})" for name, why in sorted(result.unrestored.items()))
        reconnected = f"; reconnected {', '.join(result.reconnected)}" if result.reconnected \
            else ""
        message = f"time travel: {what} ({len(result.loaded)} names){reconnected}{missing}"
        self._startup_events.append({
            "event": "restored", "head": format_commit(result.head), "crashed": crashed,
            "unrestored": dict(result.unrestored), "reconnected": list(result.reconnected),
            "message": message})
        self._notices.append(message)
        if result.unrestored and self._sync is not None and self.rebuild_unsaved != "never":
            # A rebuild re-runs earlier cells: their commits must be here before it is planned,
            # not only the latest state that came first from the remote.
            self._pull_history_now()
        events, notice = after_loss(self.handler, self.rebuild_unsaved)
        self._startup_events += events
        if notice:
            self._notices.append(notice)

    def _follow_vscode_notebook(self) -> None:
        """Key the store by the notebook once VS Code names it, and restore its state.

        VS Code's Jupyter extension sets no ``JPY_SESSION_NAME``; its start-up code assigns
        the notebook's path to ``__vsc_ipynb_file__`` before any user cell runs. Until then
        the store is keyed by the connection file, which changes with every kernel process:
        that store is dropped (nothing can find it again) and the notebook's own is opened,
        with the usual restore, so crash restore works in VS Code too.
        """
        if not self.enabled or self.store_path or self.notebook_path:
            return
        path = self.shell.user_ns.get(VSCODE_NOTEBOOK_NAME)
        if not isinstance(path, str) or not path:
            return
        self.notebook_path = path
        try:
            self._switch_store()
        except Exception as exc:
            # Checkpoint boundary: the history is optional, the kernel is not.
            self.log.exception("time travel could not switch to the notebook's store")
            self._announce(f"time travel: could not open the history of {path} "
                           f"({type(exc).__name__}: {exc})")

    def _switch_store(self) -> None:
        timeline, previous = self.handler.timeline, self._opened
        self.handler.timeline = None
        if self._thinner is not None:
            self._thinner.join()
        if timeline is not None:
            with self._lock:
                timeline.close()
        drop = previous.temporary or (previous.path if previous.created else None)
        if drop is not None:
            shutil.rmtree(drop, ignore_errors=True)
        self._opened = OpenedTimeline(None, None)
        self._open_history()

    def _replace_damaged_store(self, timeline: Timeline, reason: str) -> None:
        """Move a store found damaged while restoring aside and start a new history."""
        self.handler.timeline = None
        timeline.close()
        path, purpose, key = self._store_location()
        if self._opened.temporary is not None:
            opened = open_timeline_with_fallback(path, self._timeline_options(), purpose=purpose,
                                                 key=key)
        else:
            opened = move_aside_and_reopen(path, self._timeline_options(), purpose=purpose,
                                           reason=reason, key=key)
        if self._opened.temporary is not None:
            shutil.rmtree(self._opened.temporary, ignore_errors=True)
        self._opened = opened
        self.handler.timeline = opened.timeline
        self.handler.notice = opened.notice
        if opened.notice:
            self._announce(opened.notice)
        if opened.timeline is not None:
            opened.timeline.start(self.shell.user_ns)

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
        if not silent and store_history and self._notices:
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
        timeline = self.handler.timeline
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
        notice = self._after_move(dict(request), response)
        if notice:
            self._tell(notice)
        return response

    def _after_move(self, request: object, response: Response) -> str:
        """Broadcast what a request did; after a move, apply the rebuild policy.

        The one follow-up of a move, asked from a cell (a magic) or over the comm; returns the
        policy's notice (the events already say it to comms).
        """
        for event in response.events:
            self._broadcast(event)
        if not response.events:
            return ""
        # A move settles what the startup offer was about: comms opened later need none.
        self._startup_events = [e for e in self._startup_events if e.get("event") == "warning"]
        if isinstance(request, dict) and request.get("op") == "rebuild":
            return ""
        events, notice = after_loss(self.handler, self.rebuild_unsaved)
        for event in events:
            self._broadcast(event)
        return notice

    def _on_comm_open(self, comm: Any, msg: dict[str, Any]) -> None:
        self._comms[comm.comm_id] = comm
        comm.on_msg(lambda message: self._on_comm_msg(comm, message))
        comm.on_close(lambda _message: self._comms.pop(comm.comm_id, None))
        for event in self._startup_events:
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
        timeline = self.handler.timeline
        self.handler.timeline = None
        self.handler.notice = "time travel is closed (the kernel is shutting down)"
        if self._thinner is not None:
            self._thinner.join()
        if self._sync is not None:
            self._sync.stop()
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


def _interrupted_restore(timeline: Timeline, cell: str) -> str:
    """Return what to say when the previous kernel died while restoring the same state."""
    restorable = timeline.restorable
    assert restorable is not None
    commit = restorable.id.hex()[:10]
    try:
        size = f" (about {timeline.estimated_size(restorable.id) / 1e9:.1f} GB)"
    except (StoreError, TimelineError):
        size = ""
    return (f"time travel: the previous kernel died while restoring the state after {cell}"
            f"{size}, so it is not restored again by itself: restore it with %tt restore "
            f"once memory is free, or some names alone with %tt get NAME@{commit} "
            f"(%tt vars {commit} lists them with their sizes)")
