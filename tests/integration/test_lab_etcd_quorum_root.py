"""The stand-ins' etcd quorum on two namespace hosts (v1.28.15): a second master's member votes,
so with it down the first master stops accepting writes (reads still answer), `etcdctl member
remove` has no quorum either, `kubeadm reset -f` only warns, and `--force-new-cluster` in the
survivor's etcd manifest brings writes back.

Hosts are network namespaces on a private bridge (no route out), as in
test_lab_package_cluster.py; services are tracked background processes.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from sealos_lab.package import build
from sealos_lab.package.testbed import NamespaceHost, NetnsTestbed

pytestmark = pytest.mark.root
VERSION = "v1.28.15"
PYTHON = "/usr/bin/python3"
APISERVER = "sealos-lab-kube-apiserver"


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


def test_a_down_voting_member_stops_writes_until_force_new_cluster(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    package = build(VERSION, tmp_path / "kube.tar.gz")
    bed = NetnsTestbed(f"q9eq{os.getpid() % 10000}", 2, tmp_path / "hosts", package, PYTHON)
    try:
        bed.up()
        m1, m2 = bed.hosts
        for host in bed.hosts:
            assert bed.run(host, ["sh", str(host.kube / "shell" / "init.sh")]).returncode == 0
            bed.set_hosts(host, {"apiserver.cluster.local": m1.address})
        config = tmp_path / "kubeadm.yaml"
        config.write_text(
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n"
            f"localAPIEndpoint:\n  advertiseAddress: {m1.address}\n"
            "nodeRegistration:\n  name: m1\n---\n"
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
            f"kubernetesVersion: {VERSION}\ncontrolPlaneEndpoint: apiserver.cluster.local:6443\n"
        )
        init = bed.tool(m1, "kubeadm", "init", "--config", str(config), "--upload-certs")
        assert init.returncode == 0, init.stdout + init.stderr
        pin = group(r"--discovery-token-ca-cert-hash (\S+)", init.stdout)
        joined = bed.tool(
            m2, "kubeadm", "join", "apiserver.cluster.local:6443",
            "--token", group(r"--token (\S+)", init.stdout), "--discovery-token-ca-cert-hash", pin,
            "--control-plane", "--certificate-key", group(r"--certificate-key (\S+)", init.stdout),
            "--node-name", "m2", "--apiserver-advertise-address", m2.address,
        )  # fmt: skip
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert "joining to the existing etcd cluster\n" in joined.stdout  # a voter at once
        listed = members(bed, m1)
        assert sorted(row[2] for row in listed) == ["m1", "m2"], listed
        assert {row[1] for row in listed} == {"started"} and {row[5] for row in listed} == {"false"}
        assert bed.tool(m1, "kubeadm", "token", "create").returncode == 0

        bed.kill_service(m2, APISERVER)  # its etcd member is down: 1 of 2 voters left
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
    finally:
        bed.down()
