"""Netlink with the standard library only: the route requests lvscare makes every start, and the
kernel's change notifications it listens to.

- `RtNetlink`: `ip route get` and `ip route add` for the VIP's host route (route mode). pyroute2
  does the same, but importing it costs more CPU than the rest of lvscare's start together.
- `KernelWatch`: one socket subscribed to nftables' notifications (NFNLGRP_NFTABLES) and one to
  route/address/link notifications (RTMGRP_*). `relevant()` drains a socket and says whether a
  message touched one of lvscare's tables or the VIP's route, address or link: the loop then
  reconciles at once instead of at the next tick. IPVS has no notifications; it keeps the tick.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from typing import Optional

NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NFNLGRP_NFTABLES = 7

NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLM_F_DUMP = 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC = 1, 4, 5, 7
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFLA_IFNAME = 3
RTN_UNICAST = 1
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x10, 0x40
RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE = 0x100, 0x400

NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 15
NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_INET = 2, 10, 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_ATTR = struct.Struct("=HH")  # nlattr: length, type
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, proto, scope, type


def _align(n: int) -> int:
    return (n + 3) & ~3


def attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """The attributes (type -> payload) from `offset` to the end of `data`; nested flags dropped."""
    found: dict[int, bytes] = {}
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        found.setdefault(kind & 0x3FFF, data[offset + _ATTR.size : offset + length])
        offset += _align(length)
    return found


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded."""
    raw = _ATTR.pack(_ATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, sequence, body) of each message in one datagram."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        yield kind, seq, data[offset + _HEADER.size : offset + length]
        offset += _align(length)


def exchange(
    sock: socket.socket, seq: int, kind: int, flags: int, body: bytes
) -> list[tuple[int, bytes]]:
    """Send one request and read its answers, (type, body) each: up to the kernel's ack or the
    end of a dump; a request that asked for neither ends with its first answer. An error answer
    is an OSError with the kernel's errno."""
    sock.send(_HEADER.pack(_HEADER.size + len(body), kind, flags, seq, 0) + body)
    answers: list[tuple[int, bytes]] = []
    while True:
        data = sock.recv(1 << 16)
        for mtype, mseq, mbody in messages(data):
            if mseq != seq:
                continue
            if mtype == NLMSG_ERROR:
                code = -struct.unpack_from("=i", mbody)[0]
                if code:
                    raise OSError(code, os.strerror(code))
                return answers
            if mtype == NLMSG_DONE:
                return answers
            answers.append((mtype, mbody))
        if not flags & (NLM_F_ACK | NLM_F_DUMP) and answers:
            return answers


def _socket(protocol: int, groups: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
    try:
        sock.bind((0, groups))
    except OSError:
        sock.close()
        raise
    return sock


class RtNetlink:
    """Requests on one rtnetlink socket, answered in order (blocking: each takes microseconds)."""

    def __init__(self) -> None:
        self.sock = _socket(NETLINK_ROUTE)
        self.seq = 0

    def _request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        self.seq += 1
        return exchange(self.sock, self.seq, kind, flags, body)

    def route_get(self, dst: str) -> dict:
        """`ip route get DST`: {"oif", "prefsrc", "gateway", "type"} (missing keys: None)."""
        address = ipaddress.ip_address(dst)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        body = _RTMSG.pack(family, address.max_prefixlen, 0, 0, 0, 0, 0, 0, 0)
        body += attr(RTA_DST, address.packed)
        answers = self._request(RTM_GETROUTE, NLM_F_REQUEST, body)
        if not answers:
            raise OSError(errno.ENETUNREACH, f"no route to {dst}")
        msg = answers[0][1]
        rtm_type = _RTMSG.unpack_from(msg)[7]
        found = attrs(msg, _RTMSG.size)

        def address_of(kind: int) -> Optional[str]:
            raw = found.get(kind)
            return str(ipaddress.ip_address(raw)) if raw else None

        oif = found.get(RTA_OIF)
        return {
            "oif": struct.unpack("=I", oif)[0] if oif else None,
            "prefsrc": address_of(RTA_PREFSRC),
            "gateway": address_of(RTA_GATEWAY),
            "type": rtm_type,
        }

    def route_add(
        self,
        dst: str,
        oif: int,
        proto: int,
        scope: int,
        prefsrc: Optional[str] = None,
        gateway: Optional[str] = None,
    ) -> None:
        """`ip route add DST/32 dev OIF [via GW] [src SRC] proto PROTO scope SCOPE` (main table)."""
        address = ipaddress.ip_address(dst)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        body = _RTMSG.pack(
            family, address.max_prefixlen, 0, 0, RT_TABLE_MAIN, proto, scope, RTN_UNICAST, 0
        )
        body += attr(RTA_DST, address.packed) + attr(RTA_OIF, struct.pack("=I", oif))
        if prefsrc:
            body += attr(RTA_PREFSRC, ipaddress.ip_address(prefsrc).packed)
        if gateway:
            body += attr(RTA_GATEWAY, ipaddress.ip_address(gateway).packed)
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        self._request(RTM_NEWROUTE, flags, body)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


class KernelWatch:
    """Notifications about lvscare's nftables tables and the VIP's route, address and link."""

    def __init__(self, vip: str, tables: tuple[str, ...], link: str = "lvscare0"):
        address = ipaddress.ip_address(vip)
        self.vip = address.packed
        self.plen = address.max_prefixlen
        self.tables = {name.encode() for name in tables}
        self.link = link.encode()
        self.sockets: list[socket.socket] = []
        self.missing: list[str] = []  # what could not be subscribed to, for the log
        try:
            nft = _socket(NETLINK_NETFILTER)
            try:
                nft.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
            except OSError:
                nft.close()
                raise
            self.sockets.append(nft)
        except OSError as exc:
            self.missing.append(f"nftables notifications ({exc.strerror or exc})")
        groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE
        groups |= RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
        try:
            self.sockets.append(_socket(NETLINK_ROUTE, groups))
        except OSError as exc:
            self.missing.append(f"route notifications ({exc.strerror or exc})")
        for sock in self.sockets:
            sock.setblocking(False)
            # A flush of a big ruleset sends thousands of messages: room for them, then we
            # drain at once (an overflow still counts as "something changed").
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def relevant(self, sock: socket.socket) -> bool:
        """Read every pending message of `sock`; True when one concerns lvscare's rules."""
        hit = False
        while True:
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                return hit
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # messages were lost: assume the worst
                    hit = True
                    continue
                return hit
            if not data:
                return hit
            if not hit:
                hit = any(self._concerns(kind, body) for kind, _seq, body in messages(data))

    def _concerns(self, kind: int, body: bytes) -> bool:
        if kind >> 8 == NFNL_SUBSYS_NFTABLES:
            if kind & 0xFF == NFT_MSG_NEWGEN or len(body) < 4:
                return False
            if body[0] not in (NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_INET):
                return False
            # Attribute 1 is the table's name in every object message (table, chain, rule, set,
            # element, object, flowtable).
            return attrs(body, 4).get(1, b"").rstrip(b"\0") in self.tables
        if kind in (RTM_NEWROUTE, RTM_DELROUTE):
            if len(body) < _RTMSG.size or body[1] != self.plen:
                return False
            return attrs(body, _RTMSG.size).get(RTA_DST) == self.vip
        if kind in (RTM_NEWADDR, RTM_DELADDR):
            found = attrs(body, 8)
            return self.vip in (found.get(IFA_ADDRESS), found.get(IFA_LOCAL))
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            return attrs(body, 16).get(IFLA_IFNAME, b"").rstrip(b"\0") == self.link
        return False

    def close(self) -> None:
        """Close the sockets."""
        for sock in self.sockets:
            sock.close()
        self.sockets = []
