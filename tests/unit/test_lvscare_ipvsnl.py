"""lvscare's own IPVS netlink encoding: what it writes is what the kernel's layout says, and a
dump reads back into the names the backend uses (the VM test runs it against a real kernel)."""

from __future__ import annotations

import socket
import struct

from lvscare.ipvsnl import _DEST, _DEST_NAMES, _SVC, _SVC_NAMES, IPVS, _nest, _unnest
from lvscare.netlink import attrs


def test_a_service_round_trips_through_its_nested_attribute():
    fields = {"af": socket.AF_INET, "protocol": socket.IPPROTO_TCP, "addr": "10.103.97.2",
              "port": 6443, "sched_name": "rr", "netmask": 0xFFFFFFFF}  # fmt: skip
    raw = _nest(1, _SVC, fields)
    length, kind = struct.unpack_from("=HH", raw)
    assert kind == 1 | 0x8000 and length <= len(raw)
    inner = attrs(raw)[1]
    found = attrs(inner)
    assert found[3] == bytes([10, 103, 97, 2]) + b"\0" * 12, "union nf_inet_addr: 16 bytes"
    assert found[4] == (6443).to_bytes(2, "big"), "the port is big-endian"
    assert _unnest(inner, _SVC, _SVC_NAMES) == {
        "IPVS_SVC_ATTR_AF": socket.AF_INET, "IPVS_SVC_ATTR_PROTOCOL": socket.IPPROTO_TCP,
        "IPVS_SVC_ATTR_ADDR": "10.103.97.2", "IPVS_SVC_ATTR_PORT": 6443,
        "IPVS_SVC_ATTR_SCHED_NAME": "rr", "IPVS_SVC_ATTR_NETMASK": 0xFFFFFFFF,
    }  # fmt: skip


def test_an_ipv6_real_server_reads_back_with_its_family():
    fields = {"addr": "fd00::2", "port": 6443, "weight": 0, "fwd_method": 0,
              "addr_family": socket.AF_INET6}  # fmt: skip
    inner = attrs(_nest(2, _DEST, fields))[2]
    parsed = _unnest(inner, _DEST, _DEST_NAMES)
    assert parsed["IPVS_DEST_ATTR_ADDR"] == "fd00::2" and parsed["IPVS_DEST_ATTR_WEIGHT"] == 0


def test_a_dump_message_parses_into_the_names_the_backend_reads():
    svc = _nest(1, _SVC, {"af": socket.AF_INET, "protocol": 6, "addr": "10.0.0.1", "port": 80})
    parsed = IPVS._parse(struct.pack("=BBH", 4, 1, 0) + svc)
    assert parsed["IPVS_CMD_ATTR_SERVICE"]["IPVS_SVC_ATTR_ADDR"] == "10.0.0.1"
