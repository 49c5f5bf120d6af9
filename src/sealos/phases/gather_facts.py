"""Gather facts on every connected host with one read-only script."""

from __future__ import annotations

import asyncio
import time

from sealos import facts
from sealos.context import ClusterHost, Context
from sealos.errors import HostError
from sealos.phases.base import Phase


class GatherFacts(Phase):
    """Hostname, arch, OS, python3, disk, time, and what sealos already did there."""

    title = "Gather facts"
    in_dry_run = True

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [n for n in ctx.nodes if n.error is None and n.ssh.connected]

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        size = ctx.package.size if ctx.package is not None else None
        script = facts.gather_script(ctx.spec.package_name, ctx.spec.apiserver, size)
        limit = asyncio.Semaphore(ctx.spec.concurrency)
        ctx.operator_time = time.time()

        async def one(node: ClusterHost) -> None:
            async with limit:
                ctx.ui.step(node.name, "gathering facts")
                try:
                    result = await node.ssh.run(script, timeout=120)
                except HostError as e:
                    node.error = e
                    ctx.ui.host_done(node.name, False, str(e))
                    return
                node.facts = facts.parse(result.stdout)
                f = node.facts
                ctx.ui.host_done(
                    node.name, True, f"{f.hostname}, {f.arch}, {f.os}, python3 {f.python3_text}"
                )

        await asyncio.gather(*(one(n) for n in nodes))
