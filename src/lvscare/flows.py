"""End the connections still pinned to a real server lvscare removed.

Neither backend moves an established connection: conntrack (nft) and IPVS's connection table keep
it on its real server. A kept-alive client through the VIP (kubelet's watch) would stay pinned to
a removed, black-holed master until TCP gives up, minutes later. lvscare's clients are on this
node (it is a node-local load balancer), so when it removes a real server it finds the local
sockets whose flows go there (nft: /proc/net/nf_conntrack; IPVS: /proc/net/ip_vs_conn) and
destroys them with SOCK_DESTROY (sock_diag netlink, what `ss -K` does): the client gets an error
at once and reconnects, through the VIP, to a live master. Standard library only.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Iterable

from lvscare.model import Endpoint

NETLINK_SOCK_DIAG = 4
SOCK_DESTROY = 21
_HEADER = struct.Struct("=IHHII")
_NOCOOKIE = 0xFFFFFFFF


def _fields(line: str) -> list[dict[str, str]]:
    """The `key=value` groups of a conntrack line: [original direction, reply direction]."""
    groups: list[dict[str, str]] = []
    for word in line.split():
        key, sep, value = word.partition("=")
        if not sep:
            continue
        if key == "src" or not groups:
            groups.append({})
        groups[-1].setdefault(key, value)
    return groups


def conntrack_clients(
    vip: Endpoint, rs: Endpoint, path: str = "/proc/net/nf_conntrack"
) -> list[Endpoint]:
    """Clients (address, port) of TCP flows VIP -> `rs` in the conntrack table."""
    found = []
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError:
        return []
    for line in lines:
        if " tcp " not in line:
            continue
        groups = _fields(line)
        if len(groups) < 2:
            continue
        orig, reply = groups[0], groups[1]
        try:
            if (
                ipaddress.ip_address(orig["dst"]) == ipaddress.ip_address(vip.host)
                and int(orig["dport"]) == vip.port
                and ipaddress.ip_address(reply["src"]) == ipaddress.ip_address(rs.host)
                and int(reply["sport"]) == rs.port
            ):
                found.append(Endpoint(str(ipaddress.ip_address(orig["src"])), int(orig["sport"])))
        except (KeyError, ValueError):
            continue
    return found


def _hex_address(text: str) -> str:
    if len(text) == 8:
        return str(ipaddress.IPv4Address(int(text, 16)))
    return str(ipaddress.ip_address(text))


def ipvs_clients(vip: Endpoint, rs: Endpoint, path: str = "/proc/net/ip_vs_conn") -> list[Endpoint]:
    """Clients of TCP connections VIP -> `rs` in IPVS's connection table."""
    found = []
    try:
        with open(path) as f:
            lines = f.readlines()[1:]
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) < 7 or parts[0] != "TCP":
            continue
        try:
            client = Endpoint(_hex_address(parts[1]), int(parts[2], 16))
            to = Endpoint(_hex_address(parts[3]), int(parts[4], 16))
            dest = Endpoint(_hex_address(parts[5]), int(parts[6], 16))
        except ValueError:
            continue
        if to == vip and dest == rs:
            found.append(client)
    return found


def _destroy_request(client: Endpoint, vip: Endpoint) -> bytes:
    family = socket.AF_INET6 if vip.family == 6 else socket.AF_INET
    src = ipaddress.ip_address(client.host).packed.ljust(16, b"\0")
    dst = ipaddress.ip_address(vip.host).packed.ljust(16, b"\0")
    body = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
    body += struct.pack("!HH", client.port, vip.port) + src + dst
    body += struct.pack("=III", 0, _NOCOOKIE, _NOCOOKIE)
    return body


def destroy(clients: Iterable[Endpoint], vip: Endpoint) -> int:
    """SOCK_DESTROY each local socket client -> VIP; returns how many this node had."""
    clients = list(clients)
    if not clients:
        return 0
    ended = 0
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       NETLINK_SOCK_DIAG) as sock:  # fmt: skip
        sock.bind((0, 0))
        for seq, client in enumerate(clients, 1):
            body = _destroy_request(client, vip)
            sock.send(_HEADER.pack(_HEADER.size + len(body), SOCK_DESTROY, 0x5, seq, 0) + body)
            data = sock.recv(4096)
            if len(data) >= _HEADER.size + 4:
                code = -struct.unpack_from("=i", data, _HEADER.size)[0]
                if code == 0:
                    ended += 1
                elif code not in (errno.ENOENT, errno.EOPNOTSUPP):
                    raise OSError(code, f"destroying {client} -> {vip}")
    return ended
