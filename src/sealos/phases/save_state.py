"""Save the cluster state (settings without secrets, members, pinned host keys); what is recorded
is the action's (`sealos.members.record_*`)."""

from __future__ import annotations

from collections.abc import Callable

from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase


class SaveState(Phase):
    """Before changes (so an interrupted run can be finished or cleaned) and at the end."""

    title = "Save the cluster state"

    def __init__(self, record: Callable[[Context], str]) -> None:
        self.record = record

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [ctx.first_master] if ctx.masters else []

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        note = self.record(ctx)
        for n in nodes:
            ctx.ui.host_done(n.name, True, note)
