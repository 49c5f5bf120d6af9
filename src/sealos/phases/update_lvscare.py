"""Give the lvscare of existing nodes a new list of masters (after `join` adds masters or `clean`
removes some): the systemd unit is rewritten and restarted, or the static pod manifest rewritten
(the kubelet restarts the pod). lvscare leaves the kernel rules in place while it restarts, and
the new process reconciles them to the new list within a tick.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sealos import lvscare_node
from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase

NodePicker = Callable[[Context], list[ClusterHost]]
MasterList = Callable[[Context], list[str]]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class UpdateLvscare(Phase):
    """Nodes whose lvscare does not balance over exactly the wanted masters yet."""

    title = "Update lvscare on the nodes"

    def __init__(self, nodes: NodePicker, masters: MasterList) -> None:
        self.nodes = nodes
        self.masters = masters

    def mode(self, ctx: Context, node: ClusterHost) -> str:
        """How lvscare is kept running there: as found on the host, else as the cluster says."""
        f = node.facts
        assert f is not None
        if f.lvscare_unit_sha256 is not None:
            return "systemd"
        if f.lvscare_manifest_sha256 is not None:
            return "static-pod"
        return ctx.spec.lvscare_mode

    def desired(self, ctx: Context, node: ClusterHost) -> str:
        """The unit or manifest text this node should have."""
        masters = self.masters(ctx)
        if self.mode(ctx, node) == "systemd":
            return lvscare_node.systemd_unit(ctx.spec.vip, masters)
        return lvscare_node.static_pod_manifest(ctx.spec.vip, masters, ctx.spec.lvscare_image)

    def up_to_date(self, ctx: Context, node: ClusterHost) -> bool:
        """True when the node's lvscare already has exactly the wanted masters (and runs)."""
        f = node.facts
        assert f is not None
        sha = _sha(self.desired(ctx, node))
        if self.mode(ctx, node) == "systemd":
            return f.lvscare_unit_sha256 == sha and f.lvscare_active
        return f.lvscare_manifest_sha256 == sha

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [n for n in self.nodes(ctx) if n.usable and not self.up_to_date(ctx, n)]

    def skip_reason(self, ctx: Context) -> str:
        return "every node's lvscare already balances over the right masters"

    def describe(self, ctx: Context, node: ClusterHost) -> list[str]:
        masters = ", ".join(self.masters(ctx))
        if self.mode(ctx, node) == "systemd":
            return [f"lvscare: rewrite {rp.LVSCARE_UNIT} with masters {masters}, restart it"]
        return [f"lvscare: rewrite {rp.LVSCARE_MANIFEST} with masters {masters}"]

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        f = node.facts
        assert f is not None
        text = self.desired(ctx, node)
        masters = ", ".join(self.masters(ctx))
        if self.mode(ctx, node) == "systemd":
            ctx.ui.step(node.name, f"lvscare.service: masters {masters}")
            await node.ssh.put_bytes(text.encode(), rp.LVSCARE_UNIT, mode=0o644)
            await node.ssh.run(lvscare_node.service_command(restart=True))
            f.lvscare_unit_sha256, f.lvscare_active = _sha(text), True
        else:
            ctx.ui.step(node.name, f"lvscare static pod: masters {masters}")
            await node.ssh.put_bytes(text.encode(), rp.LVSCARE_MANIFEST, mode=0o644)
            f.lvscare_manifest_sha256 = _sha(text)
        return f"lvscare now balances over {masters}"
