"""Build the lvscare bundle (a zipapp) on the operator's machine for the nodes. The build starts
when the action starts, so it overlaps connecting; this phase waits for it. A failed build stops
the action before anything changed."""

from __future__ import annotations

import asyncio

from sealos import lvscare_node
from sealos.context import ClusterHost, Context
from sealos.errors import SealosError, ValidationFailed
from sealos.phases.base import Phase


class BuildLvscareBundle(Phase):
    """Skipped when no node takes part (the bundle is for nodes)."""

    title = "Build the lvscare bundle"
    in_dry_run = True  # local only; the plan names the bundle's upload

    def begin(self, ctx: Context) -> None:
        if ctx.workers and ctx.bundle is None and ctx.bundle_task is None:
            ctx.bundle_task = asyncio.create_task(
                asyncio.to_thread(lvscare_node.build_bundle, ctx.store.home / "cache")
            )

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [n for n in ctx.workers if n.usable]

    def skip_reason(self, ctx: Context) -> str:
        return "no node takes part"

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        try:
            if ctx.bundle_task is not None:
                ctx.bundle = await ctx.bundle_task
            elif ctx.bundle is None:
                ctx.bundle = lvscare_node.build_bundle(ctx.store.home / "cache")
        except SealosError as e:
            raise ValidationFailed([str(e)]) from None
        for n in nodes:
            ctx.ui.host_done(n.name, True, f"{ctx.bundle.path.name} ready")
