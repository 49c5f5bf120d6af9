"""--pkg-url without --pkg-sha256 (https only: validation refuses plain http without it): read
the published checksum (URL.sha256, sha256sum form) on the first master, before anything changes;
it is what every host's download is compared with."""

from __future__ import annotations

import re

from sealos.context import ClusterHost, Context
from sealos.errors import HostError, ValidationFailed
from sealos.phases.base import Phase
from sealos.phases.distribute_package import fetch_command, fetch_input
from sealos.redaction import redact_url


def checksum_url(url: str) -> str:
    """URL.sha256: `.sha256` added to the URL's path (before a query string, which stays)."""
    path, sep, query = url.partition("?")
    return f"{path}.sha256{sep}{query}"


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
        assert ctx.spec.pkg_url is not None
        url = checksum_url(ctx.spec.pkg_url)
        tool = "curl" if node.facts and "curl" in node.facts.tools else "wget"
        fetch = f"{fetch_command(tool)} 2>&1"
        try:
            result = await node.ssh.run(
                fetch, input=fetch_input(tool, url), timeout=60, check=False
            )
        except HostError as e:
            raise ValidationFailed([str(e)]) from None
        match = re.search(r"\b[0-9a-fA-F]{64}\b", result.stdout)
        if result.exit_status != 0 or match is None:
            raise ValidationFailed(
                [
                    f"{node.name}: cannot read the package checksum from {redact_url(url)}; "
                    "publish it there (sha256sum output) or give --pkg-sha256."
                ]
            )
        ctx.package_sha256 = match.group(0).lower()
        ctx.ui.host_done(node.name, True, f"SHA-256 {ctx.package_sha256[:12]}…")
