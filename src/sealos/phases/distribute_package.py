"""Put the offline package on every host: SFTP upload (skipped where the same SHA-256 is there)
or, with --pkg-url, each host downloads it with curl or wget and the checksum is compared.

The URL may hold credentials (user:pw@, a signed query string): it reaches curl or wget on their
stdin (`curl -K -`, `wget -i -`), never their argv (which every user of the host can read in
/proc), and messages show it redacted.
"""

from __future__ import annotations

from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.errors import HostError
from sealos.phases.base import Phase
from sealos.redaction import redact_url
from sealos.remote_paths import q


def fetch_command(tool: str, out: str = "-") -> str:
    """curl or wget writing the URL given on stdin (see `fetch_input`) to `out` ('-': stdout)."""
    if tool == "curl":
        return "curl -fsSL -K -" + ("" if out == "-" else f" -o {q(out)}")
    return f"wget -q -O {q(out)} -i -"


def fetch_input(tool: str, url: str) -> str:
    """What `fetch_command` reads on stdin: a curl config line, or wget's list of URLs."""
    if tool == "curl":
        quoted = url.replace("\\", "\\\\").replace('"', '\\"')
        return f'url = "{quoted}"\n'
    return f"{url}\n"


class DistributePackage(Phase):
    """Copy or download the package to /root/<name>."""

    title = "Distribute the package"

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        sha = ctx.package_sha256
        return [
            n
            for n in ctx.nodes
            if n.facts is not None and sha not in (n.facts.package_ready, n.facts.package_sha256)
        ]

    def skip_reason(self, ctx: Context) -> str:
        return "every host has it already (same SHA-256)"

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        target = rp.package_file(ctx.spec.package_name)
        sha = ctx.package_sha256
        assert sha is not None or ctx.dry_run
        if ctx.spec.pkg_url:
            done = await ctx.wet(
                node,
                f"download {redact_url(ctx.spec.pkg_url)} to {target} and compare its SHA-256",
                lambda: self._download(ctx, node, target, sha or ""),
                step=f"downloading {ctx.spec.package_name}",
            )
            return done or ""
        pkg = ctx.spec.pkg
        assert pkg is not None
        size = f" ({ctx.package.size / 1024**2:.1f} MiB)" if ctx.package else ""
        copied = await ctx.wet(
            node,
            f"upload {pkg} to {target}{size}",
            lambda: node.ssh.upload_if_changed(
                pkg,
                target,
                sha or "",
                progress=lambda done, total: ctx.ui.progress(node.name, done, total),
                # Facts hashed the host's copy already (it differs): hashing 500 MB again costs
                # seconds.
                check_first=False,
            ),
            step=f"uploading {ctx.spec.package_name}",
        )
        return "package uploaded" if copied else "package already there"

    async def _download(self, ctx: Context, node: ClusterHost, target: str, sha: str) -> str:
        url = ctx.spec.pkg_url
        assert url is not None
        shown = redact_url(url)
        part = f"{target}{rp.PART}"
        tool = "curl" if node.facts and "curl" in node.facts.tools else "wget"
        result = await node.ssh.run(
            f"{fetch_command(tool, part)} && mv -f {q(part)} {q(target)}",
            input=fetch_input(tool, url),
            check=False,
            timeout=3600,
        )
        if not result.ok:
            await node.ssh.run(f"rm -f {q(part)}", check=False)
            reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or [
                f"exit {result.exit_status}"
            ]
            raise HostError(
                node.name,
                f"{tool} could not download {shown} ({ctx.redact(reason[0])}); "
                "check the URL from that host.",
            )
        got = await node.ssh.sha256(target)
        if got != sha:
            # Remove it: a wrong file must not stay behind looking like the package.
            await node.ssh.run(f"rm -f {q(target)}", check=False)
            raise HostError(
                node.name,
                f"the package downloaded from {shown} has SHA-256 {got}, expected {sha}; "
                "check the URL and the checksum (--pkg-sha256 or URL.sha256).",
            )
        return "package downloaded"
