"""The stand-ins' etcd quorum on two namespace hosts (v1.28.15): a second master's member votes,
so with it down the first master stops accepting writes (reads still answer), `etcdctl member
remove` has no quorum either, `kubeadm reset -f` only warns, and `--force-new-cluster` in the
survivor's etcd manifest brings writes back.

Hosts are network namespaces on a private bridge (no route out), as in
test_lab_package_cluster.py; services are tracked background processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sealos_lab.package import build
from sealos_lab.package.standin.hostenv import APISERVER_UNIT
from sealos_lab.package.testbed import NamespaceHost, NetnsTestbed

pytestmark = pytest.mark.root
VERSION = "v1.28.15"
PYTHON = "/usr/bin/python3"


def group(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return match.group(1)


def etcdctl(bed: NetnsTestbed, host: NamespaceHost, *args: str) -> Any:
    pki = host.root / "etc/kubernetes/pki/etcd"
    return bed.tool(host, "etcdctl", "--endpoints", "https://127.0.0.1:2379",
                    "--cacert", str(pki / "ca.crt"), "--cert", str(pki / "healthcheck-client.crt"),
                    "--key", str(pki / "healthcheck-client.key"), *args)  # fmt: skip


def members(bed: NetnsTestbed, host: NamespaceHost) -> list[list[str]]:
    listed = etcdctl(bed, host, "member", "list")
    assert listed.returncode == 0, listed.stderr
    return [[f.strip() for f in line.split(",")] for line in listed.stdout.splitlines()]


def wait_for(what: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def tokens(bed: NetnsTestbed, host: NamespaceHost) -> str:
    """`kubeadm token list` on a host (its apiserver.cluster.local's answer)."""
    listed = bed.tool(host, "kubeadm", "token", "list")
    assert listed.returncode == 0, f"{host.name}: {listed.stderr}"
    return listed.stdout


def control_plane(bed: NetnsTestbed, tmp_path: Path) -> None:
    """kubeadm init on the first host, every other host joined as a control plane (each a voting
    etcd member at once, as up to 1.28)."""
    m1 = bed.hosts[0]
    for host in bed.hosts:
        assert bed.run(host, ["sh", str(host.kube / "shell" / "init.sh")]).returncode == 0
        bed.set_hosts(host, {"apiserver.cluster.local": m1.address})
    config = tmp_path / "kubeadm.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n"
        f"localAPIEndpoint:\n  advertiseAddress: {m1.address}\n"
        "nodeRegistration:\n  name: h1\n---\n"
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
        f"kubernetesVersion: {VERSION}\ncontrolPlaneEndpoint: apiserver.cluster.local:6443\n"
    )
    init = bed.tool(m1, "kubeadm", "init", "--config", str(config), "--upload-certs")
    assert init.returncode == 0, init.stdout + init.stderr
    for host in bed.hosts[1:]:
        joined = bed.tool(
            host, "kubeadm", "join", "apiserver.cluster.local:6443",
            "--token", group(r"--token (\S+)", init.stdout),
            "--discovery-token-ca-cert-hash", group(r"--discovery-token-ca-cert-hash (\S+)",
                                                   init.stdout),
            "--control-plane", "--certificate-key", group(r"--certificate-key (\S+)", init.stdout),
            "--node-name", host.name, "--apiserver-advertise-address", host.address,
        )  # fmt: skip
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert "joining to the existing etcd cluster\n" in joined.stdout  # a voter at once
    listed = members(bed, m1)
    assert sorted(row[2] for row in listed) == [h.name for h in bed.hosts], listed
    assert {row[1] for row in listed} == {"started"} and {row[5] for row in listed} == {"false"}


@contextlib.contextmanager
def control_plane_bed(prefix: str, count: int, tmp_path: Path) -> Iterator[NetnsTestbed]:
    """`count` namespace hosts, the first kubeadm-inited and the others joined as control planes
    (`control_plane`); torn down afterwards, also on failure."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    package = build(VERSION, tmp_path / "kube.tar.gz")
    bed = NetnsTestbed(f"{prefix}{os.getpid() % 10000}", count, tmp_path / "hosts", package, PYTHON)
    try:
        bed.up()
        control_plane(bed, tmp_path)
        yield bed
    finally:
        bed.down()


def test_a_down_voting_member_stops_writes_until_force_new_cluster(tmp_path: Path) -> None:
    with control_plane_bed("q9eq", 2, tmp_path) as bed:
        m1, m2 = bed.hosts
        assert bed.tool(m1, "kubeadm", "token", "create").returncode == 0

        bed.kill_service(m2, APISERVER_UNIT)  # its etcd member is down: 1 of 2 voters left
        time.sleep(4)  # past the window in which m1 still counts it alive
        token = bed.tool(m1, "kubeadm", "token", "create")
        assert token.returncode == 1, token.stdout
        assert "etcdserver: request timed out" in token.stderr, token.stderr
        admin = {"KUBECONFIG": str(m1.root / "etc/kubernetes/admin.conf")}
        assert bed.tool(m1, "kubectl", "get", "nodes", env=admin).returncode == 0  # reads answer
        m2_id = next(row[0] for row in members(bed, m1) if row[3] == f"https://{m2.address}:2380")
        removed = etcdctl(bed, m1, "member", "remove", m2_id)
        assert removed.returncode == 1 and "etcdserver: request timed out" in removed.stderr

        reset = bed.tool(m2, "kubeadm", "reset", "-f")
        assert reset.returncode == 0, reset.stderr
        assert "[reset] Failed to remove etcd member: etcdserver: request timed out" in reset.stderr
        assert len(members(bed, m1)) == 2  # still there: reset could not remove it

        manifest = m1.root / "etc/kubernetes/manifests/etcd.yaml"
        before = manifest.read_text()
        manifest.write_text(
            before.replace("    - etcd\n", "    - etcd\n    - --force-new-cluster\n")
        )
        assert wait_for(lambda: len(members(bed, m1)) == 1, 20), members(bed, m1)
        manifest.write_text(before)
        token = bed.tool(m1, "kubeadm", "token", "create")
        assert token.returncode == 0, token.stderr


# Asks /healthz back to back on one kept-alive connection for SECONDS; prints how many answers,
# how many took lvscare's probe timeout (1 s) or longer, the longest, and the answers seen.
HEALTH_WATCH = """
import http.client, ssl, sys, time
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
conn, answers, slow, worst, seen = None, 0, 0, 0.0, set()
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    began = time.monotonic()
    try:
        if conn is None:
            conn = http.client.HTTPSConnection(sys.argv[1], 6443, context=context, timeout=10)
        conn.request("GET", "/healthz")
        answer = conn.getresponse()
        answer.read()
        seen.add(str(answer.status))
    except (OSError, http.client.HTTPException) as exc:
        seen.add(type(exc).__name__)
        conn = None
    took = time.monotonic() - began
    answers, slow, worst = answers + 1, slow + (took >= 1.0), max(worst, took)
print(answers, slow, round(worst, 3), ",".join(sorted(seen)))
"""
BLACKHOLE = """table inet sealos_lab_blackhole {
    chain input { type filter hook input priority -300; policy accept; iif "lo" accept; drop; }
    chain output { type filter hook output priority -300; policy accept; oif "lo" accept; drop; }
}
"""


def test_a_black_holed_member_slows_neither_health_nor_writes_of_the_others(
    tmp_path: Path,
) -> None:
    """Three voting members, one of them black-holed (every packet dropped: a host gone, not a
    process stopped, so its peers' pushes hang until they time out). The other two keep the
    quorum, and neither waits on it: every /healthz answer of the first stays under lvscare's
    1 s probe timeout (lvscare would otherwise take a live master out of the nodes' rules), and a
    write on the first reaches the third. Once its packets flow again it catches up."""
    with control_plane_bed("q9bh", 3, tmp_path) as bed:
        m1, m2, m3 = bed.hosts
        for host in (m2, m3):  # kubeadm on each reads its own apiserver, as on sealos's masters
            bed.set_hosts(host, {"apiserver.cluster.local": host.address})
        holed = bed.run(m2, ["nft", "-f", "-"], stdin=BLACKHOLE)
        assert holed.returncode == 0, holed.stderr
        ping = bed.run(m1, ["curl", "-sk", "-m", "2", f"https://{m2.address}:6443/livez"])
        assert ping.returncode != 0, ping.stdout  # independent of the stand-ins: m2 is gone
        watch = bed.run(m1, [PYTHON, "-c", HEALTH_WATCH, m1.address, "12"], timeout=60)
        assert watch.returncode == 0, watch.stderr
        answers, slow, worst, seen = watch.stdout.split()
        assert seen == "200" and int(answers) > 100, watch.stdout
        assert int(slow) == 0, (
            f"{slow} of {answers} /healthz answers of {m1.name} took 1 s or more (the longest "
            f"{worst} s) while {m2.name} was black-holed"
        )
        token = bed.tool(m1, "kubeadm", "token", "create")
        assert token.returncode == 0, token.stderr
        made = token.stdout.strip().split(".")[0]
        assert wait_for(lambda: made in tokens(bed, m3), 10)
        assert made not in tokens(bed, m2)  # it hears nothing
        assert (
            bed.run(m2, ["nft", "delete", "table", "inet", "sealos_lab_blackhole"]).returncode == 0
        )
        assert wait_for(lambda: made in tokens(bed, m2), 20)
