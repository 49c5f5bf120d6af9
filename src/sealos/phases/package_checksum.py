"""--pkg-url without --pkg-sha256: read the published checksum (URL.sha256, sha256sum form) on the
first master, before anything changes; it is what every host's download is compared with."""

from __future__ import annotations

import re

from sealos.context import ClusterHost, Context
from sealos.errors import HostError, ValidationFailed
from sealos.phases.base import Phase
from sealos.remote_paths import q


class FetchPackageChecksum(Phase):
    """On the first master; a checksum that cannot be read stops the action (nothing changed)."""

    title = "Read the package checksum"
    in_dry_run = True  # it only reads

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        if not ctx.spec.pkg_url or ctx.package_sha256:
            return []
        return [ctx.first_master]

    def skip_reason(self, ctx: Context) -> str:
        return "given or recorded" if ctx.spec.pkg_url else "the package is uploaded"

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        node = nodes[0]
        url = f"{ctx.spec.pkg_url}.sha256"
        fetch = f"curl -fsSL {q(url)} 2>&1 || wget -qO- {q(url)} 2>&1"
        try:
            result = await node.ssh.run(fetch, timeout=60, check=False)
        except HostError as e:
            raise ValidationFailed([str(e)]) from None
        match = re.search(r"\b[0-9a-fA-F]{64}\b", result.stdout)
        if result.exit_status != 0 or match is None:
            raise ValidationFailed(
                [
                    f"{node.name}: cannot read the package checksum from {url}; "
                    "publish it there (sha256sum output) or give --pkg-sha256."
                ]
            )
        ctx.package_sha256 = match.group(0).lower()
        ctx.ui.host_done(node.name, True, f"SHA-256 {ctx.package_sha256[:12]}…")
