"""Join the worker nodes in parallel, each reaching the masters through its own lvscare:
apiserver name -> VIP in /etc/hosts, lvscare bundle installed, the VIP rule in place, then
`kubeadm join VIP:6443`.

With the systemd unit (ordered before kubelet) the unit is started before the join: it is
`Type=notify`, so its start returns once lvscare has made the VIP rule, and one lvscare process
does what `care --run-once` plus the service did (half the Python start-ups on the nodes, which
share the operator's CPUs in the lab). A static pod only runs once kubelet does, after the join,
so that way the rule is made first with `lvscare care --run-once`.
"""

from __future__ import annotations

import shlex

from sealos import kubeadm, lvscare_node
from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase
from sealos.phases.commands import map_apiserver, once, reset_half_join

JOIN_TIMEOUT = 900.0


def keeper(ctx: Context) -> lvscare_node.Keeper:
    """The lvscare keeper every node of this run should have (the cluster's mode and masters)."""
    spec = ctx.spec
    masters = tuple(m.ip for m in ctx.masters)
    return lvscare_node.Keeper(spec.lvscare_mode, spec.vip, masters, spec.lvscare_image)


class JoinNodes(Phase):
    """Nodes not joined yet, or whose hosts entry or lvscare is not as it should be."""

    title = "Join the nodes"

    def _lvscare_ok(self, ctx: Context, node: ClusterHost) -> bool:
        f = node.facts
        assert f is not None
        bundle_ok = ctx.bundle is not None and f.lvscare_sha256 == ctx.bundle.sha256
        return bundle_ok and keeper(ctx).is_current(f)

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [
            n
            for n in ctx.workers
            if n.facts is not None
            and not (
                n.facts.join_done
                and n.hosts_entry_is(ctx.spec.vip, ctx.spec.apiserver)
                and self._lvscare_ok(ctx, n)
            )
        ]

    async def prepare(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        # The lvscare bundle is built by its own phase (BuildLvscareBundle), before any change.
        if any(n.facts is not None and not n.facts.join_done for n in nodes):
            await ctx.join_info(control_plane=False)

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        f = node.facts
        assert f is not None
        spec, ssh = ctx.spec, node.ssh
        want = keeper(ctx)
        if not node.hosts_entry_is(spec.vip, spec.apiserver):
            await map_apiserver(ctx, node, spec.vip, f"the VIP {spec.vip}")
        bundle = ctx.bundle
        assert bundle is not None  # built by its own phase, before any node changes
        new_bundle = f.lvscare_sha256 != bundle.sha256
        if new_bundle:
            await ctx.wet(
                node,
                f"install the lvscare bundle to {rp.LVSCARE_BIN}",
                lambda: ssh.upload_if_changed(
                    bundle.path, rp.LVSCARE_BIN, bundle.sha256, mode=0o755, check_first=False
                ),
                step="installing lvscare",
            )
        systemd = want.mode == lvscare_node.SYSTEMD
        current = self._lvscare_ok(ctx, node)
        if systemd and not current:
            # Before the join: its start returns once the VIP rule is in place.
            care = " ".join(lvscare_node.care_args(spec.vip, list(want.masters)))
            await ctx.wet(
                node,
                f"keep lvscare running: {rp.LVSCARE_UNIT} (Before=kubelet.service; its start "
                f"returns once the VIP rule is in place): lvscare {care}",
                lambda: want.install(ssh, f, new_bundle),
                step=f"lvscare service ({lvscare_node.UNIT_NAME})",
            )
        note = "lvscare updated; joined before"
        if not f.join_done:
            await self._join(ctx, node, want)
            note = "joined"
        if not systemd and not current:
            await ctx.wet(
                node,
                f"keep lvscare running: static pod {rp.LVSCARE_MANIFEST}",
                lambda: want.install(ssh, f, new_bundle),
                step="lvscare static pod",
            )
        return note

    async def _join(self, ctx: Context, node: ClusterHost, want: lvscare_node.Keeper) -> None:
        f = node.facts
        assert f is not None
        spec, ssh = ctx.spec, node.ssh
        if f.kubeadm_leftovers:
            await reset_half_join(ctx, node)
        if want.mode != lvscare_node.SYSTEMD:
            rule = lvscare_node.care_args(spec.vip, list(want.masters), run_once=True)
            await ctx.wet(
                node,
                f"lvscare {' '.join(rule)}",
                lambda: ssh.run(shlex.join([rp.LVSCARE_BIN, *rule]), timeout=120),
                step="lvscare care --run-once (VIP rule)",
            )
        endpoint = f"{spec.vip}:{kubeadm.APISERVER_PORT}"

        async def join() -> None:
            info = await ctx.join_info(control_plane=False)
            doc = kubeadm.join_document(
                ctx.version, info, endpoint, cri_socket=ctx.cri_socket(node)
            )
            await ssh.run(
                once(rp.MARK_JOIN, kubeadm.join_with_config_command()),
                input=kubeadm.dump([doc]),
                timeout=JOIN_TIMEOUT,
                label=f"kubeadm join {endpoint}",
            )

        await ctx.wet(
            node,
            f"kubeadm join {endpoint} (token via a 0600 file)",
            join,
            f"kubeadm join {endpoint}",
        )
