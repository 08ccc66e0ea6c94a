"""JSON forms of rebuild plans and results, for the rebuild ops and events (protocol layer).

Kept beside ``messages.py`` so the payloads of the rebuild ops and events live in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypedDict

from timetravel_kernel.protocol.messages import CommitJSON, format_commit

if TYPE_CHECKING:
    from timetravel_kernel.timeline.lineage import RebuildPlan
    from timetravel_kernel.timeline.rebuild import RebuildResult

__all__ = [
    "RebuildAvailableEvent",
    "RebuildPlanJSON",
    "RebuildReply",
    "RebuildStepJSON",
    "RebuiltEvent",
    "describe_plan",
    "describe_rebuild",
    "format_rebuild",
    "format_rebuild_plan",
    "list_plan_code",
]


class RebuildStepJSON(TypedDict):
    """One step: a recorded cell to run again, or values to reconnect."""

    kind: Literal["run", "reconnect"]
    names: list[str]
    commit: str | None
    execution_count: int | None
    code: str
    seconds: float


class RebuildPlanJSON(TypedDict):
    """Result of ``rebuild-preview``: what a rebuild would run, before it runs."""

    at: CommitJSON
    names: list[str]
    steps: list[RebuildStepJSON]
    seconds: float
    impossible: dict[str, str]


class RebuildReply(TypedDict):
    """Result of ``rebuild``: the names brought back and why the others were not."""

    rebuilt: list[str]
    failed: dict[str, str]
    cells_run: int
    seconds: float


class RebuildAvailableEvent(TypedDict):
    """Sent after a restore left unsaveable values behind that recorded cells can rebuild."""

    event: Literal["rebuild-available"]
    plan: RebuildPlanJSON
    message: str


class RebuiltEvent(TypedDict):
    """Sent when a rebuild changed the live namespace."""

    event: Literal["rebuilt"]
    rebuilt: list[str]
    failed: dict[str, str]
    cells_run: int
    seconds: float


def format_rebuild_plan(plan: RebuildPlan) -> RebuildPlanJSON:
    """Return the JSON form of a plan."""
    steps: list[RebuildStepJSON] = []
    for step in plan.steps:
        commit = step.commit
        steps.append({
            "kind": "run" if commit is not None else "reconnect",
            "names": list(step.names),
            "commit": commit.id.hex() if commit is not None else None,
            "execution_count": commit.execution_count if commit is not None else None,
            "code": step.code,
            "seconds": step.seconds,
        })
    return {"at": format_commit(plan.at), "names": list(plan.names), "steps": steps,
            "seconds": plan.seconds, "impossible": dict(plan.impossible)}


def format_rebuild(result: RebuildResult) -> RebuildReply:
    """Return the JSON form of a rebuild's result."""
    return {"rebuilt": sorted(result.values), "failed": dict(result.failed),
            "cells_run": result.cells_run, "seconds": result.seconds}


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
