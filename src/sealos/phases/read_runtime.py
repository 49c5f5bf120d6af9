"""Read the hosts again once the package's init.sh ran: the container runtime it may have
installed, swap, sysctls and tools, which kubeadm's preflight and the kubelet check next."""

from __future__ import annotations

import asyncio

from sealos import facts
from sealos.context import ClusterHost, Context
from sealos.errors import HostError
from sealos.phases.base import Phase


class ReadRuntime(Phase):
    """Read-only; the rule `validate.runtime_problems` judges what it read."""

    title = "Read the container runtime"
    in_dry_run = True

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [n for n in ctx.nodes if n.usable and (not ctx.new or n.name in ctx.new)]

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        script = facts.runtime_script()
        limit = asyncio.Semaphore(ctx.spec.concurrency)

        async def one(node: ClusterHost) -> None:
            async with limit:
                ctx.ui.step(node.name, "reading the container runtime")
                try:
                    result = await node.ssh.run(script, timeout=60)
                except HostError as e:
                    node.error = e
                    ctx.ui.host_done(node.name, False, str(e))
                    return
                node.prepared = facts.parse(result.stdout)
                choice = ctx.runtime_choice(node)
                what = choice.runtime.name if choice.runtime else "no runtime"
                driver = ctx.runtime_driver(node)
                ctx.ui.host_done(node.name, True, what + (f", {driver} cgroups" if driver else ""))

        await asyncio.gather(*(one(n) for n in nodes))
