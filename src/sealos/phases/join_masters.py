"""Join the other masters one after another: the apiserver name first points to the first master
(to reach a working control plane), then, once joined, to the master itself; the host-network
pods that started in between (kube-proxy; up to 1.19 controller-manager and scheduler) hold a
copy of the old /etc/hosts and are restarted.
"""

from __future__ import annotations

from sealos import kubeadm
from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase
from sealos.phases.commands import (
    map_apiserver,
    once,
    remove_half_joined_member,
    reset_half_join,
    restart_host_network_pods,
    root_kubeconfig,
)

JOIN_TIMEOUT = 1200.0


class JoinMasters(Phase):
    """Masters 2..n, sequentially (etcd grows one member at a time)."""

    title = "Join the other masters"
    parallel = False

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        m0 = ctx.first_master
        return [
            m
            for m in ctx.masters
            if m is not m0
            and m.facts is not None
            and not (m.facts.join_done and m.hosts_entry_is(m.ip, ctx.spec.apiserver))
        ]

    async def prepare(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        # A half-done join's etcd member first: while it costs the quorum, nothing can be
        # written, not even the join token below.
        for n in nodes:
            if n.facts is not None and not n.facts.join_done and n.facts.kubeadm_leftovers:
                await remove_half_joined_member(ctx, ctx.first_master, n)
        if any(n.facts is not None and not n.facts.join_done for n in nodes):
            await ctx.join_info(control_plane=True)

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        f = node.facts
        assert f is not None
        name = ctx.spec.apiserver
        note = "hosts entry fixed; joined before"
        if not f.join_done:
            m0 = ctx.first_master
            await map_apiserver(ctx, node, m0.ip, f"{m0.ip} (the first master)")
            if f.kubeadm_leftovers:
                await reset_half_join(ctx, node)
            await ctx.wet(
                node,
                f"kubeadm join {name}:{kubeadm.APISERVER_PORT} as a control plane "
                f"({ctx.version.control_plane_flag}, with a certificate key)",
                lambda: self._join(ctx, node),
                step="kubeadm join as a control plane",
            )
            note = "joined as a master"
        await map_apiserver(ctx, node, node.ip, f"{node.ip} (itself)")
        # Switched after the join (the apiserver here needs its etcd member first), so what
        # started meanwhile is restarted with the new /etc/hosts.
        await restart_host_network_pods(ctx, node)
        return note

    async def _join(self, ctx: Context, node: ClusterHost) -> None:
        info = await ctx.join_info(control_plane=True)
        v = ctx.version
        if v.certificate_key_in_config:
            doc = kubeadm.join_document(
                v,
                info,
                info.endpoint,
                control_plane_address=node.ip,
                cri_socket=ctx.cri_socket(node),
            )
            command, secrets = kubeadm.join_with_config_command(), kubeadm.dump([doc])
        else:
            command = kubeadm.join_command_1_14_control_plane(
                v, info.endpoint, info.ca_cert_hashes, node.ip, ctx.cri_socket(node)
            )
            secrets = f"{info.token}\n{info.certificate_key}\n"
        await node.ssh.run(
            once(rp.MARK_JOIN, command),
            input=secrets,
            timeout=JOIN_TIMEOUT,
            label="kubeadm join (control plane)",
        )
        await node.ssh.run(root_kubeconfig())
