"""Connect to every host in parallel. Failures are kept for validation, which lists them all."""

from __future__ import annotations

import asyncio

from sealos.context import ClusterHost, Context
from sealos.errors import HostError
from sealos.phases.base import Phase
from sealos.ssh import SSHConnection


class Connect(Phase):
    """Open SSH to all hosts, through the bastion when there is one (host keys, the bastion's
    too: known_hosts and sealos's pins; an unknown one is taken and pinned unless
    --host-key-policy strict); a login user that is not root must be able to use sudo (checked
    here, before any change)."""

    title = "Connect to the hosts"
    in_dry_run = True

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return list(ctx.nodes)

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        if ctx.bastion is not None:
            # First and once: a bastion that fails is one error (naming it), not one per host.
            ctx.ui.step(ctx.bastion.name, "connecting")
            await ctx.bastion.connect_shared()
            ctx.ui.host_done(ctx.bastion.name, True, _connected(ctx.bastion, ctx.bastion.ip))
        limit = asyncio.Semaphore(ctx.spec.concurrency)

        async def one(node: ClusterHost) -> None:
            async with limit:
                ctx.ui.step(node.name, "connecting")
                try:
                    await node.ssh.connect()
                    await node.ssh.check_sudo()  # a user that is not root: sudo works, or why not
                except HostError as e:
                    node.error = e
                    ctx.ui.host_done(node.name, False, str(e))
                    return
                ctx.ui.host_done(node.name, True, _connected(node.ssh, node.ip))

        await asyncio.gather(*(one(n) for n in nodes))


def _connected(ssh: SSHConnection, ip: str) -> str:
    """The line a connected host (or the bastion) shows: its address, and a new key taken."""
    new = f", new host key {ssh.host_key_fingerprint} taken" if ssh.new_host_key else ""
    return f"connected ({ip}){new}"
