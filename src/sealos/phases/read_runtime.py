"""Read the hosts again once the package's init.sh ran: the container runtime it may have
installed, swap, sysctls and tools, which kubeadm's preflight and the kubelet check next."""

from __future__ import annotations

from sealos import facts
from sealos.context import ClusterHost, Context
from sealos.facts import HostFacts
from sealos.phases.base import Phase
from sealos.phases.gather_facts import read_facts


class ReadRuntime(Phase):
    """Read-only; the rule `validate.runtime_problems` judges what it read."""

    title = "Read the container runtime"
    in_dry_run = True

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [n for n in ctx.nodes if n.usable and (not ctx.new or n.name in ctx.new)]

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        def keep(node: ClusterHost, found: HostFacts) -> str:
            node.prepared = found
            choice = ctx.runtime_choice(node)
            driver = ctx.runtime_driver(node)
            what = choice.runtime.name if choice.runtime else "no runtime"
            return what + (f", {driver} cgroups" if driver else "")

        await read_facts(
            ctx, nodes, facts.runtime_script(), "reading the container runtime", 60, keep
        )
