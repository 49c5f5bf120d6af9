"""Join the other masters one after another: the apiserver name first points to the first master
(to reach a working control plane), then, once joined, to the master itself.
"""

from __future__ import annotations

from sealos import kubeadm
from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.etc_hosts import set_entry_command
from sealos.phases.base import Phase
from sealos.phases.commands import once, root_kubeconfig

JOIN_TIMEOUT = 1200.0


class JoinMasters(Phase):
    """Masters 2..n, sequentially (etcd grows one member at a time)."""

    title = "Join the other masters"
    parallel = False

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [
            m
            for m in ctx.masters[1:]
            if m.facts is not None
            and not (m.facts.join_done and m.hosts_entry_is(m.ip, ctx.spec.apiserver))
        ]

    def describe(self, ctx: Context, node: ClusterHost) -> list[str]:
        assert node.facts is not None
        name = ctx.spec.apiserver
        lines = []
        if not node.facts.join_done:
            lines.append(f"/etc/hosts: map {name} to {ctx.first_master.ip} (the first master)")
            if node.facts.kubeadm_leftovers:
                lines.append("kubeadm reset -f (an earlier join stopped halfway)")
            lines.append(
                f"kubeadm join {name}:{kubeadm.APISERVER_PORT} as a control plane "
                f"({ctx.version.control_plane_flag}, with a certificate key)"
            )
        lines.append(f"/etc/hosts: map {name} to {node.ip} (itself)")
        return lines

    async def prepare(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        if any(n.facts is not None and not n.facts.join_done for n in nodes):
            await ctx.join_info(control_plane=True)

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        assert node.facts is not None
        host = node.ssh
        name = ctx.spec.apiserver
        note = "hosts entry fixed; joined before"
        if not node.facts.join_done:
            ctx.ui.step(node.name, f"/etc/hosts: {name} -> {ctx.first_master.ip}")
            await host.run(set_entry_command(ctx.first_master.ip, name))
            ctx.ui.step(node.name, "kubeadm join as a control plane")
            await self._join(ctx, node)
            node.facts.join_done = True
            await host.run(root_kubeconfig())
            note = "joined as a master"
        ctx.ui.step(node.name, f"/etc/hosts: {name} -> {node.ip}")
        await host.run(set_entry_command(node.ip, name))
        return note

    async def _join(self, ctx: Context, node: ClusterHost) -> None:
        info = await ctx.join_info(control_plane=True)
        v = ctx.version
        if v.certificate_key_in_config:
            doc = kubeadm.join_document(v, info, info.endpoint, control_plane_address=node.ip)
            await node.ssh.run(
                once(rp.MARK_JOIN, kubeadm.join_with_config_command()),
                input=kubeadm.dump([doc]),
                timeout=JOIN_TIMEOUT,
                label="kubeadm join (control plane)",
            )
        else:
            command = kubeadm.join_command_1_14_control_plane(
                v, info.endpoint, info.ca_cert_hashes, node.ip
            )
            await node.ssh.run(
                once(rp.MARK_JOIN, command),
                input=f"{info.token}\n{info.certificate_key}\n",
                timeout=JOIN_TIMEOUT,
                label="kubeadm join (control plane)",
            )
