"""Remove cleaned masters' etcd members on a remaining master (`sealos clean --master X`).

`kubeadm reset` on X removes its own member while etcd has a quorum; a member is left when it
could not: X's join stopped halfway (a voting member that never ran costs a two-member cluster
its quorum), or X could not be reached (`--force`). Runs after the hosts were cleaned.
"""

from __future__ import annotations

from collections.abc import Callable

from sealos import etcd_members
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase
from sealos.phases.commands import remove_etcd_member


class RemoveEtcdMembers(Phase):
    """On the first remaining master that answers."""

    title = "Remove the cleaned masters' etcd members"
    parallel = False
    keep_going = True  # the hosts are clean already: report, and save the state

    def __init__(
        self,
        masters: Callable[[Context], list[ClusterHost]],
        cleaned: Callable[[Context], list[tuple[str, str, str]]],
    ) -> None:
        self.masters = masters
        self.cleaned = cleaned  # (name, ip, hostname) of each cleaned master

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        if not self.cleaned(ctx):
            return []
        return [m for m in self.masters(ctx) if m.usable][:1]

    def skip_reason(self, ctx: Context) -> str:
        return "no master cleaned, or none remains that answers"

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        removed = []
        for name, ip, hostname in self.cleaned(ctx):

            async def act(name: str = name, ip: str = ip, hostname: str = hostname) -> bool:
                return await remove_etcd_member(ctx, node, name, ip, hostname)

            done = await ctx.wet(
                node,
                f"etcdctl member remove: {name}'s etcd member (peer URL "
                f"{etcd_members.peer_url(ip)}) if kubeadm reset left it",
                act,
                step=f"checking etcd for {name}'s member",
            )
            if done:
                removed.append(name)
        return f"removed the etcd member of {', '.join(removed)}" if removed else "none was left"
