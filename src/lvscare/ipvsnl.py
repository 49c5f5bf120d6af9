"""IPVS over generic netlink with the standard library only (what lvscare needs of it).

pyroute2 does this too, but importing its IPVS module cost more CPU than the rest of lvscare's
start together. The interface follows pyroute2's (`service(command, service=...)`,
`dest(command, service=..., dest=...)`, dumps as nested dicts keyed by the kernel's attribute
names), so the backend and its tests stay as they were. Errors are OSError with the kernel's
errno. Constants from <linux/ip_vs.h> and <linux/genetlink.h>.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any, Optional

from lvscare.netlink import attr, attrs, exchange

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 1, 2
IPVS_GENL_VERSION = 1
NLA_F_NESTED = 0x8000
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300

_COMMANDS = {
    "service": {"add": 1, "set": 2, "del": 3, "dump": 4},
    "dest": {"add": 5, "set": 6, "del": 7, "dump": 8},
}
IPVS_CMD_ATTR_SERVICE, IPVS_CMD_ATTR_DEST = 1, 2
# Service attributes: name -> (number, kind)
_SVC = {
    "af": (1, "u16"), "protocol": (2, "u16"), "addr": (3, "addr"), "port": (4, "be16"),
    "fwmark": (5, "u32"), "sched_name": (6, "str"), "flags": (7, "flags"), "timeout": (8, "u32"),
    "netmask": (9, "u32"),
}  # fmt: skip
_DEST = {
    "addr": (1, "addr"), "port": (2, "be16"), "fwd_method": (3, "u32"), "weight": (4, "u32"),
    "u_thresh": (5, "u32"), "l_thresh": (6, "u32"), "addr_family": (11, "u16"),
}  # fmt: skip
_SVC_NAMES = {number: f"IPVS_SVC_ATTR_{name.upper()}" for name, (number, _) in _SVC.items()}
_DEST_NAMES = {number: f"IPVS_DEST_ATTR_{name.upper()}" for name, (number, _) in _DEST.items()}
_SVC_KEY = ("af", "protocol", "addr", "port")


class _Record:
    """A service or real server: its fields (`combined`, as pyroute2 names them)."""

    def __init__(self, **fields: Any):
        self.combined = fields


class IPVSService(_Record):
    """A virtual service: af, protocol, addr, port [, sched_name, netmask]."""


class IPVSDest(_Record):
    """A real server: addr, port [, weight, fwd_method]."""


def _encode(value: Any, kind: str, family: int) -> bytes:
    if kind == "u16":
        return struct.pack("=H", value)
    if kind == "u32":
        return struct.pack("=I", value)
    if kind == "be16":
        return struct.pack("!H", value)
    if kind == "str":
        return str(value).encode() + b"\0"
    if kind == "flags":
        return struct.pack("=II", value.get("flags", 0), value.get("mask", 0xFFFF))
    # 4 bytes for IPv4, 16 for IPv6, as pyroute2 sends them; the kernel copies the attribute into
    # a zeroed union nf_inet_addr (nla_memcpy), and its replies carry all 16 bytes.
    return ipaddress.ip_address(value).packed


def _decode(raw: bytes, kind: str, family: int) -> Any:
    if kind == "u16":
        return struct.unpack_from("=H", raw)[0]
    if kind == "u32":
        return struct.unpack_from("=I", raw)[0]
    if kind == "be16":
        return struct.unpack_from("!H", raw)[0]
    if kind == "str":
        return raw.rstrip(b"\0").decode(errors="replace")
    if kind == "addr":
        size = 16 if family == socket.AF_INET6 else 4
        return str(ipaddress.ip_address(raw[:size]))
    return raw


def _nest(number: int, table: dict, fields: dict, only: Optional[tuple] = None) -> bytes:
    family = fields.get("af") or fields.get("addr_family") or socket.AF_INET
    body = b""
    for name, value in fields.items():
        if name in table and (only is None or name in only):
            attr_number, kind = table[name]
            body += attr(attr_number, _encode(value, kind, family))
    # Without NLA_F_NESTED, as pyroute2 and the kernel's own IPVS replies (nla_nest_start_noflag)
    # encode these nests: IPVS parses them with nla_parse_nested_deprecated, which takes both.
    return attr(number, body)


def _unnest(raw: bytes, table: dict, names: dict) -> dict[str, Any]:
    found = attrs(raw)
    family_raw = found.get(table.get("af", table.get("addr_family", (0, "")))[0])
    family = struct.unpack_from("=H", family_raw)[0] if family_raw else socket.AF_INET
    kinds = {number: kind for number, kind in table.values()}
    return {
        names[number]: _decode(value, kinds[number], family)
        for number, value in found.items()
        if number in names
    }


class IPVS:
    """A generic netlink socket bound to the kernel's IPVS family."""

    def __init__(self) -> None:
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC
        )
        self.seq = 0
        try:
            self.sock.bind((0, 0))
            body = struct.pack("=BBH", CTRL_CMD_GETFAMILY, 1, 0)
            body += attr(CTRL_ATTR_FAMILY_NAME, b"IPVS\0")
            answers = self._request(GENL_ID_CTRL, NLM_F_REQUEST, body)
            raw = attrs(answers[0], 4).get(CTRL_ATTR_FAMILY_ID) if answers else None
            if raw is None:
                raise OSError(2, "no IPVS generic netlink family")
            self.family = struct.unpack_from("=H", raw)[0]
        except BaseException:
            self.sock.close()
            raise

    def _request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        self.seq += 1
        return [answer for _kind, answer in exchange(self.sock, self.seq, kind, flags, body)]

    def _command(self, command: int, payload: bytes, dump: bool) -> list[bytes]:
        body = struct.pack("=BBH", command, IPVS_GENL_VERSION, 0) + payload
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        return self._request(self.family, flags, body)

    @staticmethod
    def _service_attr(service: Optional[_Record], full: bool) -> bytes:
        if service is None:
            return b""
        fields = dict(service.combined)
        if full:
            v6 = fields.get("af") == socket.AF_INET6
            fields.setdefault("sched_name", "wlc")
            fields.setdefault("flags", {"flags": 0, "mask": 0xFFFF})
            fields.setdefault("timeout", 0)
            fields.setdefault("netmask", 128 if v6 else 0xFFFFFFFF)
        return _nest(IPVS_CMD_ATTR_SERVICE, _SVC, fields, None if full else _SVC_KEY)

    def service(self, command: str, service: Optional[_Record] = None) -> list[dict]:
        """add, set, del or dump virtual services."""
        number = _COMMANDS["service"][command]
        payload = self._service_attr(service, full=command in ("add", "set"))
        answers = self._command(number, payload, dump=command == "dump")
        return [self._parse(raw) for raw in answers]

    def dest(
        self, command: str, service: Optional[_Record] = None, dest: Optional[_Record] = None
    ) -> list[dict]:
        """add, set, del or dump the real servers of `service`."""
        number = _COMMANDS["dest"][command]
        payload = self._service_attr(service, full=False)
        if dest is not None:
            fields = dict(dest.combined)
            if command in ("add", "set"):
                fields.setdefault("fwd_method", 0)
                fields.setdefault("weight", 1)
                fields.setdefault("u_thresh", 0)
                fields.setdefault("l_thresh", 0)
            else:
                fields = {k: v for k, v in fields.items() if k in ("addr", "port")}
            fields.setdefault(
                "addr_family",
                socket.AF_INET6 if ":" in str(fields.get("addr", "")) else socket.AF_INET,
            )
            payload += _nest(IPVS_CMD_ATTR_DEST, _DEST, fields)
        answers = self._command(number, payload, dump=command == "dump")
        return [self._parse(raw) for raw in answers]

    @staticmethod
    def _parse(raw: bytes) -> dict:
        found = attrs(raw, 4)
        parsed: dict[str, Any] = {}
        if IPVS_CMD_ATTR_SERVICE in found:
            parsed["IPVS_CMD_ATTR_SERVICE"] = _unnest(
                found[IPVS_CMD_ATTR_SERVICE], _SVC, _SVC_NAMES
            )
        if IPVS_CMD_ATTR_DEST in found:
            parsed["IPVS_CMD_ATTR_DEST"] = _unnest(found[IPVS_CMD_ATTR_DEST], _DEST, _DEST_NAMES)
        return parsed

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
