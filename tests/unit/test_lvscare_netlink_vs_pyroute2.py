"""lvscare's standard-library netlink encoders against pyroute2's message classes, byte for byte.

No kernel is needed: our `IPVS` and `RtNetlink` send into a recording socket, pyroute2's classes
(`pyroute2.netlink.generic.ipvs.ipvsmsg`, `ctrlmsg`, `rtmsg`, `IPVSService`/`IPVSDest`) encode the
same request, and the two byte strings must be equal after normalising what legitimately
differs (said at each place: the sequence number and port id in the netlink header, the order of
attributes, header flags the kernel ignores). Replies built with pyroute2's classes are fed back
through the recording socket and must decode into the fields lvscare reads.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Optional

import pytest
from pyroute2 import IPVSDest as PyDest
from pyroute2 import IPVSService as PyService
from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, ctrlmsg
from pyroute2.netlink.generic import ipvs as pyipvs
from pyroute2.netlink.nlsocket import NetlinkRequest
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from lvscare import ipvsnl, netlink
from lvscare.backends.ipvs import IpvsBackend
from lvscare.ipvsnl import IPVS, IPVSDest, IPVSService
from lvscare.model import Endpoint, VirtualServer
from lvscare.netlink import RtNetlink

IPVS_FAMILY_ID = 0x24  # what the kernel would answer to CTRL_CMD_GETFAMILY "IPVS"
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
NLA = struct.Struct("=HH")
# NLM_F_CREATE / NLM_F_EXCL / NLM_F_REPLACE: pyroute2 sets them on IPVS "add"/"set", but IPVS's
# generic netlink handlers (ip_vs_genl_set_cmd) never read nlmsg_flags, and genetlink itself only
# looks at NLM_F_DUMP (== NLM_F_ROOT | NLM_F_MATCH, the same bits as REPLACE | EXCL). So IPVS
# requests compare REQUEST, ACK and "is a dump" separately and the rest byte for byte;
# rtnetlink keeps every flag.
IGNORED_BY_IPVS = 0x200 | 0x400 | 0x100


class RecordingSocket:
    """Stands in for the netlink socket: keeps what is sent, answers from `replies(header)`."""

    def __init__(self, replies: Any = None) -> None:
        self.sent: list[bytes] = []
        self.replies = replies or ack
        self.pending: list[bytes] = []

    def bind(self, _address: Any) -> None:
        pass

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        self.pending.append(self.replies(HEADER.unpack_from(data)))
        return len(data)

    def recv(self, _size: int) -> bytes:
        return self.pending.pop(0)

    def close(self) -> None:
        pass


def ack(header: tuple) -> bytes:
    """NLMSG_ERROR with error 0 (an acknowledgement), or NLMSG_DONE for a dump."""
    _length, _kind, flags, seq, _pid = header
    if flags & NLM_F_DUMP == NLM_F_DUMP:
        return HEADER.pack(HEADER.size + 4, 3, 2, seq, 0) + struct.pack("=i", 0)
    body = struct.pack("=i", 0) + HEADER.pack(HEADER.size, header[1], flags, seq, 0)
    return HEADER.pack(HEADER.size + len(body), 2, 0, seq, 0) + body


def family_reply(header: tuple) -> bytes:
    """The controller's answer, encoded by pyroute2's ctrlmsg."""
    msg = ctrlmsg()
    msg["cmd"] = 1  # CTRL_CMD_NEWFAMILY
    msg["version"] = 2
    msg["attrs"] = [("CTRL_ATTR_FAMILY_ID", IPVS_FAMILY_ID), ("CTRL_ATTR_FAMILY_NAME", "IPVS")]
    msg["header"]["type"] = 0x10
    msg["header"]["sequence_number"] = header[3]
    msg.encode()
    return bytes(msg.data)


def our_ipvs(replies: Any = None) -> tuple[IPVS, RecordingSocket]:
    """Our IPVS on a recording socket, with the family already resolved."""
    ipvs = IPVS.__new__(IPVS)
    ipvs.sock = RecordingSocket(replies)  # type: ignore[assignment]
    ipvs.seq = 0
    ipvs.family = IPVS_FAMILY_ID
    return ipvs, ipvs.sock  # type: ignore[return-value]


def normalised(data: bytes, flag_mask: int = 0xFFFF) -> bytes:
    """The message with sequence number and port id zeroed (each side numbers its own requests;
    the port id is the socket's) and header flags masked."""
    length, kind, flags, _seq, _pid = HEADER.unpack_from(data)
    return HEADER.pack(length, kind, flags & flag_mask, 0, 0) + data[HEADER.size :]


def nested_types(body: bytes, offset: int) -> list[list[int]]:
    """For each top-level attribute from `offset`: the types of the attributes nested in it."""
    found = []
    while offset < len(body):
        length, _kind = NLA.unpack_from(body, offset)
        inner, end, kinds = offset + NLA.size, offset + length, []
        while inner < end:
            inner_length, inner_kind = NLA.unpack_from(body, inner)
            kinds.append(inner_kind)
            inner += (inner_length + 3) & ~3
        found.append(kinds)
        offset += (length + 3) & ~3
    return found


def in_our_order(nla_class: Any, attrs: list, order: list[int]) -> list:
    """pyroute2's attribute list in the order our encoder wrote the types. The kernel's
    nla_parse indexes attributes by type, so order carries no meaning; re-ordering lets the rest
    be compared byte for byte. A type we left out or added fails here."""
    values = dict(attrs)
    types = {entry[0]: number for number, entry in enumerate(nla_class.nla_map)}
    assert sorted(types[name] for name in values) == sorted(order), "the same attributes"
    names = {number: name for name, number in types.items()}
    return [(names[number], values[names[number]]) for number in order]


def pyroute2_ipvs(command: tuple[int, str], attrs: list, sent: bytes) -> bytes:
    """pyroute2's ipvsmsg for `command` (its own command_map entry: number, request mode), the
    nested attributes put in the order of `sent` (ours)."""
    cmd, mode = command
    flags = NetlinkRequest.calculate_request_flags(mode, False)
    order = nested_types(sent, HEADER.size + 4)
    msg = pyipvs.ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = pyipvs.GENL_VERSION
    nests = {
        "IPVS_CMD_ATTR_SERVICE": pyipvs.ipvsmsg.service,
        "IPVS_CMD_ATTR_DEST": pyipvs.ipvsmsg.dest,
    }
    msg["attrs"] = [
        (name, {"attrs": in_our_order(nests[name], value["attrs"], order[i])})
        for i, (name, value) in enumerate(attrs)
    ]
    msg["header"]["type"] = IPVS_FAMILY_ID
    msg["header"]["flags"] = flags
    msg.encode()
    return bytes(msg.data)


def assert_pyroute2_sends(sent: bytes, command: tuple[int, str], attrs: list) -> None:
    """Our request `sent` is, normalised, the bytes pyroute2 encodes for `command` and `attrs`."""
    expected = pyroute2_ipvs(command, attrs, sent)
    ours, theirs = HEADER.unpack_from(sent)[2], HEADER.unpack_from(expected)[2]
    assert ours & ~IGNORED_BY_IPVS == theirs & ~IGNORED_BY_IPVS, "REQUEST, ACK"
    assert (ours & NLM_F_DUMP == NLM_F_DUMP) == (theirs & NLM_F_DUMP == NLM_F_DUMP), "dump or not"
    assert normalised(sent, 0) == normalised(expected, 0)


def v6_netmask(prefix: int) -> str:
    """pyroute2 types IPVS_SVC_ATTR_NETMASK as ip4addr; the kernel reads a u32 (for IPv6 the
    prefix length, in host order, as ipvsadm sends it). This is the dotted form of those bytes."""
    return socket.inet_ntoa(struct.pack("=I", prefix))


V4 = {"af": socket.AF_INET, "protocol": socket.IPPROTO_TCP, "addr": "10.103.97.2", "port": 6443}
V6 = {"af": socket.AF_INET6, "protocol": socket.IPPROTO_TCP, "addr": "fd00::2", "port": 6443}


def backend_service(key: dict, sched: Optional[str] = "rr") -> IPVSService:
    """The record IpvsBackend._service builds for this VIP (with the scheduler for add/set)."""
    vs = VirtualServer(Endpoint(key["addr"], key["port"]))
    return IpvsBackend._service(vs, sched)


def backend_dest(addr: str, weight: int = 1) -> IPVSDest:
    """The record IpvsBackend._dest builds for this real server (masquerade)."""
    return IpvsBackend._dest(Endpoint(addr, 6443), weight)


def pyroute2_service(key: dict, sched: str = "rr") -> PyService:
    fields = dict(key, sched_name=sched)
    if key["af"] == socket.AF_INET6:
        fields["netmask"] = v6_netmask(128)
    return PyService(**fields)


@pytest.mark.parametrize("key", [V4, V6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("command", ["add", "set"])
def test_a_full_service_request_is_pyroute2s_bytes(key, command):
    ipvs, sock = our_ipvs()
    ipvs.service(command, service=backend_service(key))
    mode = {"add": (1, "create"), "set": (2, "change")}[command]
    # pyroute2 puts sched_name, flags {0, 0xFFFF}, timeout 0 and (IPv4) netmask 255.255.255.255
    # in by default: the same values our encoder adds.
    attrs = [("IPVS_CMD_ATTR_SERVICE", pyroute2_service(key).dump_nla())]
    assert_pyroute2_sends(sock.sent[0], mode, attrs)


@pytest.mark.parametrize("key", [V4, V6], ids=["ipv4", "ipv6"])
def test_a_service_delete_sends_pyroute2s_service_key(key):
    ipvs, sock = our_ipvs()
    ipvs.service("del", service=backend_service(key, sched=None))
    # pyroute2's service("del") sends the whole record with its defaults; the kernel reads only
    # the key for IPVS_CMD_DEL_SERVICE (need_full_svc is false), which pyroute2 encodes with
    # dump_key() for the service in its dest requests: that is what we send.
    attrs = [("IPVS_CMD_ATTR_SERVICE", pyroute2_service(key).dump_key())]
    assert_pyroute2_sends(sock.sent[0], (3, "req"), attrs)


def test_a_service_dump_request_is_pyroute2s_bytes():
    ipvs, sock = our_ipvs()
    ipvs.service("dump")
    msg = pyipvs.ipvsmsg()
    msg["cmd"] = pyipvs.IPVS_CMD_GET_SERVICE
    msg["version"] = pyipvs.GENL_VERSION
    msg["header"]["type"] = IPVS_FAMILY_ID
    msg["header"]["flags"] = NetlinkRequest.calculate_request_flags("dump", False)
    msg.encode()
    assert normalised(sock.sent[0]) == normalised(bytes(msg.data))


@pytest.mark.parametrize(
    "key,real,weight",
    [(V4, "10.103.97.12", 1), (V6, "fd00::12", 0)],
    ids=["ipv4", "ipv6-weight0"],
)
@pytest.mark.parametrize("command", ["add", "set"])
def test_a_real_server_request_is_pyroute2s_bytes(key, real, weight, command):
    ipvs, sock = our_ipvs()
    ipvs.dest(
        command,
        service=backend_service(key, sched=None),
        dest=backend_dest(real, weight),
    )
    dest = PyDest(addr=real, port=6443, weight=weight, fwd_method=0).dump_nla()
    # pyroute2 adds tun_type/tun_port/tun_flags 0; the kernel reads them only when present and
    # they concern tunnel forwarding, not masquerade: we leave them out, so does this comparison.
    dest["attrs"] = [(n, v) for n, v in dest["attrs"] if not n.startswith("IPVS_DEST_ATTR_TUN_")]
    attrs = [
        ("IPVS_CMD_ATTR_SERVICE", pyroute2_service(key).dump_key()),
        ("IPVS_CMD_ATTR_DEST", dest),
    ]
    mode = {"add": (5, "create"), "set": (6, "change")}[command]
    assert_pyroute2_sends(sock.sent[0], mode, attrs)


@pytest.mark.parametrize("key,real", [(V4, "10.103.97.12"), (V6, "fd00::12")], ids=["v4", "v6"])
def test_a_real_server_delete_sends_pyroute2s_address_port_and_family(key, real):
    ipvs, sock = our_ipvs()
    ipvs.dest("del", service=backend_service(key, sched=None), dest=backend_dest(real))
    # pyroute2's dest("del") sends the whole record; for IPVS_CMD_DEL_DEST the kernel parses the
    # destination without full_entry: address, port and address family are all it reads.
    dest = PyDest(addr=real, port=6443).dump_nla()
    keep = ("IPVS_DEST_ATTR_ADDR", "IPVS_DEST_ATTR_PORT", "IPVS_DEST_ATTR_ADDR_FAMILY")
    dest["attrs"] = [(n, v) for n, v in dest["attrs"] if n in keep]
    attrs = [
        ("IPVS_CMD_ATTR_SERVICE", pyroute2_service(key).dump_key()),
        ("IPVS_CMD_ATTR_DEST", dest),
    ]
    assert_pyroute2_sends(sock.sent[0], (7, "req"), attrs)


def test_the_family_lookup_is_pyroute2s_request_and_reads_its_answer(monkeypatch):
    recording = RecordingSocket(family_reply)
    monkeypatch.setattr(ipvsnl.socket, "socket", lambda *args: recording)
    ipvs = IPVS()
    assert ipvs.family == IPVS_FAMILY_ID, "CTRL_ATTR_FAMILY_ID read from pyroute2's reply"
    # pyroute2's GenericNetlinkSocket.get_protocol_id, field for field.
    msg = ctrlmsg()
    msg["cmd"] = 3  # CTRL_CMD_GETFAMILY
    msg["version"] = 1
    msg["attrs"].append(["CTRL_ATTR_FAMILY_NAME", "IPVS"])
    msg["header"]["type"] = 0x10  # GENL_ID_CTRL
    msg["header"]["flags"] = NLM_F_REQUEST
    msg["header"]["pid"] = 4242  # pyroute2 writes its port id; ours writes 0 (normalised)
    msg.encode()
    assert normalised(recording.sent[0]) == normalised(bytes(msg.data))


def dump_reply(messages: list[Any]) -> Any:
    def replies(header: tuple) -> bytes:
        data = b""
        for msg in messages:
            msg["header"]["type"] = IPVS_FAMILY_ID
            msg["header"]["flags"] = 2  # NLM_F_MULTI
            msg["header"]["sequence_number"] = header[3]
            msg.encode()
            data += bytes(msg.data)
        return data + ack(header)

    return replies


def py_msg(cmd: int, attrs: list) -> Any:
    msg = pyipvs.ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = pyipvs.GENL_VERSION
    msg["attrs"] = attrs
    return msg


STATS = {"attrs": [("IPVS_STATS_ATTR_CONNS", 7), ("IPVS_STATS_ATTR_INBYTES", 1 << 40)]}


def test_a_service_dump_encoded_by_pyroute2_reads_back_field_for_field():
    v4 = PyService(**V4, sched_name="rr").dump_nla()
    v4["attrs"].append(("IPVS_SVC_ATTR_STATS", STATS))
    v6 = PyService(**V6, sched_name="wlc", netmask=v6_netmask(128), timeout=300).dump_nla()
    v6["attrs"] += [("IPVS_SVC_ATTR_PE_NAME", "sip"), ("IPVS_SVC_ATTR_STATS64", STATS)]
    replies = [py_msg(4, [("IPVS_CMD_ATTR_SERVICE", svc)]) for svc in (v4, v6)]
    ipvs, _ = our_ipvs(dump_reply(replies))
    first, second = ipvs.service("dump")
    assert first["IPVS_CMD_ATTR_SERVICE"] == {
        "IPVS_SVC_ATTR_AF": socket.AF_INET, "IPVS_SVC_ATTR_PROTOCOL": socket.IPPROTO_TCP,
        "IPVS_SVC_ATTR_ADDR": "10.103.97.2", "IPVS_SVC_ATTR_PORT": 6443,
        "IPVS_SVC_ATTR_SCHED_NAME": "rr", "IPVS_SVC_ATTR_TIMEOUT": 0,
        "IPVS_SVC_ATTR_FLAGS": struct.pack("=II", 0, 0xFFFF),
        "IPVS_SVC_ATTR_NETMASK": 0xFFFFFFFF,
    }  # fmt: skip
    assert second["IPVS_CMD_ATTR_SERVICE"] == {
        "IPVS_SVC_ATTR_AF": socket.AF_INET6, "IPVS_SVC_ATTR_PROTOCOL": socket.IPPROTO_TCP,
        "IPVS_SVC_ATTR_ADDR": "fd00::2", "IPVS_SVC_ATTR_PORT": 6443,
        "IPVS_SVC_ATTR_SCHED_NAME": "wlc", "IPVS_SVC_ATTR_TIMEOUT": 300,
        "IPVS_SVC_ATTR_FLAGS": struct.pack("=II", 0, 0xFFFF),
        "IPVS_SVC_ATTR_NETMASK": 128,
    }  # fmt: skip


def test_a_dest_dump_encoded_by_pyroute2_reads_back_field_for_field():
    dests = []
    for addr, weight, method in (("fd00::12", 3, 0), ("fd00::13", 0, 2)):
        dest = PyDest(addr=addr, port=6443, weight=weight, fwd_method=method).dump_nla()
        dest["attrs"] += [("IPVS_DEST_ATTR_ACTIVE_CONNS", 5), ("IPVS_DEST_ATTR_STATS", STATS)]
        dests.append(py_msg(8, [("IPVS_CMD_ATTR_DEST", dest)]))
    ipvs, sock = our_ipvs(dump_reply(dests))
    service = backend_service(V6, sched=None)
    found = [msg["IPVS_CMD_ATTR_DEST"] for msg in ipvs.dest("dump", service=service)]
    key = PyService(**V6, sched_name="rr", netmask=v6_netmask(128)).dump_key()
    assert_pyroute2_sends(sock.sent[0], (8, "dump"), [("IPVS_CMD_ATTR_SERVICE", key)])
    assert found == [
        {"IPVS_DEST_ATTR_ADDR": "fd00::12", "IPVS_DEST_ATTR_PORT": 6443,
         "IPVS_DEST_ATTR_FWD_METHOD": 0, "IPVS_DEST_ATTR_WEIGHT": 3,
         "IPVS_DEST_ATTR_U_THRESH": 0, "IPVS_DEST_ATTR_L_THRESH": 0,
         "IPVS_DEST_ATTR_ADDR_FAMILY": socket.AF_INET6},
        {"IPVS_DEST_ATTR_ADDR": "fd00::13", "IPVS_DEST_ATTR_PORT": 6443,
         "IPVS_DEST_ATTR_FWD_METHOD": 2, "IPVS_DEST_ATTR_WEIGHT": 0,
         "IPVS_DEST_ATTR_U_THRESH": 0, "IPVS_DEST_ATTR_L_THRESH": 0,
         "IPVS_DEST_ATTR_ADDR_FAMILY": socket.AF_INET6},
    ]  # fmt: skip


# rtnetlink


def our_rtnl(replies: Any = None) -> tuple[RtNetlink, RecordingSocket]:
    rtnl = RtNetlink.__new__(RtNetlink)
    rtnl.sock = RecordingSocket(replies)  # type: ignore[assignment]
    rtnl.seq = 0
    return rtnl, rtnl.sock  # type: ignore[return-value]


def py_rtmsg(kind: int, flags: int, fields: dict, attrs: list) -> bytes:
    msg = rtmsg()
    for name, value in fields.items():
        msg[name] = value
    msg["attrs"] = attrs
    msg["header"]["type"] = kind
    msg["header"]["flags"] = flags
    msg.encode()
    return normalised(bytes(msg.data))


def route_reply(oif: int, prefsrc: str, gateway: Optional[str], rtm_type: int = 1) -> Any:
    def replies(header: tuple) -> bytes:
        family = socket.AF_INET6 if ":" in prefsrc else socket.AF_INET
        attrs = [("RTA_TABLE", 254), ("RTA_OIF", oif), ("RTA_PREFSRC", prefsrc)]
        if gateway:
            attrs.append(("RTA_GATEWAY", gateway))
        msg = rtmsg()
        msg["family"] = family
        msg["dst_len"] = 128 if family == socket.AF_INET6 else 32
        msg["table"] = 254
        msg["type"] = rtm_type
        msg["attrs"] = [("RTA_DST", "fd00::12" if family == socket.AF_INET6 else "10.0.0.12")]
        msg["attrs"] += attrs
        msg["header"]["type"] = netlink.RTM_NEWROUTE
        msg["header"]["sequence_number"] = header[3]
        msg.encode()
        return bytes(msg.data)

    return replies


@pytest.mark.parametrize(
    "dst,prefsrc,gateway",
    [("10.0.0.12", "10.0.0.5", "10.0.0.1"), ("fd00::12", "fd00::5", None)],
    ids=["ipv4-via", "ipv6-direct"],
)
def test_a_route_lookup_is_pyroute2s_rtmsg_and_reads_its_answer(dst, prefsrc, gateway):
    rtnl, sock = our_rtnl(route_reply(7, prefsrc, gateway))
    assert rtnl.route_get(dst) == {"oif": 7, "prefsrc": prefsrc, "gateway": gateway, "type": 1}
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    fields = {"family": family, "dst_len": 128 if ":" in dst else 32}
    # NLM_F_REQUEST alone, as `ip route get` sends it: the answer is the route, no ack follows.
    expected = py_rtmsg(netlink.RTM_GETROUTE, NLM_F_REQUEST, fields, [("RTA_DST", dst)])
    assert normalised(sock.sent[0]) == expected


@pytest.mark.parametrize(
    "vip,oif,scope,prefsrc,gateway",
    [
        ("10.103.97.2", 7, 253, "10.0.0.5", None),
        ("10.103.97.2", 7, 0, "10.0.0.5", "10.0.0.1"),
        ("fd00:97::2", 3, 253, "fd00::5", None),
        ("fd00:97::2", 3, 0, None, "fd00::1"),
    ],
    ids=["v4-link-src", "v4-via", "v6-link-src", "v6-via-nosrc"],
)
def test_a_route_add_is_pyroute2s_rtmsg(vip, oif, scope, prefsrc, gateway):
    rtnl, sock = our_rtnl()
    rtnl.route_add(vip, oif=oif, proto=247, scope=scope, prefsrc=prefsrc, gateway=gateway)
    v6 = ":" in vip
    fields = {"family": socket.AF_INET6 if v6 else socket.AF_INET, "dst_len": 128 if v6 else 32,
              "table": 254, "proto": 247, "scope": scope, "type": 1}  # fmt: skip
    attrs: list = [("RTA_DST", vip), ("RTA_OIF", oif)]
    if prefsrc:
        attrs.append(("RTA_PREFSRC", prefsrc))
    if gateway:
        attrs.append(("RTA_GATEWAY", gateway))
    # pyroute2's IPRoute.route("add") flags ("create"): REQUEST|ACK|CREATE|EXCL, kept exact.
    flags = NetlinkRequest.calculate_request_flags("create", False)
    assert flags == NLM_F_REQUEST | NLM_F_ACK | 0x400 | 0x200
    assert normalised(sock.sent[0]) == py_rtmsg(netlink.RTM_NEWROUTE, flags, fields, attrs)
