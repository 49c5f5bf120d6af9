"""Finding the clients pinned to a removed real server, from the kernel's own tables as text."""

from __future__ import annotations

from lvscare.flows import _destroy_request, conntrack_clients, ipvs_clients
from lvscare.model import Endpoint

VIP = Endpoint("10.103.97.12", 6443)
RS = Endpoint("10.250.100.12", 8080)

CONNTRACK = """\
ipv4     2 tcp      6 431999 ESTABLISHED src=10.250.100.2 dst=10.103.97.12 sport=40001 dport=6443 src=10.250.100.12 dst=10.250.100.2 sport=8080 dport=40001 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=10.250.100.2 dst=10.103.97.12 sport=40002 dport=6443 src=10.250.100.11 dst=10.250.100.2 sport=8080 dport=40002 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 60 SYN_SENT src=10.250.100.2 dst=10.103.97.12 sport=40003 dport=6443 [UNREPLIED] src=10.250.100.12 dst=10.250.100.2 sport=8080 dport=40003 mark=0 zone=0 use=2
ipv4     2 udp      17 20 src=10.250.100.2 dst=10.103.97.12 sport=5000 dport=6443 src=10.250.100.12 dst=10.250.100.2 sport=8080 dport=5000 mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=10.250.100.2 dst=10.96.0.1 sport=40004 dport=443 src=10.250.100.12 dst=10.250.100.2 sport=8080 dport=40004 [ASSURED] mark=0 zone=0 use=2
"""  # noqa: E501

IP_VS_CONN = """\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP 0AFA6E01 9C41 0A67610C 192B 0AFA640C 1F90 ESTABLISHED     899
TCP 0AFA6E01 9C42 0A67610C 192B 0AFA640B 1F90 ESTABLISHED     899
UDP 0AFA6E01 9C43 0A67610C 192B 0AFA640C 1F90 UDP             299
"""


def test_conntrack_clients_are_the_tcp_flows_from_the_vip_to_that_real_server(tmp_path):
    path = tmp_path / "nf_conntrack"
    path.write_text(CONNTRACK)
    assert conntrack_clients(VIP, RS, str(path)) == [
        Endpoint("10.250.100.2", 40001),
        Endpoint("10.250.100.2", 40003),
    ]


def test_ipvs_clients_are_read_from_its_hex_table(tmp_path):
    path = tmp_path / "ip_vs_conn"
    path.write_text(IP_VS_CONN)
    assert ipvs_clients(VIP, RS, str(path)) == [Endpoint("10.250.110.1", 0x9C41)]


def test_a_missing_table_means_no_clients(tmp_path):
    assert conntrack_clients(VIP, RS, str(tmp_path / "none")) == []
    assert ipvs_clients(VIP, RS, str(tmp_path / "none")) == []


def test_the_destroy_request_names_the_local_socket():
    body = _destroy_request(Endpoint("10.250.100.2", 40001), VIP)
    assert len(body) == 8 + 48  # inet_diag_req_v2
    assert body[8:12] == (40001).to_bytes(2, "big") + (6443).to_bytes(2, "big")
    assert body[12:16] == bytes([10, 250, 100, 2]) and body[28:32] == bytes([10, 103, 97, 12])
