"""`sealos status`: connect to every recorded member, gather facts, and show one row per host:
role, Kubernetes version, kubelet, lvscare, and on nodes the VIP rule's health (how many of the
masters it balances over). Changes nothing; exits non-zero when a host is unreachable or unwell.
"""

from __future__ import annotations

from sealos import lvscare_node, members, runner
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase
from sealos.phases.connect import Connect
from sealos.phases.gather_facts import GatherFacts
from sealos.phases.read_status import ReadStatus
from sealos.runner import Result, Target

COLUMNS = ["host", "role", "hostname", "kubernetes", "kubelet", "lvscare", "VIP rule"]


class Status(runner.OnRecordedCluster):
    """Look at every member of the recorded cluster."""

    name = "status"

    def __init__(self, recorded: runner.Recorded) -> None:
        state = recorded.state
        masters = [members.address_of(m) for m in state.masters]
        super().__init__(recorded, masters, [members.address_of(m) for m in state.nodes])
        self.reader = ReadStatus()

    def targets(self, ctx: Context) -> list[Target]:
        return [Target(members.address_of(m), m.role, m.ip) for m in ctx.state.members]

    def phases(self) -> list[Phase]:
        return [Connect(), GatherFacts(), self.reader]

    def row(self, ctx: Context, node: ClusterHost) -> tuple[list[str], bool]:
        """The host's row, and whether it is well."""
        hostname = node.facts.hostname if node.facts else "?"
        s = self.reader.found.get(node.name)
        if node.error is not None or s is None:
            return [node.name, node.role, hostname, "?", "unreachable", "?", "?"], False
        well = s.kubelet == "active"
        lvscare, rule = "-", "-"
        if node.role == "node":
            assert node.facts is not None
            mode = lvscare_node.mode_found(node.facts, ctx.spec.lvscare_mode)
            lvscare = s.lvscare if mode == lvscare_node.SYSTEMD else "static pod"
            total = len(ctx.masters)
            if s.vip_servers < 0:
                rule, well = "missing", False
            else:
                rule = f"{s.vip_servers}/{total} masters"
                well = well and s.vip_servers == total
            well = well and lvscare in ("active", "static pod")
        return [
            node.name,
            node.role,
            hostname,
            s.kubernetes or "none",
            s.kubelet,
            lvscare,
            rule,
        ], well

    async def conclude(self, ctx: Context, result: Result) -> None:
        rows, unwell = [], []
        for n in ctx.nodes:
            row, well = self.row(ctx, n)
            rows.append(row)
            if not well:
                unwell.append(n.name)
        ctx.ui.table(f"Cluster (VIP {ctx.spec.vip})", COLUMNS, rows)
        if unwell:
            ctx.errors.append(f"not every host is well: {', '.join(unwell)}; see the table above.")
