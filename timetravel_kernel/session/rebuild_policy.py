"""What the kernel does about values a restore could not bring back (session layer).

What describes itself (a file, a sqlite3 database file, a lock, an event) was reconnected by
the move itself, whatever the policy. For the rest, which only running recorded cells again
brings back, the ``rebuild_unsaved`` policy decides: ``never`` leaves them, ``ask`` announces
a rebuild (the values, the cells, their recorded run time and their code) for the user to
start with ``%tt rebuild`` or the lab extension's Rebuild button, ``auto`` runs it at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timetravel_kernel.errors import TimeTravelError
from timetravel_kernel.protocol.rebuilds import format_rebuild_plan
from timetravel_kernel.session.sentences import describe_plan, describe_rebuild, list_plan_code

if TYPE_CHECKING:
    from collections.abc import Mapping

    from timetravel_kernel.protocol import ProtocolHandler

__all__ = ["REBUILD_POLICIES", "after_loss"]

REBUILD_POLICIES = ("ask", "auto", "never")


def after_loss(handler: ProtocolHandler, policy: str) -> tuple[list[Mapping[str, object]], str]:
    """Apply the policy after a restore or checkout; return the events and the notice.

    Never raises: a rebuild that cannot even be planned is reported in the notice.
    """
    timeline = handler.timeline
    if policy == "never" or timeline is None or not timeline.lost:
        return [], ""
    if policy == "auto":
        response = handler.handle({"id": "auto-rebuild", "op": "rebuild"}, from_cell=True)
        reply = response.reply
        if not reply["ok"]:
            return [], f"time travel: the rebuild failed: {reply['error']['message']}"  # type: ignore[typeddict-item]
        return list(response.events), describe_rebuild(reply["result"])  # type: ignore[typeddict-item,arg-type]
    try:
        plan = format_rebuild_plan(timeline.rebuild_plan())
    except (TimeTravelError, OSError) as exc:
        return [], f"time travel: a rebuild cannot be planned ({exc})"
    if not plan["names"]:
        return [], ""
    message = describe_plan(plan)
    event = {"event": "rebuild-available", "plan": plan, "message": message}
    return [event], f"{message}\n{list_plan_code(plan)}"
