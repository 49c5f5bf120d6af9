"""Record on each host, before the first change to the system there, that sealos started on it
(`remote_paths.MARK_STARTED`): what kubeadm leaves on such a host is an interrupted run of sealos,
which a later run may reset and clean may remove; on any other host it is someone else's.

It runs right after the package reached the host (and before init.sh): a refused download removes
itself, so a run stopped there leaves the host as it was; a transfer cut off halfway leaves only
`<package>.sealos-part`, which clean removes by that suffix on any host."""

from __future__ import annotations

from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase
from sealos.phases.commands import mark_started


class MarkStarted(Phase):
    """Hosts without the marker (validation let through only those holding no Kubernetes install
    sealos did not start, unless --force-takeover)."""

    title = "Record that sealos starts on the hosts"

    def __init__(self, command: str) -> None:
        self.command = command

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [n for n in ctx.nodes if n.facts is not None and not n.facts.started]

    def skip_reason(self, ctx: Context) -> str:
        return "recorded before"

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        f = node.facts
        assert f is not None
        taken = " (taking over what was there: --force-takeover)" if f.foreign_kubernetes() else ""
        await ctx.wet(
            node,
            f"record that sealos started here: {rp.MARK_STARTED}{taken}",
            lambda: node.ssh.run(mark_started(self.command)),
            step="recording that sealos starts here",
        )
        return ""
