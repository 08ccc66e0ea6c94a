"""Rebuild: run a lineage plan again, each cell on its inputs as they were (timeline layer).

A cell runs in the user's namespace itself, not in a copy: a generator or a function it makes
must look its globals up where the original did (``(x * k for x in data)`` takes ``data`` when
made and reads ``k`` from the live namespace whenever it runs). For the length of the cell the
names it reads are swapped for their stored versions as of the commit before it, and after it
every binding it made or changed is put back; only the wanted values leave the rebuild. Cell
output is swallowed, ``open`` refuses to truncate a file, and a time budget, Ctrl-C or any
error stop the rebuild, leaving the names it could not make unrestored with the reason.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import signal
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from timetravel_kernel.errors import SerializationError, StoreError, TimelineError
from timetravel_kernel.state import load_stored, names_read
from timetravel_kernel.state.revival import revive_value
from timetravel_kernel.timeline.lineage import plan_rebuild
from timetravel_kernel.timeline.loading import CheckoutLoader
from timetravel_kernel.timeline.results import describe_cell

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from timetravel_kernel.ids import CommitId, CovarId
    from timetravel_kernel.state import TimelineOptions
    from timetravel_kernel.store import Commit, NamespaceTree, ObjectStore
    from timetravel_kernel.timeline.history import CommitIndex
    from timetravel_kernel.timeline.lineage import RebuildPlan, RebuildStep
    from timetravel_kernel.timeline.livestate import LiveState

__all__ = ["RebuildResult", "Rebuilds", "run_rebuild"]

Namespace = dict[str, object]
# Rounds of following the notebook functions a cell calls into the globals they read.
_FOLLOW_ROUNDS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildResult:
    """What a rebuild brought back (``values``) and why the rest could not come back."""

    values: Mapping[str, object]
    failed: Mapping[str, str]
    cells_run: int
    seconds: float


class _Stop(BaseException):
    """The rebuild must stop (budget spent); a BaseException so user code cannot swallow it."""


class _Versions:
    """Stored values of one commit's tree, loaded once per version (a ``NameResolver``)."""

    def __init__(self, store: ObjectStore, tree: NamespaceTree, namespace: Namespace,
                 loaded: dict[CovarId, tuple[object, ...]], live: Namespace) -> None:
        self.store = store
        self._tree = tree
        self._namespace = namespace
        self._loaded = loaded
        self.live = live  # unsaveable values the rebuild made so far
        self._loading: set[str] = set()

    def has_saved(self, name: str) -> bool:
        covar_of = self._tree.get(name)
        return covar_of is not None and self.store.load_covar(covar_of).serializer != "unsaved"

    def value(self, name: str) -> object:
        covar_of = self._tree.get(name)
        if covar_of is None or name in self._loading:
            if name in self._namespace:  # a module-level reference the state does not version
                return self._namespace[name]
            raise SerializationError(name, "", f"it refers to {name!r}, which is not stored")
        values = self._loaded.get(covar_of)
        if values is None:
            covar = self.store.load_covar(covar_of)
            if covar.serializer == "unsaved":
                if name in self.live:  # a saved input refers to it: the one rebuilt so far
                    return self.live[name]
                raise SerializationError(name, "", f"{name} is not saved in that state")
            self._loading.add(name)
            try:
                values = load_stored(self.store, covar, self)
            finally:
                self._loading.discard(name)
            self._loaded[covar_of] = values
            return values[covar.members.index(name)]
        covar = self.store.load_covar(covar_of)
        return values[covar.members.index(name)]

    def namespace(self) -> Namespace:
        return self._namespace


def _refusing_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
    """``open`` for cells run again: never truncate or replace an existing file."""
    if ("w" in mode or "x" in mode) and isinstance(file, (str, bytes, os.PathLike)) and \
            os.path.exists(file):
        raise PermissionError(
            f"a rebuild does not run open({os.fsdecode(file)!r}, {mode!r}) again: it would "
            "truncate the file")
    return builtins.open(file, mode, *args, **kwargs)  # type: ignore[call-overload]


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise ``_Stop`` in the running code after ``seconds`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def stop(_signum: int, _frame: object) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Runner:
    """Runs the steps of a plan, keeping the values it rebuilds in ``live``."""

    def __init__(self, store: ObjectStore, namespace: Namespace,
                 get_commit: Callable[[CommitId], Commit],
                 transform: Callable[[str], str]) -> None:
        self.store = store
        self._namespace = namespace
        self._get_commit = get_commit
        self._transform = transform
        self._loaded: dict[CovarId, tuple[object, ...]] = {}
        self.live: Namespace = {}

    def reconnect(self, step: RebuildStep) -> None:
        for name, description in zip(step.names, step.revival, strict=True):
            try:
                self.live[name] = revive_value(description)
            except (SerializationError, OSError) as exc:
                raise _StepFailed(f"it could not be reconnected: {exc}") from exc

    def run_cell(self, commit: Commit, seconds_left: float) -> None:
        source = self._transform(commit.code)
        try:
            code = compile(source, f"<rebuild of {describe_cell(commit)}>", "exec")
        except (SyntaxError, ValueError) as exc:
            raise _StepFailed(f"{describe_cell(commit)} does not compile here: {exc}") from exc
        assert commit.parent is not None
        parent = self._get_commit(commit.parent)
        versions = _Versions(self.store, self.store.load_tree(parent.tree), self._namespace,
                             self._loaded, self.live)
        seeds, hidden = self._inputs(source, versions, parent)
        before = dict(self._namespace)
        error: BaseException | None = None
        try:
            for name in hidden:
                dict.pop(self._namespace, name, None)
            dict.update(self._namespace, seeds)
            dict.__setitem__(self._namespace, "open", _refusing_open)
            sink = io.StringIO()
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
                    _deadline(seconds_left):
                exec(code, self._namespace)
        except (_Stop, KeyboardInterrupt):
            raise
        except Exception as exc:  # the cell's own error: reported as the reason
            error = exc
        finally:
            for name in (*commit.unsaved_made, *commit.unsaved_used):
                if name in self._namespace:
                    self.live[name] = dict.__getitem__(self._namespace, name)
            _put_back(self._namespace, before)
        if error is not None and commit.status != "error":
            what = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            raise _StepFailed(f"{describe_cell(commit)} raised {what} when run again")

    def _inputs(self, source: str, versions: _Versions,
                parent: Commit) -> tuple[Namespace, set[str]]:
        """Return the stored versions of what the cell reads, and the names to hide."""
        tree = self.store.load_tree(parent.tree)
        seeds: Namespace = {}
        hidden: set[str] = set()
        wanted: set[str] | None = set()
        for _ in range(_FOLLOW_ROUNDS):
            read = names_read(source, {**self._namespace, **seeds})
            wanted = None if read is None else {n for n in read if n in tree}
            todo = set(tree) if wanted is None else wanted - seeds.keys() - hidden
            if not todo:
                break
            for name in sorted(todo):
                self._seed(name, versions, seeds, hidden)
            if wanted is None:
                break
        return seeds, hidden

    def _seed(self, name: str, versions: _Versions, seeds: Namespace, hidden: set[str]) -> None:
        try:
            saved = versions.has_saved(name)
            if saved:
                seeds[name] = versions.value(name)
        except (SerializationError, StoreError) as exc:
            raise _StepFailed(f"its input {name} could not be loaded: {exc}") from exc
        if saved:
            return
        if name in self.live:
            seeds[name] = self.live[name]
        else:
            hidden.add(name)


def _put_back(namespace: Namespace, before: Namespace) -> None:
    """Make every binding of ``namespace`` what it was in ``before`` (same objects)."""
    for name in [n for n in namespace if n not in before]:
        dict.pop(namespace, name, None)
    for name, value in before.items():
        if dict.get(namespace, name, _put_back) is not value:
            dict.__setitem__(namespace, name, value)


class _StepFailed(Exception):
    """One step of a rebuild failed; the message is the reason given for its names."""


def _failed_names(plan: RebuildPlan, step: int, pending: Iterable[str]) -> list[str]:
    return [n for n in pending if step in plan.needs[n]]


def run_rebuild(
    plan: RebuildPlan,
    namespace: Namespace,
    *,
    store: ObjectStore,
    get_commit: Callable[[CommitId], Commit],
    transform: Callable[[str], str] = str,
    budget: float = 60.0,
) -> RebuildResult:
    """Run ``plan``; return the rebuilt values (not yet in ``namespace``) and the failures.

    Never raises for a cell's failure, the budget running out or Ctrl-C: the names concerned
    are reported failed with the reason, and ``namespace`` is as it was.
    """
    started = time.perf_counter()
    runner = _Runner(store, namespace, get_commit, transform)
    failed: dict[str, str] = dict(plan.impossible)
    pending = set(plan.names)
    cells_run = 0
    for index, step in enumerate(plan.steps):
        if not any(index in plan.needs[n] for n in pending):
            continue  # everything that needed it already failed
        left = budget - (time.perf_counter() - started)
        where = describe_cell(step.commit) if step.commit is not None else "a reconnect"
        try:
            if left <= 0:
                raise _Stop
            if step.commit is None:
                runner.reconnect(step)
            else:
                cells_run += 1
                runner.run_cell(step.commit, left)
        except _StepFailed as exc:
            for name in _failed_names(plan, index, pending):
                failed[name] = str(exc)
                pending.discard(name)
        except (_Stop, KeyboardInterrupt) as exc:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else \
                f"the rebuild ran past its time budget of {budget:g} s"
            for name in [n for n in pending if max(plan.needs[n]) >= index]:
                failed[name] = f"{why} (in {where})"
                pending.discard(name)
            break
    values = {}
    for name in sorted(pending):
        if name in runner.live:
            values[name] = runner.live[name]
        else:
            failed[name] = "the recorded cells ran again but did not make it"
    return RebuildResult(values=values, failed=failed, cells_run=cells_run,
                         seconds=time.perf_counter() - started)


@dataclass(slots=True)
class Rebuilds:
    """Plans and runs the rebuild of what the last checkout of a timeline left behind.

    Attributes:
        live: the live state (what was lost, where; the versions rebuilt values stand for).
        store: where the recorded cells' inputs are read from.
        options: what is saved (to load again the holders of rebuilt values).
        history: the commit index.
    """

    live: LiveState
    store: ObjectStore
    options: TimelineOptions
    history: CommitIndex

    def plan(self, names: Iterable[str] | None = None) -> RebuildPlan:
        """Return how the lost names (or ``names`` of them) would be rebuilt.

        Raises:
            TimelineError: nothing was lost.
        """
        live = self.live
        if live.lost_at is None or not live.lost:
            raise TimelineError("nothing to rebuild: every value of this state is here")
        return self._plan(live.lost_at, live.lost if names is None else names)

    def _plan(self, at: Commit, names: Iterable[str]) -> RebuildPlan:
        """Plan the rebuild of ``names``, less the values the checkout failed to reconnect.

        Running their cells again would not find the file or the database either.
        """
        wanted = set(names)
        failed = {n: why for n, why in self.live.unreconnected.items() if n in wanted}
        plan = plan_rebuild(self.store, self.history.get, at, wanted - failed.keys())
        return replace(plan, impossible={**plan.impossible, **failed}) if failed else plan

    def run(self, namespace: Namespace, names: Iterable[str] | None, *,
            transform: Callable[[str], str], budget: float) -> RebuildResult:
        """Run the recorded cells that make the lost values; adopt what they made.

        Raises:
            TimelineError: nothing was lost.
        """
        plan = self.plan(names)
        present = {n for n in plan.names if n in namespace}
        if present:  # the user has made these again since: theirs win
            plan = self._plan(plan.at, [n for n in plan.names if n not in present])
        result = run_rebuild(plan, namespace, store=self.store, get_commit=self.history.get,
                             transform=transform, budget=budget)
        self._adopt(namespace, plan, result.values)
        lost = self.live.lost
        lost.update({n: why for n, why in result.failed.items() if n in lost})
        return result

    def _adopt(self, namespace: Namespace, plan: RebuildPlan, values: dict[str, object]) -> None:
        """Put rebuilt values in place as the recorded versions they stand for."""
        live = self.live
        groups: dict[CovarId, list[str]] = {}
        for name in values:
            groups.setdefault(plan.versions[name], []).append(name)
        changes: dict[str, CovarId | None] = {}
        for covar_of, names in groups.items():
            covar = self.store.load_covar(covar_of)
            if set(names) != set(covar.members):
                continue  # a co-variable comes back whole or not at all
            live.adopt_version(covar_of, covar, tuple(values[m] for m in covar.members))
            changes.update(dict.fromkeys(covar.members, covar_of))
        if not changes:
            return
        dict.update(namespace, {n: values[n] for n in changes})
        live.tree, records = live.tree.updated(changes)
        live.pending_tree.update(records)
        live.identities.record(namespace, changes)
        for name in changes:
            live.lost.pop(name, None)
        # Saved values restored while these were missing hold placeholders where they were.
        loader = CheckoutLoader(self.store, self.options, live.cache, live.tree, live.members,
                                namespace)
        for covar_of, covar, filled in loader.refill(set(changes), live.covar_refs):
            live.cache.discard(covar_of)
            live.cache.put(covar_of, covar, filled)
            dict.update(namespace, zip(covar.members, filled, strict=True))
            live.identities.record(namespace, covar.members)
