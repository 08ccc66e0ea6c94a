"""NotebookSession: the history of one notebook as a kernel or a tool lives with it (session layer).

The application between the Jupyter glue (``kernel/``) and the protocol: it opens the
notebook's store (falling back to a temporary one, never stopping the kernel), starts the
session and restores the previous state as the policy says, fetches from and pushes to the
remote, thins old states, applies the rebuild policy after a move, and replaces its store when
it must (VS Code names the notebook late; a store found damaged while restoring). It serves
its protocol handler (``handler``) whatever store it has now. What it has to say goes to
``notices`` (told under the next cell) and ``startup_events`` (sent to each comm that opens).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from timetravel_kernel.errors import (
    NotEnoughMemoryError,
    RemoteError,
    RemoteNotFoundError,
    StoreError,
    TimelineError,
)
from timetravel_kernel.protocol import ProtocolHandler
from timetravel_kernel.protocol.messages import format_commit
from timetravel_kernel.session import sentences
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
from timetravel_kernel.timeline import RetentionPolicy
from timetravel_kernel.timeline.retention import parse_age, parse_size

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterable, Mapping
    from logging import Logger

    from timetravel_kernel.protocol import Response
    from timetravel_kernel.protocol.messages import RemoteStatusJSON
    from timetravel_kernel.session.push_thread import PushThread
    from timetravel_kernel.timeline import Timeline, TimelineOptions

__all__ = ["NotebookSession", "SessionSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    """What a notebook's history session is configured with (the kernel fills it in).

    ``notebook_path`` keys the store (empty: unknown, then ``connection_key`` does) unless
    ``store_path`` names it outright; ``data_dir`` is Jupyter's (remote settings, the
    default store folder); ``env`` the environment the remote settings are read from.
    """

    store_dir: Path
    store_path: str = ""
    notebook_path: str = ""
    connection_key: str = ""
    timeline: TimelineOptions
    restore_after_crash: str = "restore"
    restore_after_restart: str = "offer"
    rebuild_unsaved: str = "ask"
    rebuild_budget: float = 60.0
    keep_newer_than: str = ""
    keep_last: int = 0
    thin_every: int = 0
    store_budget: str = ""
    remote: str = ""
    remote_trust: bool = False
    remote_key_file: str = ""
    data_dir: Path
    home: str = ""
    env: Mapping[str, str] | None = None


class NotebookSession:
    """The history session of one notebook (see the module docstring).

    Args:
        settings: how it is configured.
        namespace: the live namespace its timeline records.
        lock: the history lock, held around every use of the timeline.
        is_busy: whether a cell runs now (moves are refused then).
        transform_cell: a cell's code as the Python that runs (for rebuilds).
        log: where failures are logged beside what people are told.
    """

    def __init__(self, settings: SessionSettings, namespace: dict[str, object],
                 lock: threading.RLock, *, is_busy: Callable[[], bool],
                 transform_cell: Callable[[str], str], log: Logger) -> None:
        self.settings = settings
        self.notices: list[str] = []
        self.startup_events: list[Mapping[str, object]] = []
        self.notice: str | None = "time travel is starting"
        self.budget: int | None = None
        self._namespace = namespace
        self._lock = lock
        self._log = log
        self._opened = OpenedTimeline(None, None)
        self.thinner: BackgroundThinner | None = None
        self._push: PushThread | None = None
        self.handler = ProtocolHandler(self, namespace, is_busy=is_busy, lock=lock,
                                       transform_cell=transform_cell,
                                       rebuild_budget=settings.rebuild_budget,
                                       remote_status=self.remote_status)

    @property
    def timeline(self) -> Timeline | None:
        """The notebook's history now (None: off, not started, or it could not start)."""
        return self._opened.timeline

    # -- opening ------------------------------------------------------------------------
    def open(self, startup_names: Iterable[str] = ()) -> None:
        """Open the notebook's store, restore as the policy says, connect the remote.

        ``startup_names``: what startup files and ``exec_lines`` defined, hidden from the
        history like IPython's own names. Never raises: the history is optional, the kernel
        is not.
        """
        options = self.settings.timeline
        self.settings = replace(self.settings, timeline=replace(
            options, skip_names=options.skip_names | frozenset(startup_names)))
        remove_stale_temporaries()
        default = default_store_dir(self.settings.data_dir)
        if Path(self.settings.store_dir) == default:
            make_default_store_dir_private(default)
        try:
            path, purpose, key = self._store_location()
            self._opened = open_timeline_with_fallback(path, self.settings.timeline,
                                                       purpose=purpose, key=key)
            self.notice = self._opened.notice
            policy = self._retention_policy()
            self.budget = policy.budget
            self.thinner = BackgroundThinner(policy, self._lock)
            if self._opened.notice:
                self.announce(self._opened.notice)
            timeline = self._opened.timeline
            if timeline is not None:
                fetched = (self._opened.temporary is None and bool(self.settings.remote)
                           and self._connect_remote(timeline, path))
                self._start(timeline, fetched=fetched)
        except Exception as exc:
            # Boundary (STYLE.md): a history that cannot start leaves the kernel running.
            self._log.exception("time travel could not start")
            self.close()
            self.notice = sentences.could_not_start(exc)
            self.announce(self.notice)

    def _store_location(self) -> tuple[Path, str, str]:
        """Return the store's path, how to name its owner, and the file it is keyed by."""
        settings = self.settings
        notebook = os.path.abspath(settings.notebook_path) if settings.notebook_path else ""
        if settings.store_path:
            return (Path(settings.store_path),
                    f"kernel for {settings.notebook_path or settings.store_path}", notebook)
        if settings.notebook_path:
            return (store_path_for(settings.store_dir, settings.notebook_path),
                    f"kernel for {settings.notebook_path}", notebook)
        key = settings.connection_key or f"pid-{os.getpid()}"
        return (store_path_for(settings.store_dir, key), f"kernel for {os.path.basename(key)}",
                os.path.abspath(key))

    def _retention_policy(self) -> RetentionPolicy:
        """Return the retention settings as a policy; a setting that does not parse is off."""
        settings = self.settings
        older_than = budget = None
        try:
            older_than = parse_age(settings.keep_newer_than) if settings.keep_newer_than else None
            budget = parse_size(settings.store_budget) if settings.store_budget else None
        except ValueError as exc:
            self.announce(f"{sentences.PREFIX}a retention setting is ignored: {exc}")
        keep_last = settings.keep_last or None
        if keep_last is not None and older_than is None:
            older_than = 0.0
        if older_than is not None and keep_last is None:
            keep_last = 0
        return RetentionPolicy(keep_last=keep_last, older_than=older_than,
                               every=settings.thin_every or None, budget=budget)

    def _start(self, timeline: Timeline, *, fetched: bool = False) -> None:
        """Start this session's history and restore (or offer) the previous state."""
        crashed = timeline.previous_session_crashed
        restorable = timeline.restorable
        timeline.start(self._namespace)
        cell = sentences.cell_of(restorable)
        if timeline.lost_commits:
            self.announce(sentences.lost_states(timeline.lost_commits,
                                                timeline.lost_commits_is_a_lower_bound, cell))
        for spool in timeline.recovered:
            if spool.commit is None and spool.problem != "already committed by its kernel":
                self.announce(sentences.dropped_spool(spool))
        head = timeline.head
        if restorable is None or (head is not None and head.id == restorable.id):
            return
        # A state fetched from the remote is a session that ended elsewhere, as abruptly as
        # a crash from this machine's point of view (a rescheduled pod, a culled kernel).
        settings = self.settings
        policy = (settings.restore_after_crash if crashed or fetched
                  else settings.restore_after_restart)
        before = sentences.previous_session(fetched=fetched, crashed=crashed)
        if policy == "restore" and timeline.restore_interrupted:
            # Restoring it is what killed the previous kernel (out of memory, most likely):
            # trying again at every start would be a crash loop.
            self._offer(timeline, crashed, self._interrupted(timeline, cell))
        elif policy == "restore":
            self._restore(timeline, crashed, f"{before}; restored its state after {cell}")
        elif policy == "offer":
            self._offer(timeline, crashed, sentences.restore_offer(before, cell))

    def _offer(self, timeline: Timeline, crashed: bool, message: str) -> None:
        """Say (once, under the first cell) that the previous state can be restored."""
        self.startup_events.append({
            "event": "restore-available", "restorable": format_commit(timeline.restorable),
            "crashed": crashed, "message": message})
        self.notices.append(message)

    @staticmethod
    def _interrupted(timeline: Timeline, cell: str) -> str:
        restorable = timeline.restorable
        assert restorable is not None
        try:
            size: float | None = timeline.estimated_size(restorable.id)
        except (StoreError, TimelineError):
            size = None
        return sentences.interrupted_restore(cell, size, restorable.id.hex()[:10])

    def _restore(self, timeline: Timeline, crashed: bool, what: str) -> None:
        try:
            result = timeline.restore(self._namespace)
        except NotEnoughMemoryError as exc:
            self._offer(timeline, crashed,
                        f"{sentences.PREFIX}the previous state was not restored: {exc}")
            return
        except StoreError as exc:
            # The state's records cannot be read back: the store is damaged, not the state.
            # Only the text is kept: the traceback holds the store's iterators, and RocksDB
            # keeps its lock while they live, which would block moving the store aside.
            self._log.warning("time travel: restore failed", exc_info=True)
            self._replace_damaged_store(timeline, str(exc))
            return
        except Exception as exc:
            # Boundary: a state that cannot come back must not stop the kernel; it stays in
            # the history for %tt restore or a jump.
            self._log.warning("time travel: restore failed", exc_info=True)
            self.announce(sentences.restore_failed(what, exc))
            return
        message = sentences.restored(what, result)
        self.startup_events.append({
            "event": "restored", "head": format_commit(result.head), "crashed": crashed,
            "unrestored": dict(result.unrestored), "reconnected": list(result.reconnected),
            "message": message})
        self.notices.append(message)
        if result.unrestored and self._push is not None and (
                self.settings.rebuild_unsaved != "never"):
            # A rebuild re-runs earlier cells: their commits must be here before it is planned,
            # not only the latest state that came first from the remote.
            self._pull_history_now()
        events, notice = after_loss(self.handler, self.settings.rebuild_unsaved)
        self.startup_events += events
        if notice:
            self.notices.append(notice)

    def announce(self, message: str) -> None:
        """Tell the user once: in the next cell's output, the banner and a comm event."""
        self.notices.append(message)
        self.startup_events.append({"event": "warning", "message": message, "names": {}})

    # -- after moves and checkpoints ------------------------------------------------------
    def after_move(self, request: object, response: Response) -> tuple[list[Mapping[str, object]],
                                                                     str]:
        """After a request that moved the namespace: the rebuild policy's events and notice.

        A move settles what the startup offer was about: comms opened later need none.
        """
        if not response.events:
            return [], ""
        self.startup_events = [e for e in self.startup_events if e.get("event") == "warning"]
        if isinstance(request, dict) and request.get("op") == "rebuild":
            return [], ""
        return after_loss(self.handler, self.settings.rebuild_unsaved)

    def after_saved(self, timeline: Timeline) -> None:
        """After each durable commit: the background push and retention may act on it."""
        if self._push is not None:
            self._push.note_checkpoint()
        if self.thinner is not None:
            self.thinner.after_checkpoint(timeline)

    # -- the remote -----------------------------------------------------------------------
    def _connect_remote(self, timeline: Timeline, path: Path) -> bool:
        """Open the remote, pull what it has before the first cell, start background pushes.

        Returns whether the local HEAD moved to the remote's (the store was missing or behind).
        """
        from timetravel_kernel.remote import notebook_remote_name
        from timetravel_kernel.session.push_thread import PushThread
        from timetravel_kernel.session.remotes import open_remote

        settings = self.settings
        if not settings.notebook_path:
            self.announce(sentences.remote_not_used(
                "this kernel does not know its notebook's path (set "
                "TimeTravelKernel.notebook_path)"))
            return False
        try:
            name = notebook_remote_name(settings.notebook_path, settings.home)
            remote = open_remote(settings.remote, name, data_dir=settings.data_dir,
                                 env=settings.env or {},
                                 key_file=settings.remote_key_file or None,
                                 trust=settings.remote_trust)
        except RemoteError as exc:
            self.announce(sentences.remote_not_used(str(exc)))
            return False
        self._push = PushThread(remote, path, merge=self._merge_remote, log=self._log)
        fetched = False
        try:
            # Only what the latest state needs: the rest of the history follows in the
            # background (the first push finds it missing and merges it).
            report = remote.pull(timeline.object_store, move_head=True, only_head=True)
        except RemoteNotFoundError:
            pass  # nothing pushed yet: the first checkpoint creates the history there
        except (RemoteError, StoreError) as exc:
            self.announce(f"{sentences.PREFIX}could not fetch this notebook's history from "
                          f"{remote.url} ({exc}); continuing with the local history")
        else:
            timeline.reload_history()
            fetched = report.head_moved
        self._push.start()
        return fetched

    def _merge_remote(self) -> bool:
        """Pull the remote's states into the live store (from the push thread).

        Records are written beside the running kernel (RocksDB takes concurrent writers);
        the history lock is held only for the commits and the re-read of the history.
        """
        timeline, push = self.timeline, self._push
        if timeline is None or push is None:
            return False
        report = push.remote.pull(timeline.object_store, move_head=False,
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
            self._log.warning("time travel: could not fetch the history from the remote: %s",
                              exc)

    def remote_status(self) -> RemoteStatusJSON | None:
        """The ``remote`` part of ``status`` (None: no remote); a state being saved counts."""
        if self._push is None:
            return None
        status = self._push.status()
        timeline = self.timeline
        saving = len(timeline.recorder.saving) if timeline is not None else 0
        return {"url": status.url, "unpushed": status.unpushed + saving, "error": status.error,
                "last_push": status.last_push}

    def remote_command(self, op: str) -> str:
        """Run ``%tt push`` or ``%tt pull`` now; return what happened, in a sentence."""
        push, timeline = self._push, self.timeline
        if push is None or timeline is None:
            return sentences.no_remote()
        try:
            if op == "push":
                pushed = push.push_now()
                return sentences.pushed(pushed.commits, pushed.bytes_sent, pushed.requests,
                                        push.remote.url)
            with self._lock:
                pulled = push.remote.pull(timeline.object_store, move_head=False)
                timeline.reload_history()
        except RemoteError as exc:
            return f"{sentences.PREFIX}{op} failed: {exc}"
        return sentences.pulled(pulled.commits, push.remote.url, pulled.head)

    # -- replacing and closing the store ----------------------------------------------------
    def switch_notebook(self, path: str) -> None:
        """Key the history by ``path`` from now on (VS Code names the notebook late).

        The store keyed by the connection file is dropped (nothing can find it again) and the
        notebook's own is opened, with the usual restore.
        """
        self.settings = replace(self.settings, notebook_path=path)
        previous = self._opened
        self.close(keep_notice=True)
        drop = previous.temporary or (previous.path if previous.created else None)
        if drop is not None:
            shutil.rmtree(drop, ignore_errors=True)
        self.open()

    def _replace_damaged_store(self, timeline: Timeline, reason: str) -> None:
        """Move a store found damaged while restoring aside and start a new history."""
        timeline.close()
        path, purpose, key = self._store_location()
        previous = self._opened
        if previous.temporary is not None:
            opened = open_timeline_with_fallback(path, self.settings.timeline, purpose=purpose,
                                                 key=key)
            shutil.rmtree(previous.temporary, ignore_errors=True)
        else:
            opened = move_aside_and_reopen(path, self.settings.timeline, purpose=purpose,
                                           reason=reason, key=key)
        self._opened = opened
        self.notice = opened.notice
        if opened.notice:
            self.announce(opened.notice)
        if opened.timeline is not None:
            opened.timeline.start(self._namespace)

    def close(self, *, keep_notice: bool = False) -> None:
        """Commit what is being saved, mark the session closed cleanly, stop the threads.

        Never raises (shutdown must go on). A temporary history is deleted.
        """
        opened, self._opened = self._opened, OpenedTimeline(None, None)
        if not keep_notice:
            self.notice = "time travel is closed (the kernel is shutting down)"
        if self.thinner is not None:
            self.thinner.join()
        if self._push is not None:
            self._push.stop()
            self._push = None
        try:
            if opened.timeline is not None:
                with self._lock:
                    opened.timeline.close()
        except Exception:
            # Shutdown boundary: a failing close must not stop the kernel from exiting.
            self._log.warning("time travel: closing the store failed", exc_info=True)
        finally:
            if opened.temporary is not None:
                shutil.rmtree(opened.temporary, ignore_errors=True)
