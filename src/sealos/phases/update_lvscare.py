"""Give the lvscare of existing nodes a new list of masters (after `join` adds masters or `clean`
removes some): the systemd unit is rewritten and restarted, or the static pod manifest rewritten
(the kubelet restarts the pod). lvscare leaves the kernel rules in place while it restarts, and
the new process reconciles them to the new list within a tick.
"""

from __future__ import annotations

from collections.abc import Callable

from sealos import lvscare_node
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase

NodePicker = Callable[[Context], list[ClusterHost]]
MasterList = Callable[[Context], list[str]]


class UpdateLvscare(Phase):
    """Nodes whose lvscare does not balance over exactly the wanted masters yet; each keeps the
    kind of keeper it has (unit or static pod)."""

    title = "Update lvscare on the nodes"

    def __init__(self, nodes: NodePicker, masters: MasterList) -> None:
        self.nodes = nodes
        self.masters = masters

    def keeper(self, ctx: Context, node: ClusterHost) -> lvscare_node.Keeper:
        """The keeper this node should have: its own kind, the wanted masters."""
        assert node.facts is not None
        mode = lvscare_node.mode_found(node.facts, ctx.spec.lvscare_mode)
        masters = tuple(self.masters(ctx))
        return lvscare_node.Keeper(mode, ctx.spec.vip, masters, ctx.spec.lvscare_image)

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [
            n
            for n in self.nodes(ctx)
            if n.usable and n.facts is not None and not self.keeper(ctx, n).is_current(n.facts)
        ]

    def skip_reason(self, ctx: Context) -> str:
        return "every node's lvscare already balances over the right masters"

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        f = node.facts
        assert f is not None
        want = self.keeper(ctx, node)
        masters = ", ".join(want.masters)
        systemd = want.mode == lvscare_node.SYSTEMD
        await ctx.wet(
            node,
            f"lvscare: rewrite {want.path} with masters {masters}"
            + (", restart it" if systemd else ""),
            lambda: want.install(node.ssh, f, new_bundle=False),
            step=f"lvscare.service: masters {masters}"
            if systemd
            else f"lvscare static pod: masters {masters}",
        )
        return f"lvscare now balances over {masters}"
