"""Apply the package's CNI manifest on the first master (unless --without-cni)."""

from __future__ import annotations

from typing import Any

import yaml

from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.errors import HostError
from sealos.phases.base import Phase
from sealos.remote_paths import q

POOL_VAR = "CALICO_IPV4POOL_CIDR"


def with_pod_cidr(manifest: str, pod_cidr: str) -> str | None:
    """The manifest with calico's pool set to the pod CIDR, or None when nothing must change."""
    docs = list(yaml.safe_load_all(manifest))
    changed = False
    for doc in docs:
        for env in _env_lists(doc):
            for item in env:
                if (
                    isinstance(item, dict)
                    and item.get("name") == POOL_VAR
                    and item.get("value") != pod_cidr
                ):
                    item["value"] = pod_cidr
                    changed = True
    if not changed:
        return None
    return yaml.safe_dump_all([d for d in docs if d is not None], sort_keys=False)


def _env_lists(doc: Any) -> list[list[Any]]:
    if not isinstance(doc, dict):
        return []
    spec = (
        doc.get("spec", {}).get("template", {}).get("spec", {})
        if isinstance(doc.get("spec"), dict)
        else {}
    )
    lists = []
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict) and isinstance(c.get("env"), list):
                lists.append(c["env"])
    return lists


class ApplyCNI(Phase):
    """kubectl apply -f kube/conf/net/calico.yaml (pool set to --podcidr)."""

    title = "Apply the CNI"
    parallel = False

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [] if ctx.spec.without_cni else [ctx.first_master]

    def skip_reason(self, ctx: Context) -> str:
        return "skipped (--without-cni)"

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        await ctx.wet(
            node,
            f"kubectl apply -f {rp.CNI_MANIFEST} (pod network {ctx.spec.pod_cidr})",
            lambda: self._apply(ctx, node),
            step="kubectl apply",
        )
        return "CNI applied"

    async def _apply(self, ctx: Context, node: ClusterHost) -> None:
        ssh = node.ssh
        exists = await ssh.run(f"test -f {q(rp.CNI_MANIFEST)}", check=False)
        if not exists.ok:
            raise HostError(
                node.name,
                f"the package has no {rp.CNI_MANIFEST.removeprefix(rp.HOME + '/')}; "
                "use --without-cni or a package with a CNI manifest.",
            )
        manifest = rp.CNI_MANIFEST
        try:
            text = (await ssh.read_bytes(rp.CNI_MANIFEST)).decode()
            rewritten = with_pod_cidr(text, ctx.spec.pod_cidr)
        except (UnicodeDecodeError, yaml.YAMLError):
            rewritten = None
            ctx.ui.warn(f"{node.name}: {rp.CNI_MANIFEST} is not plain YAML; applied as it is.")
        if rewritten is not None:
            await ssh.put_bytes(rewritten.encode(), rp.CNI_MANIFEST_RENDERED)
            manifest = rp.CNI_MANIFEST_RENDERED
        await ssh.run(
            f"kubectl --kubeconfig {q(rp.ADMIN_CONF)} apply -f {q(manifest)}", timeout=300
        )
