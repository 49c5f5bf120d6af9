"""`kubeadm init` on the first master, which maps the apiserver name to itself."""

from __future__ import annotations

from sealos import kubeadm
from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.etc_hosts import set_entry_command
from sealos.phases.base import Phase
from sealos.phases.commands import once, root_kubeconfig

INIT_TIMEOUT = 1200.0


class InitFirstMaster(Phase):
    """Skipped when our marker says init finished there (no second `kubeadm init`)."""

    title = "Init the first master"
    parallel = False

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        m0 = ctx.first_master
        assert m0.facts is not None
        if m0.facts.init_done and m0.hosts_entry_is(m0.ip, ctx.spec.apiserver):
            return []
        return [m0]

    def describe(self, ctx: Context, node: ClusterHost) -> list[str]:
        assert node.facts is not None
        lines = []
        if not node.hosts_entry_is(node.ip, ctx.spec.apiserver):
            lines.append(f"/etc/hosts: map {ctx.spec.apiserver} to {node.ip} (itself)")
        if not node.facts.init_done:
            if node.facts.kubeadm_leftovers:
                lines.append("kubeadm reset -f (an earlier init stopped halfway)")
            source = (
                f"{ctx.spec.kubeadm_config} as given"
                if ctx.spec.kubeadm_config
                else f"rendered, {ctx.version.kubeadm_api}"
            )
            lines.append(f"write {rp.KUBEADM_CONFIG} ({source})")
            lines.append(kubeadm.init_command(ctx.version, rp.KUBEADM_CONFIG))
        return lines

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        assert node.facts is not None
        host = node.ssh
        ctx.ui.step(node.name, f"/etc/hosts: {ctx.spec.apiserver} -> {node.ip}")
        await host.run(set_entry_command(node.ip, ctx.spec.apiserver))
        if node.facts.init_done:
            return "hosts entry fixed; init was done before"
        if ctx.spec.kubeadm_config is not None:
            config = ctx.spec.kubeadm_config.read_bytes()
        else:
            config = kubeadm.dump(kubeadm.init_documents(ctx.settings(), node.ip)).encode()
        await host.put_bytes(config, rp.KUBEADM_CONFIG, mode=0o600)
        node.facts.kubeadm_config_sha256 = "written"
        ctx.ui.step(node.name, "kubeadm init (takes a while)")
        command = once(rp.MARK_INIT, kubeadm.init_command(ctx.version, rp.KUBEADM_CONFIG))
        result = await host.run(command, timeout=INIT_TIMEOUT, label="kubeadm init")
        node.facts.init_done = True
        info = kubeadm.parse_join_commands(result.stdout)
        if info is not None:
            ctx.remember_join(info)
        await host.run(root_kubeconfig())
        return "kubeadm init done"
