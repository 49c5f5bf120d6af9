"""Unpack the package to /root/kube and run its kube/shell/init.sh (images, kubelet, binaries)."""

from __future__ import annotations

from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase
from sealos.phases.commands import mark, record_installed
from sealos.remote_paths import q


class PrepareHosts(Phase):
    """Hosts whose /root/kube does not come from this package yet."""

    title = "Unpack the package and run init.sh"

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [
            n
            for n in ctx.nodes
            if n.facts is not None and n.facts.package_ready != ctx.package_sha256
        ]

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        pkg = rp.package_file(ctx.spec.package_name)
        # A fresh folder: files of an older package must not mix with this one.
        await ctx.wet(
            node,
            f"unpack {pkg} to {rp.PACKAGE_DIR}",
            lambda: node.ssh.run(
                f"rm -rf {q(rp.PACKAGE_DIR)} && tar -C {q(rp.HOME)} -xzf {q(pkg)} "
                f"&& test -f {q(rp.INIT_SCRIPT)}",
                timeout=1800,
                label=f"unpacking {ctx.spec.package_name} "
                "(a sealos package has kube/shell/init.sh)",
            ),
            step=f"unpacking to {rp.PACKAGE_DIR}",
        )
        shell_dir = rp.INIT_SCRIPT.rsplit("/", 1)[0]
        await ctx.wet(
            node,
            f"run {rp.INIT_SCRIPT}",
            lambda: node.ssh.run(
                f"cd {q(shell_dir)} && sh init.sh && {record_installed()} && "
                f"{mark(rp.MARK_PACKAGE, ctx.package_sha256 or '')}",
                timeout=1800,
                label="kube/shell/init.sh",
            ),
            step="running init.sh",
        )
        return "package ready"
