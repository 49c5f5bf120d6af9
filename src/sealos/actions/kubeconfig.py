"""`sealos kubeconfig`: fetch the cluster's admin kubeconfig from the first master that answers and
write it on the operator's machine (mode 0600), its server set to that master's address (or
`--server`), so kubectl works from here without the apiserver name in /etc/hosts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import yaml

from sealos import members, runner
from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.errors import HostError
from sealos.lvscare_node import endpoint
from sealos.phases.base import Phase
from sealos.phases.connect import Connect
from sealos.runner import Target


def with_server(text: bytes, server: str, source: str) -> bytes:
    """The kubeconfig with every cluster's server set to `server`."""
    try:
        config = yaml.safe_load(text)
        clusters = config["clusters"]
        for c in clusters:
            c["cluster"]["server"] = server
    except (yaml.YAMLError, TypeError, KeyError) as e:
        raise HostError(
            source, f"{rp.ADMIN_CONF} is not a kubeconfig ({e}); check that host."
        ) from None
    return yaml.safe_dump(config, sort_keys=False).encode()


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` with mode 0600 from the start (a temp file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + rp.PART)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class FetchKubeconfig(Phase):
    """On the first master that answers."""

    title = "Fetch the admin kubeconfig"
    parallel = False
    in_dry_run = True  # it writes only on the operator's machine, and says so in a dry run

    def __init__(self, out: Path, server: Optional[str]) -> None:
        self.out = out
        self.server = server

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        for m in ctx.masters:
            if m.error is None and m.ssh.connected:
                return [m]
        reasons = "; ".join(str(m.error) for m in ctx.masters if m.error is not None)
        raise HostError("sealos", f"no master answers ({reasons}); bring one up and run again.")

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        server = self.server or f"https://{endpoint(node.ip)}"
        if ctx.dry_run:
            ctx.would(node, f"copy {rp.ADMIN_CONF} to {self.out} (0600), server {server}")
            return ""
        data = with_server(await node.ssh.read_bytes(rp.ADMIN_CONF), server, node.name)
        write_private(self.out, data)
        return f"written to {self.out} (server {server})"


class Kubeconfig(runner.OnRecordedCluster):
    """Write the admin kubeconfig of the recorded cluster to `out`."""

    name = "kubeconfig"

    def __init__(self, recorded: runner.Recorded, out: Path, server: Optional[str] = None) -> None:
        masters = [members.address_of(m) for m in recorded.state.masters]
        super().__init__(recorded, masters, [])
        self.fetch = FetchKubeconfig(out, server)

    def targets(self, ctx: Context) -> list[Target]:
        return [Target(members.address_of(m), "master", m.ip) for m in ctx.state.masters]

    def phases(self) -> list[Phase]:
        return [Connect(), self.fetch]
