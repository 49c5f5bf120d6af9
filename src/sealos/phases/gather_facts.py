"""Gather facts on every connected host with one read-only script."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sealos import facts
from sealos.context import ClusterHost, Context
from sealos.errors import HostError
from sealos.facts import HostFacts
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
        ctx.operator_time = time.time()

        def keep(node: ClusterHost, found: HostFacts) -> str:
            node.facts = found
            return f"{found.hostname}, {found.arch}, {found.os}, python3 {found.python3_text}"

        await read_facts(ctx, nodes, script, "gathering facts", 120, keep)


async def read_facts(
    ctx: Context,
    nodes: list[ClusterHost],
    script: str,
    step: str,
    timeout: float,
    keep: Callable[[ClusterHost, HostFacts], str],
) -> None:
    """Run a read-only fact script on `nodes` (bounded by --concurrency); `keep` stores what a
    host told and returns its row's note. A host that can't be read gets its error."""
    limit = asyncio.Semaphore(ctx.spec.concurrency)

    async def one(node: ClusterHost) -> None:
        async with limit:
            ctx.ui.step(node.name, step)
            try:
                result = await node.ssh.run(script, timeout=timeout)
            except HostError as e:
                node.error = e
                ctx.ui.host_done(node.name, False, str(e))
                return
            ctx.ui.host_done(node.name, True, keep(node, facts.parse(result.stdout)))

    await asyncio.gather(*(one(n) for n in nodes))
