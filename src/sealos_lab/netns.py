"""Isolated networks made of Linux network namespaces: one namespace holds a bridge (the "switch"
and the operator's side), each host gets a namespace joined to it by a veth pair
(or a tap for a VM).

Nothing here has an uplink or a default route out: traffic stays inside the namespaces we made.
Every name starts with the network's prefix, so `destroy()` finds all of it, also after a crash.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

NETNS_DIR = "/run/netns"


def ip(*args: str, netns: Optional[str] = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `ip ARGS` (inside `netns` when given); raise with ip's own message on failure."""
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


def list_netns() -> list[str]:
    """Names of all named network namespaces."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def exists(name: str) -> bool:
    """True when the named namespace exists."""
    return name in list_netns()


def add(name: str) -> None:
    """Create a namespace with loopback up (idempotent)."""
    if not exists(name):
        ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def delete(name: str) -> None:
    """Delete a namespace; a missing one is fine."""
    ip("netns", "del", name, check=False)


def run(netns: str, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command inside a namespace (subprocess.run keyword arguments pass through)."""
    return subprocess.run(["ip", "netns", "exec", netns, *argv], **kwargs)


def popen(netns: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
    """Start a command inside a namespace; the caller owns the process and stops it by PID."""
    return subprocess.Popen(["ip", "netns", "exec", netns, *argv], **kwargs)


def short_ifname(*parts: str) -> str:
    """A stable interface name of at most 15 characters (the kernel's limit) for these parts."""
    return "v" + hashlib.sha1("/".join(parts).encode()).hexdigest()[:12]  # noqa: S324


@dataclass
class Attached:
    """One end of the network: a host namespace (or a tap for a VM) with its address."""

    name: str
    netns: str
    ip: str
    prefixlen: int
    ifname: str


class Network:
    """An isolated L2 segment: namespace `<prefix>-sw` holds bridge `br0` with the first address
    of `subnet` (the operator side); hosts attach by veth or tap. No uplink, no default route."""

    def __init__(self, prefix: str, subnet: str):
        self.prefix = prefix
        self.subnet = ipaddress.ip_network(subnet)
        self.switch_ns = f"{prefix}-sw"
        self.bridge = "br0"
        self.gateway = str(self.subnet.network_address + 1)

    def address(self, index: int) -> str:
        """The address with host part `index` inside the subnet."""
        return str(self.subnet.network_address + index)

    def create(self) -> None:
        """Create the switch namespace and its bridge (idempotent)."""
        add(self.switch_ns)
        if ip("link", "show", self.bridge, netns=self.switch_ns, check=False).returncode != 0:
            ip("link", "add", self.bridge, "type", "bridge", netns=self.switch_ns)
            # No STP and no forwarding delay: hosts talk as soon as their link is up.
            ip(
                "link",
                "set",
                self.bridge,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
                netns=self.switch_ns,
            )
            ip(
                "addr",
                "add",
                f"{self.gateway}/{self.subnet.prefixlen}",
                "dev",
                self.bridge,
                netns=self.switch_ns,
            )
        ip("link", "set", self.bridge, "up", netns=self.switch_ns)

    def add_host(self, name: str, index: int, ifname: str = "eth0") -> Attached:
        """A namespace `<prefix>-<name>` joined to the bridge, `ifname` inside with .index."""
        ns = f"{self.prefix}-{name}"
        add(ns)
        outer = short_ifname(self.prefix, name)
        if ip("link", "show", ifname, netns=ns, check=False).returncode != 0:
            ip("link", "del", outer, netns=self.switch_ns, check=False)
            ip(
                "link",
                "add",
                outer,
                "netns",
                self.switch_ns,
                "type",
                "veth",
                "peer",
                "name",
                ifname,
                "netns",
                ns,
            )
            ip("link", "set", outer, "master", self.bridge, "up", netns=self.switch_ns)
            addr = f"{self.address(index)}/{self.subnet.prefixlen}"
            ip("addr", "add", addr, "dev", ifname, netns=ns)
        ip("link", "set", ifname, "up", netns=ns)
        return Attached(name, ns, self.address(index), self.subnet.prefixlen, ifname)

    def add_tap(self, name: str, index: int) -> Attached:
        """A tap device on the bridge for a VM; the VM configures .index itself."""
        tap = short_ifname(self.prefix, "tap", name)
        if ip("link", "show", tap, netns=self.switch_ns, check=False).returncode != 0:
            ip("tuntap", "add", "dev", tap, "mode", "tap", netns=self.switch_ns)
            ip("link", "set", tap, "master", self.bridge, "up", netns=self.switch_ns)
        return Attached(name, self.switch_ns, self.address(index), self.subnet.prefixlen, tap)

    def namespaces(self) -> list[str]:
        """Every namespace of this network that exists now."""
        return [n for n in list_netns() if n.startswith(self.prefix + "-")]

    def destroy(self) -> None:
        """Remove every namespace of this network (veths and taps go with them)."""
        for ns in self.namespaces():
            delete(ns)
