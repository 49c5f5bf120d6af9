"""`kubeadm init` on the first master, which maps the apiserver name to itself."""

from __future__ import annotations

from sealos import kubeadm
from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase
from sealos.phases.commands import map_apiserver, once, reset_plan, root_kubeconfig

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

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        f = node.facts
        assert f is not None
        spec = ctx.spec
        if not node.hosts_entry_is(node.ip, spec.apiserver):
            await map_apiserver(ctx, node, node.ip, f"{node.ip} (itself)")
        if f.init_done:
            return "hosts entry fixed; init was done before"
        if f.kubeadm_leftovers:
            ctx.would(node, reset_plan(f, "init"))
        config, source = self._config(ctx, node)
        await ctx.wet(
            node,
            f"write {rp.KUBEADM_CONFIG} ({source})",
            lambda: self._write_config(node, config),
            step="writing the kubeadm config",
        )
        await ctx.wet(
            node,
            kubeadm.init_command(ctx.version, rp.KUBEADM_CONFIG),
            lambda: self._init(ctx, node),
            step="kubeadm init (takes a while)",
        )
        return "kubeadm init done"

    def _config(self, ctx: Context, node: ClusterHost) -> tuple[bytes, str]:
        """The kubeadm config for `kubeadm init`, and how it was made (for the plan line)."""
        given = ctx.spec.kubeadm_config
        if given is not None:
            config, added = kubeadm.with_kubelet_document(given.read_bytes(), ctx.cgroup_driver())
            return config, f"{given} as given{added}"
        rendered = kubeadm.dump(kubeadm.init_documents(ctx.settings(), node.ip)).encode()
        return rendered, f"rendered, {ctx.version.kubeadm_api}"

    async def _write_config(self, node: ClusterHost, config: bytes) -> None:
        await node.ssh.put_bytes(config, rp.KUBEADM_CONFIG, mode=0o600)
        node.done.add(rp.KUBEADM_CONFIG)

    async def _init(self, ctx: Context, node: ClusterHost) -> None:
        command = once(rp.MARK_INIT, kubeadm.init_command(ctx.version, rp.KUBEADM_CONFIG))
        result = await node.ssh.run(command, timeout=INIT_TIMEOUT, label="kubeadm init")
        info = kubeadm.parse_join_commands(result.stdout)
        if info is not None:
            ctx.remember_join(info)
            given = ctx.spec.kubeadm_config
            # kubeadm made it for sealos (deleted at the end), unless the user's config lists it
            if given is None or info.token not in given.read_text(errors="replace"):
                ctx.tokens_made.append(info.token_id)
        await node.ssh.run(root_kubeconfig())
