"""Rebuild plans and results in their JSON forms, and the sentences that offer and report them.

The shapes themselves are defined in messages.py with every other message (protocol layer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timetravel_kernel.protocol.messages import format_commit

if TYPE_CHECKING:
    from timetravel_kernel.protocol.messages import (
        RebuildPlanJSON,
        RebuildReply,
        RebuildStepJSON,
    )
    from timetravel_kernel.timeline.lineage import RebuildPlan
    from timetravel_kernel.timeline.rebuild import RebuildResult

__all__ = [
    "describe_plan",
    "describe_rebuild",
    "format_rebuild",
    "format_rebuild_plan",
    "list_plan_code",
]


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
