"""A real container registry for the lab: Debian's `docker-registry` (the distribution registry
server, 2.8), unpacked into the lab cache (never installed, its Debian service never started) and
run as one process with plain HTTP on a lab address (or 127.0.0.1 for tests), storage in a
folder we give it. Stopped by its PID: `Registry.stop()`, the `running()` context manager, or
`sealos-lab down` for a lab's (see `releases`).
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from sealos_lab import debs, servers

PACKAGE = "docker-registry"
BINARY = "/usr/bin/docker-registry"


def config(storage: Path, address: str, port: int) -> str:
    """The registry's configuration: filesystem storage, plain HTTP on ADDR:PORT, no auth."""
    data = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {
            "addr": f"{address}:{port}",
            # One registry, no load balancer: any secret will do, but say one (or it warns).
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    return json.dumps(data, indent=2) + "\n"  # YAML is a superset of JSON


def binary() -> Path:
    """Debian's registry server, unpacked in the lab cache (downloaded once)."""
    return debs.unpacked(PACKAGE, debs.native_arch()).path(BINARY)


def start(
    workdir: Path, address: str = "127.0.0.1", port: int = 0, in_netns: Optional[str] = None
) -> servers.Server:
    """Start a registry keeping its blobs in `workdir/storage`; returns once it listens.
    Port 0 picks a free one (only on 127.0.0.1 of this namespace)."""
    if port == 0:
        if in_netns:
            raise ValueError("give a port for a registry inside a namespace")
        port = servers.free_port(address)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "storage").mkdir(exist_ok=True)
    cfg = workdir / "config.yml"
    cfg.write_text(config(workdir / "storage", address, port))
    return servers.start(
        "registry",
        [str(binary()), "serve", str(cfg)],
        address,
        port,
        workdir / "registry.log",
        in_netns=in_netns,
    )


@contextlib.contextmanager
def running(
    workdir: Path, address: str = "127.0.0.1", port: int = 0, in_netns: Optional[str] = None
) -> Iterator[servers.Server]:
    """A registry for the block, stopped by PID afterwards (also on failure)."""
    server = start(workdir, address, port, in_netns)
    try:
        yield server
    finally:
        servers.stop(server)
