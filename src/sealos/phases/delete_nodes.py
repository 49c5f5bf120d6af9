"""Delete cleaned hosts from the cluster's node list (`kubectl delete node`) on a remaining master.
Runs after the hosts were reset, so no kubelet registers them again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.errors import HostError
from sealos.phases.base import Phase, last_line
from sealos.remote_paths import q


def delete_command(name: str) -> str:
    """`kubectl delete node NAME` with the admin kubeconfig."""
    return f"kubectl --kubeconfig {q(rp.ADMIN_CONF)} delete node {q(name)}"


class DeleteNodes(Phase):
    """On the first remaining master that answers."""

    title = "Delete the nodes from the cluster"
    parallel = False
    keep_going = True  # the hosts are clean already: report, and save the state

    def __init__(
        self, masters: Callable[[Context], list[ClusterHost]], names: Callable[[Context], list[str]]
    ) -> None:
        self.masters = masters
        self.names = names

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        if not self.names(ctx):
            return []
        usable = [m for m in self.masters(ctx) if m.usable]
        if not usable:
            names = ", ".join(self.names(ctx))
            raise HostError(
                "sealos",
                f"no remaining master answers, so {names} stay in the node list; "
                f"run `kubectl delete node {names}` on a master later.",
            )
        return usable[:1]

    def skip_reason(self, ctx: Context) -> str:
        return "no node to delete"

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        deleted = []
        for name in self.names(ctx):
            result = await ctx.wet(
                node,
                f"kubectl delete node {name}",
                partial(node.ssh.run, delete_command(name), timeout=120, check=False),
            )
            if result is None or result.ok:
                deleted.append(name)
            elif "(NotFound)" not in result.stderr:
                raise HostError(
                    node.name,
                    f"`kubectl delete node {name}` failed ({last_line(result.stderr)}); "
                    "check the control plane there and run it by hand.",
                )
        return f"deleted node(s) {', '.join(deleted)}" if deleted else "no node was registered"
