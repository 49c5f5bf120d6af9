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

import hashlib
import shlex

from sealos import kubeadm, lvscare_node
from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.etc_hosts import set_entry_command
from sealos.phases.base import Phase
from sealos.phases.commands import once
from sealos.remote_paths import q

JOIN_TIMEOUT = 900.0


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def desired_unit(ctx: Context) -> str:
    """The systemd unit for this cluster's VIP and masters."""
    return lvscare_node.systemd_unit(ctx.spec.vip, [m.ip for m in ctx.masters])


def desired_manifest(ctx: Context) -> str:
    """The static pod manifest for this cluster's VIP and masters."""
    return lvscare_node.static_pod_manifest(
        ctx.spec.vip, [m.ip for m in ctx.masters], ctx.spec.lvscare_image
    )


class JoinNodes(Phase):
    """Nodes not joined yet, or whose hosts entry or lvscare is not as it should be."""

    title = "Join the nodes"

    def _lvscare_ok(self, ctx: Context, node: ClusterHost) -> bool:
        f = node.facts
        assert f is not None
        bundle_ok = ctx.bundle is not None and f.lvscare_sha256 == ctx.bundle.sha256
        if ctx.spec.lvscare_mode == "systemd":
            keeper_ok = f.lvscare_unit_sha256 == _sha(desired_unit(ctx)) and f.lvscare_active
            keeper_ok = keeper_ok and f.lvscare_manifest_sha256 is None
        else:
            keeper_ok = f.lvscare_manifest_sha256 == _sha(desired_manifest(ctx))
            keeper_ok = keeper_ok and f.lvscare_unit_sha256 is None
        return bundle_ok and keeper_ok

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

    def describe(self, ctx: Context, node: ClusterHost) -> list[str]:
        assert node.facts is not None
        spec = ctx.spec
        masters = [m.ip for m in ctx.masters]
        lines = []
        if not node.hosts_entry_is(spec.vip, spec.apiserver):
            lines.append(f"/etc/hosts: map {spec.apiserver} to the VIP {spec.vip}")
        if ctx.bundle is None or node.facts.lvscare_sha256 != ctx.bundle.sha256:
            lines.append(f"install the lvscare bundle to {rp.LVSCARE_BIN}")
        systemd = spec.lvscare_mode == "systemd"
        if systemd and not self._lvscare_ok(ctx, node):
            care = " ".join(lvscare_node.care_args(spec.vip, masters))
            lines.append(
                f"keep lvscare running: {rp.LVSCARE_UNIT} (Before=kubelet.service; its start "
                f"returns once the VIP rule is in place): lvscare {care}"
            )
        if not node.facts.join_done:
            if node.facts.kubeadm_leftovers:
                lines.append("kubeadm reset -f (an earlier join stopped halfway)")
            if not systemd:
                run_once = " ".join(lvscare_node.care_args(spec.vip, masters, run_once=True))
                lines.append(f"lvscare {run_once}")
            lines.append(
                f"kubeadm join {spec.vip}:{kubeadm.APISERVER_PORT} (token via a 0600 file)"
            )
        if not systemd and not self._lvscare_ok(ctx, node):
            lines.append(f"keep lvscare running: static pod {rp.LVSCARE_MANIFEST}")
        return lines

    async def prepare(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        if ctx.bundle is None:
            ctx.bundle = lvscare_node.build_bundle(ctx.store.home / "cache")
        if any(n.facts is not None and not n.facts.join_done for n in nodes):
            await ctx.join_info(control_plane=False)

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        assert node.facts is not None and ctx.bundle is not None
        spec = ctx.spec
        host = node.ssh
        masters = [m.ip for m in ctx.masters]
        ctx.ui.step(node.name, f"/etc/hosts: {spec.apiserver} -> {spec.vip}")
        await host.run(set_entry_command(spec.vip, spec.apiserver))
        new_bundle = node.facts.lvscare_sha256 != ctx.bundle.sha256
        if new_bundle:
            ctx.ui.step(node.name, "installing lvscare")
            await host.upload_if_changed(
                ctx.bundle.path, rp.LVSCARE_BIN, ctx.bundle.sha256, mode=0o755, check_first=False
            )
            node.facts.lvscare_sha256 = ctx.bundle.sha256
        note = "lvscare updated; joined before"
        systemd = spec.lvscare_mode == "systemd"
        if systemd:
            # Returns once the VIP rule is in place.
            await self._keep_running(ctx, node, new_bundle)
        if not node.facts.join_done:
            if not systemd:
                ctx.ui.step(node.name, "lvscare care --run-once (VIP rule)")
                rule = lvscare_node.care_args(spec.vip, masters, run_once=True)
                await host.run(shlex.join([rp.LVSCARE_BIN, *rule]), timeout=120)
            ctx.ui.step(node.name, f"kubeadm join {spec.vip}:{kubeadm.APISERVER_PORT}")
            info = await ctx.join_info(control_plane=False)
            doc = kubeadm.join_document(ctx.version, info, f"{spec.vip}:{kubeadm.APISERVER_PORT}")
            await host.run(
                once(rp.MARK_JOIN, kubeadm.join_with_config_command()),
                input=kubeadm.dump([doc]),
                timeout=JOIN_TIMEOUT,
                label=f"kubeadm join {spec.vip}:{kubeadm.APISERVER_PORT}",
            )
            node.facts.join_done = True
            note = "joined"
        if not systemd:
            await self._keep_running(ctx, node, new_bundle)
        return note

    async def _keep_running(self, ctx: Context, node: ClusterHost, new_bundle: bool) -> None:
        """The systemd unit or the static pod; the other way goes if an earlier run used it.
        A running unit restarts when its text or the bundle changed."""
        f = node.facts
        assert f is not None
        host = node.ssh
        if ctx.spec.lvscare_mode == "systemd":
            unit = desired_unit(ctx)
            if f.lvscare_manifest_sha256 is not None:
                await host.run(f"rm -f {q(rp.LVSCARE_MANIFEST)}")
            ctx.ui.step(node.name, f"lvscare service ({lvscare_node.UNIT_NAME})")
            changed = f.lvscare_unit_sha256 != _sha(unit)
            if changed:
                await host.put_bytes(unit.encode(), rp.LVSCARE_UNIT, mode=0o644)
            if changed or new_bundle or not f.lvscare_active:
                # `restart` starts a stopped unit too.
                restart = changed or new_bundle
                await host.run(lvscare_node.service_command(restart), timeout=120)
            f.lvscare_unit_sha256, f.lvscare_active = _sha(unit), True
            f.lvscare_manifest_sha256 = None
        else:
            if f.lvscare_unit_sha256 is not None:
                await host.run(
                    f"systemctl disable --now {lvscare_node.UNIT_NAME}; "
                    f"rm -f {q(rp.LVSCARE_UNIT)}; "
                    "systemctl daemon-reload"
                )
            ctx.ui.step(node.name, "lvscare static pod")
            manifest = desired_manifest(ctx)
            if f.lvscare_manifest_sha256 != _sha(manifest):
                await host.put_bytes(manifest.encode(), rp.LVSCARE_MANIFEST, mode=0o644)
            f.lvscare_manifest_sha256, f.lvscare_unit_sha256 = _sha(manifest), None
