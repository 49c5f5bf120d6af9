"""Save the cluster state: settings (no secrets), members, pinned host keys."""

from __future__ import annotations

from sealos import spec as spec_mod
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase
from sealos.state import Member


class SaveState(Phase):
    """Record what the run knows; before changes ('installing') and at the end ('ready')."""

    title = "Save the cluster state"

    def __init__(self, status: str) -> None:
        self.status = status

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [ctx.first_master] if ctx.masters else []

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        record(ctx, self.status)
        for n in nodes:
            ctx.ui.host_done(n.name, True, f"{self.status}: {ctx.store.path}")


def record(ctx: Context, status: str) -> None:
    """Merge this run's hosts into the state and write it (mode 0600)."""
    state = ctx.state
    state.settings = spec_mod.to_values(ctx.spec)
    state.status = status
    state.package_sha256 = ctx.package_sha256
    known = {m.address: m for m in state.members}
    members = []
    for n in ctx.nodes:
        old = known.pop(n.name, None)
        hostname = n.facts.hostname if n.facts else (old.hostname if old else "")
        members.append(Member(n.name, n.role, n.ip, hostname))
        if n.ssh.host_key:
            state.host_keys[n.address.key] = n.ssh.host_key
    # Members added later (sealos join) stay in the state.
    members.extend(known.values())
    state.members = members
    ctx.store.save(state)
