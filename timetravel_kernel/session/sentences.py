"""Sentences: everything the history session says to people, in one place (session layer).

Notices under cells, the kernel's banner, warning events and the magics all take their words
from here, so a message reads the same wherever it appears and can be found in one file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timetravel_kernel.timeline import describe_cell

if TYPE_CHECKING:
    from collections.abc import Mapping

    from timetravel_kernel.protocol.messages import RebuildPlanJSON, RebuildReply
    from timetravel_kernel.store import Commit
    from timetravel_kernel.store.spool import IngestedSpool
    from timetravel_kernel.timeline import CellInfo, CheckoutResult

__all__ = [
    "cell_of",
    "checkpoint_failed",
    "could_not_start",
    "describe_plan",
    "describe_rebuild",
    "dropped_spool",
    "interrupted_restore",
    "list_plan_code",
    "lost_states",
    "no_remote",
    "not_saved",
    "previous_session",
    "pulled",
    "pushed",
    "remote_not_used",
    "restore_failed",
    "restore_offer",
    "restored",
    "saving_resumed",
]

PREFIX = "time travel: "
NOT_SAVED_EVENT = ("some values could not be saved: after a crash or restart only running their "
                   "recorded cells again (a rebuild) brings them back")


def cell_of(commit: Commit | None) -> str:
    """Return how a restorable state is named: after which cell."""
    if commit is None or not commit.execution_count:
        return "its start"
    return f"cell [{commit.execution_count}]"


def could_not_start(error: BaseException) -> str:
    """The history could not start at all (the kernel runs on without it)."""
    return f"time travel is off: it could not start ({type(error).__name__}: {error})"


def lost_states(lost: int, lower_bound: bool, cell: str) -> str:
    """A damaged log lost the newest states; the newest intact one is restored."""
    count = f"at least {lost}" if lower_bound else str(lost)
    return (f"{PREFIX}the last {count} saved state{'s' if lost > 1 else ''} could not be "
            f"recovered (the store's log was damaged); the newest intact state is the one "
            f"after {cell}")


def dropped_spool(spool: IngestedSpool) -> str:
    """A dead kernel's snapshot saved a state that could not be used."""
    count = spool.header.execution_count if spool.header is not None else None
    cell = f"cell [{count}]" if count is not None else "a cell"
    return (f"{PREFIX}the state after {cell}, which the previous kernel's snapshot saved after "
            f"it died, could not be used ({spool.problem})")


def previous_session(*, fetched: bool, crashed: bool) -> str:
    """How the previous session of this notebook ended."""
    if fetched:
        return "its latest state was fetched from the remote"
    return "the previous kernel crashed" if crashed else "the previous session ended"


def restore_offer(before: str, cell: str) -> str:
    """The previous state can be restored on request."""
    return (f"{PREFIX}{before}; its state after {cell} can be restored with %timetravel "
            "restore (or the history panel)")


def interrupted_restore(cell: str, size: float | None, commit: str) -> str:
    """The previous kernel died restoring this state: it is offered, not tried again."""
    about = f" (about {size / 1e9:.1f} GB)" if size is not None else ""
    return (f"{PREFIX}the previous kernel died while restoring the state after {cell}{about}, "
            "so it is not restored again by itself: restore it with %tt restore once memory "
            f"is free, or some names alone with %tt get NAME@{commit} (%tt vars {commit} lists "
            "them with their sizes)")


def restored(what: str, result: CheckoutResult) -> str:
    """The previous state came back at start: how much, what was reconnected, what not."""
    missing = ""
    if result.unrestored:
        missing = "; could not restore: " + ", ".join(
            f"{name} ({why})" for name, why in sorted(result.unrestored.items()))
    again = f"; reconnected {', '.join(result.reconnected)}" if result.reconnected else ""
    return f"{PREFIX}{what} ({len(result.loaded)} names){again}{missing}"


def restore_failed(what: str, error: BaseException) -> str:
    """The previous state could not be loaded; it stays in the history."""
    return (f"{PREFIX}{what.replace('restored', 'restoring')} failed ({type(error).__name__}: "
            f"{error}); it stays in the history (%timetravel log)")


def remote_not_used(reason: str) -> str:
    """The configured remote is not used, and why."""
    return f"{PREFIX}the remote is not used: {reason}"


def no_remote() -> str:
    """``%tt push`` / ``%tt pull`` without a remote."""
    return (f"{PREFIX}no remote for this kernel; set TimeTravelKernel.remote (or "
            "TIMETRAVEL_REMOTE) and restart it")


def pushed(commits: int, sent: int, requests: int, url: str) -> str:
    """What ``%tt push`` did."""
    return f"{PREFIX}pushed {commits} states ({sent} bytes, {requests} requests) to {url}"


def pulled(commits: int, url: str, head: str | None) -> str:
    """What ``%tt pull`` did."""
    newest = (f"; the remote's latest state is {head[:10]} (%tt checkout {head[:10]})"
              if head else "")
    return f"{PREFIX}fetched {commits} states from {url}{newest}"


def checkpoint_failed(cell: CellInfo | None, error: BaseException | None, *,
                      again: bool) -> str:
    """A cell's state could not be saved (``cell`` None: the one running now)."""
    what = "this cell's state" if cell is None else f"the state after {describe_cell(cell)}"
    reason = f"{type(error).__name__}: {error}"
    if again:
        return f"{PREFIX}{what} could not be saved either ({reason})"
    return (f"{PREFIX}{what} could not be saved ({reason}); the cell itself is fine, and the "
            "next state saved will hold it too")


def saving_resumed(cells: int) -> str:
    """Saving works again; the state saved holds the cells that could not be saved."""
    held = cells - 1
    also = (f"; this state also holds the {held} cell{'s' if held > 1 else ''} before it whose "
            "states could not be saved" if held else "")
    return f"{PREFIX}saving works again{also}"


def not_saved(unsaved: Mapping[str, str]) -> str:
    """Values a state could not hold (told once, when first met)."""
    names = ", ".join(f"{n} ({why})" for n, why in sorted(unsaved.items()))
    return (f"{PREFIX}not saved; after a crash or restart only running their recorded cells "
            f"again brings them back (%tt rebuild): {names}")


def describe_plan(plan: RebuildPlanJSON) -> str:
    """Return the sentence offering a rebuild: the values, the cells and their run time."""
    cells = [f"[{s['execution_count']}]" for s in plan["steps"] if s["kind"] == "run"]
    reconnects = [n for s in plan["steps"] if s["kind"] == "reconnect" for n in s["names"]]
    parts = []
    if cells:
        parts.append(f"running cells {', '.join(cells)} again (recorded {plan['seconds']:.2f} s)")
    if reconnects:
        parts.append(f"reconnecting {', '.join(reconnects)}")
    how = " and ".join(parts) or "nothing to run"
    lost = ", ".join(f"{n} ({why})" for n, why in plan["impossible"].items())
    tail = f"; cannot be rebuilt: {lost}" if lost else ""
    return (f"time travel: {', '.join(plan['names'])} can be rebuilt by {how}: "
            f"%tt rebuild (%tt rebuild --preview shows the code){tail}")


def list_plan_code(plan: RebuildPlanJSON) -> str:
    """Return the code a rebuild would run, cell by cell, to show before it runs."""
    blocks = []
    for step in plan["steps"]:
        names = ", ".join(step["names"])
        if step["kind"] == "reconnect":
            blocks.append(f"# reconnect {names} (no cell runs)")
            continue
        blocks.append(f"# cell [{step['execution_count']}], recorded {step['seconds']:.2f} s, "
                      f"for {names}\n{step['code'].rstrip()}")
    return "\n".join(blocks)


def describe_rebuild(result: RebuildReply) -> str:
    """Return one sentence saying what a rebuild brought back and what it could not."""
    rebuilt = ", ".join(result["rebuilt"]) or "nothing"
    failed = "; ".join(f"{n}: {why}" for n, why in result["failed"].items())
    tail = f" · not rebuilt: {failed}" if failed else ""
    return (f"time travel: rebuilt {rebuilt} ({result['cells_run']} cells run again, "
            f"{result['seconds']:.2f} s){tail}")
