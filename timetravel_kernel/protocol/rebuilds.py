"""Rebuild plans and results in their JSON forms (protocol layer).

The shapes themselves are defined in messages.py with every other message; the sentences that
offer and report a rebuild are the session's (session/sentences.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timetravel_kernel.protocol.messages import format_commit

if TYPE_CHECKING:
    from timetravel_kernel.protocol.messages import RebuildPlanJSON, RebuildReply, RebuildStepJSON
    from timetravel_kernel.timeline.lineage import RebuildPlan
    from timetravel_kernel.timeline.rebuild import RebuildResult

__all__ = ["format_rebuild", "format_rebuild_plan"]


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
