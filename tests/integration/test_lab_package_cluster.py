"""The built v1.20.15 stand-ins on three namespace hosts: init, joins, failures, HA state, reset.

Hosts are network namespaces on a private bridge (no route out) with their own file tree
(SEALOS_STANDIN_ROOT) and /etc/hosts; services run as tracked background processes
(SEALOS_STANDIN_NO_SYSTEMD=1). Tests in this module share one cluster and run in file order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sealos_lab.package import build
from sealos_lab.package.standin.hostenv import APISERVER_UNIT
from sealos_lab.package.testbed import NamespaceHost, NetnsTestbed

pytestmark = pytest.mark.root
VERSION = "v1.20.15"
PYTHON = "/usr/bin/python3"


def _group(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in output:\n{text}"
    return match.group(1)


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    _need_root()
    work = tmp_path_factory.mktemp("lpk-cluster")
    package = build(VERSION, work / "kube.tar.gz")
    bed = NetnsTestbed(f"lpk{os.getpid() % 100000}", 3, work / "hosts", package, PYTHON)
    try:
        bed.up()
        m1, m2, w1 = bed.hosts
        for host in bed.hosts:
            prepared = bed.run(host, ["sh", str(host.kube / "shell" / "init.sh")])
            assert prepared.returncode == 0, prepared.stderr
        bed.set_hosts(m1, {"apiserver.cluster.local": m1.address})
        config = work / "kubeadm.yaml"
        config.write_text(
            "apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\n"
            f"localAPIEndpoint:\n  advertiseAddress: {m1.address}\n"
            "nodeRegistration:\n  name: m1\n---\n"
            "apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n"
            "kubernetesVersion: v1.20.15\ncontrolPlaneEndpoint: apiserver.cluster.local:6443\n"
            "networking:\n  podSubnet: 100.64.0.0/10\n"
            "apiServer:\n  certSANs: [127.0.0.1, apiserver.cluster.local, 10.103.97.2]\n---\n"
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
            "mode: ipvs\nipvs:\n  excludeCIDRs: [10.103.97.2/32]\n"
        )
        init = bed.tool(m1, "kubeadm", "init", "--config", str(config), "--upload-certs")
        assert init.returncode == 0, init.stdout + init.stderr
        info = {
            "bed": bed,
            "m1": m1,
            "m2": m2,
            "w1": w1,
            "init": init,
            "config": config,
            "token": _group(r"--token (\S+)", init.stdout),
            "pin": _group(r"--discovery-token-ca-cert-hash (\S+)", init.stdout),
            "key": _group(r"--certificate-key (\S+)", init.stdout),
        }
        yield info
    finally:
        bed.down()


def kubectl(bed: NetnsTestbed, host: NamespaceHost, *args: str) -> subprocess.CompletedProcess[str]:
    admin = host.root / "etc" / "kubernetes" / "admin.conf"
    return bed.tool(host, "kubectl", *args, env={"KUBECONFIG": str(admin)})


def node_table(bed: NetnsTestbed, host: NamespaceHost) -> dict[str, list[str]]:
    result = kubectl(bed, host, "get", "nodes")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    return {row[0]: row for row in rows}


def wait_for(what: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_init_prints_kubeadms_output_with_the_real_ca_pin(cluster: Any) -> None:
    out = cluster["init"].stdout
    assert "Your Kubernetes control-plane has initialized successfully!" in out
    assert "export KUBECONFIG=/etc/kubernetes/admin.conf" in out  # 1.20 added the root hint
    blocks = re.findall(
        r"kubeadm join apiserver\.cluster\.local:6443 --token [a-z0-9]{6}\.[a-z0-9]{16} \\\n"
        r"    --discovery-token-ca-cert-hash sha256:[0-9a-f]{64} ",
        out,
    )
    assert len(blocks) == 2
    assert re.search(r"\\\n    --control-plane --certificate-key [0-9a-f]{64}\n", out)
    ca = cluster["m1"].root / "etc/kubernetes/pki/ca.crt"
    pubkey = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", str(ca)],
        capture_output=True,
        check=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"],
        input=pubkey,
        capture_output=True,
        check=True,
    ).stdout
    digest = hashlib.sha256(der).hexdigest()
    assert cluster["pin"] == f"sha256:{digest}"


def test_init_writes_real_pki_and_kubeconfigs(cluster: Any) -> None:
    root = cluster["m1"].root
    pki = root / "etc/kubernetes/pki"
    sans = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(pki / "apiserver.crt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for expected in (
        "DNS:apiserver.cluster.local",
        "DNS:m1",
        "IP Address:10.103.97.2",
        "IP Address:127.0.0.1",
        f"IP Address:{cluster['m1'].address}",
        "IP Address:10.96.0.1",
    ):
        assert expected in sans
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki / "ca.crt"), str(pki / "apiserver.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    for key in pki.rglob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    admin = (root / "etc/kubernetes/admin.conf").read_text()
    assert "server: https://apiserver.cluster.local:6443" in admin
    assert (root / "etc/kubernetes/admin.conf").stat().st_mode & 0o777 == 0o600
    assert (root / "etc/kubernetes/manifests/kube-apiserver.yaml").exists()
    logs = "".join(p.read_text() for p in (root / "var/log/sealos-lab").glob("*.log"))
    assert cluster["token"] not in logs and cluster["token"].split(".")[1] not in logs
    assert cluster["key"] not in logs


def test_worker_join_with_wrong_ca_hash_fails_like_kubeadm(cluster: Any) -> None:
    bed, m1, w1 = cluster["bed"], cluster["m1"], cluster["w1"]
    bad = "sha256:" + "0" * 64
    result = bed.tool(
        w1,
        "kubeadm",
        "join",
        f"{m1.address}:6443",
        "--token",
        cluster["token"],
        "--discovery-token-ca-cert-hash",
        bad,
        "--node-name",
        "w1",
    )
    assert result.returncode != 0
    assert (
        "couldn't validate the identity of the API Server: cluster CA found in cluster-info "
        "ConfigMap is invalid: none of the public keys" in result.stderr
    )
    assert cluster["pin"] in result.stderr and "are pinned" in result.stderr
    assert not (w1.root / "etc/kubernetes/kubelet.conf").exists()


def test_worker_join_with_wrong_token_fails_like_kubeadm(cluster: Any) -> None:
    bed, m1, w1 = cluster["bed"], cluster["m1"], cluster["w1"]
    unknown = bed.tool(
        w1,
        "kubeadm",
        "join",
        f"{m1.address}:6443",
        "--token",
        "abcdef.0123456789abcdef",
        "--discovery-token-ca-cert-hash",
        cluster["pin"],
        "--node-name",
        "w1",
        env={"SEALOS_STANDIN_DISCOVERY_TIMEOUT": "3"},
    )
    assert unknown.returncode != 0
    assert (
        'could not find a JWS signature in the cluster-info ConfigMap for token ID "abcdef"'
        in unknown.stderr
    )
    token_id = cluster["token"].split(".")[0]
    forged = bed.tool(
        w1,
        "kubeadm",
        "join",
        f"{m1.address}:6443",
        "--token",
        f"{token_id}.0123456789abcdef",
        "--discovery-token-ca-cert-hash",
        cluster["pin"],
        "--node-name",
        "w1",
    )
    assert forged.returncode != 0
    assert (
        "failed to verify JWS signature of received cluster info object, can't trust this API "
        "Server" in forged.stderr
    )


def test_join_through_a_name_missing_from_cert_sans_fails(cluster: Any) -> None:
    bed, m1, w1 = cluster["bed"], cluster["m1"], cluster["w1"]
    bed.add_address(m1, "10.213.7.99")
    result = bed.tool(
        w1,
        "kubeadm",
        "join",
        "10.213.7.99:6443",
        "--token",
        cluster["token"],
        "--discovery-token-ca-cert-hash",
        cluster["pin"],
        "--node-name",
        "w1",
        env={"SEALOS_STANDIN_DISCOVERY_TIMEOUT": "2"},
    )
    assert result.returncode != 0
    assert "x509: certificate is valid for" in result.stderr and "not 10.213.7.99" in result.stderr


def test_control_plane_and_worker_join(cluster: Any) -> None:
    bed, m1, m2, w1 = cluster["bed"], cluster["m1"], cluster["m2"], cluster["w1"]
    bed.set_hosts(m2, {"apiserver.cluster.local": m1.address})
    joined = bed.tool(
        m2,
        "kubeadm",
        "join",
        "apiserver.cluster.local:6443",
        "--token",
        cluster["token"],
        "--discovery-token-ca-cert-hash",
        cluster["pin"],
        "--control-plane",
        "--certificate-key",
        cluster["key"],
        "--node-name",
        "m2",
        "--apiserver-advertise-address",
        m2.address,
    )
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert (
        "This node has joined the cluster and a new control plane instance was created"
        in joined.stdout
    )
    bed.set_hosts(m2, {"apiserver.cluster.local": m2.address})  # as sealos does after the join
    bed.set_hosts(w1, {"apiserver.cluster.local": m1.address})
    worker = bed.tool(
        w1,
        "kubeadm",
        "join",
        f"{m1.address}:6443",
        "--token",
        cluster["token"],
        "--discovery-token-ca-cert-hash",
        cluster["pin"],
        "--node-name",
        "w1",
    )
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert "This node has joined the cluster:" in worker.stdout
    kubelet_conf = (w1.root / "etc/kubernetes/kubelet.conf").read_text()
    assert (
        "server: https://apiserver.cluster.local:6443" in kubelet_conf
    )  # from cluster-info, not the discovery address
    assert not (w1.root / "etc/kubernetes/bootstrap-kubelet.conf").exists()
    for host in (m1, m2):
        table = wait_for(lambda h=host: (t := node_table(bed, h)) and len(t) == 3 and t)
        assert set(table) == {"m1", "m2", "w1"}
        assert all(row[1] == "Ready" for row in table.values()), table
        assert table["m1"][2] == table["m2"][2] == "control-plane,master"
        assert table["w1"][2] == "<none>"
        assert all(row[4] == VERSION for row in table.values())


def test_kubelets_follow_etc_hosts_and_go_not_ready_when_unheard(cluster: Any) -> None:
    bed, m1, m2, w1 = cluster["bed"], cluster["m1"], cluster["m2"], cluster["w1"]
    bed.set_hosts(w1, {"apiserver.cluster.local": m2.address})
    bed.kill_service(m1, APISERVER_UNIT)
    try:
        # Past the 10 s window m1, whose kubelet reports to its own stopped apiserver, is NotReady
        # (waited for, not slept: a loaded machine stretches the window); w1, whose kubelet now
        # resolves to m2, is still Ready then.
        assert wait_for(lambda: node_table(bed, m2)["m1"][1] == "NotReady", 60)
        table = node_table(bed, m2)
        assert table["w1"][1] == "Ready"
        assert table["m1"][1] == "NotReady"
        assert table["m2"][1] == "Ready"
    finally:
        bed.start_service(m1, APISERVER_UNIT)
    assert wait_for(lambda: kubectl(bed, m1, "get", "nodes").returncode == 0, 20)
    assert wait_for(lambda: node_table(bed, m2)["m1"][1] == "Ready", 20)


def test_kubectl_apply_and_output_formats(cluster: Any) -> None:
    bed, m1, m2 = cluster["bed"], cluster["m1"], cluster["m2"]
    calico = str(m1.kube / "conf" / "net" / "calico.yaml")
    applied = kubectl(bed, m1, "apply", "-f", calico)
    assert applied.returncode == 0, applied.stderr
    assert "configmap/calico-config created" in applied.stdout
    assert "daemonset.apps/calico-node created" in applied.stdout
    assert "clusterrole.rbac.authorization.k8s.io/calico-node created" in applied.stdout
    again = kubectl(bed, m2, "apply", "-f", calico)  # the other master already knows them
    assert "daemonset.apps/calico-node unchanged" in again.stdout
    listed = kubectl(bed, m2, "get", "daemonsets", "-n", "kube-system")
    assert "calico-node" in listed.stdout
    as_json = kubectl(bed, m2, "get", "nodes", "-o", "json")
    items = json.loads(as_json.stdout)["items"]
    assert {item["metadata"]["name"] for item in items} == {"m1", "m2", "w1"}
    wide = kubectl(bed, m1, "get", "nodes", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:7] == ["INTERNAL-IP", "EXTERNAL-IP"]
    addresses = {line.split()[0]: line.split()[5] for line in wide[1:]}
    assert addresses == {"m1": m1.address, "m2": m2.address, "w1": cluster["w1"].address}


def test_join_twice_is_refused(cluster: Any) -> None:
    bed, m1, w1 = cluster["bed"], cluster["m1"], cluster["w1"]
    again = bed.tool(
        w1,
        "kubeadm",
        "join",
        f"{m1.address}:6443",
        "--token",
        cluster["token"],
        "--discovery-token-ca-cert-hash",
        cluster["pin"],
        "--node-name",
        "w1",
    )
    assert again.returncode != 0
    assert (
        "[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf "
        "already exists" in again.stderr
    )
    assert "[ERROR Port-10250]: Port 10250 is in use" in again.stderr


def test_init_twice_is_refused(cluster: Any) -> None:
    bed, m1 = cluster["bed"], cluster["m1"]
    again = bed.tool(m1, "kubeadm", "init", "--config", str(cluster["config"]))
    assert again.returncode != 0
    assert "[ERROR Port-6443]: Port 6443 is in use" in again.stderr
    assert "[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]" in again.stderr
    assert "[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty" in again.stderr


def test_node_deletion_and_apiserver_loss_keep_masters_in_agreement(cluster: Any) -> None:
    bed, m1, m2 = cluster["bed"], cluster["m1"], cluster["m2"]
    assert wait_for(lambda: set(node_table(bed, m1)) == {"m1", "m2", "w1"}, 30)
    deleted = kubectl(bed, m2, "delete", "node", "w1")
    assert deleted.stdout == 'node "w1" deleted\n'
    assert wait_for(lambda: "w1" not in node_table(bed, m1), 5)
    time.sleep(2)  # the kubelet keeps posting; a deleted node stays deleted until it re-registers
    assert "w1" not in node_table(bed, m1) and "w1" not in node_table(bed, m2)
    bed.kill_service(m1, APISERVER_UNIT)
    down = kubectl(bed, m1, "get", "nodes")
    assert down.returncode == 1
    assert (
        "The connection to the server apiserver.cluster.local:6443 was refused - did you specify "
        "the right host or port?" in down.stderr
    )
    assert set(node_table(bed, m2)) == {"m1", "m2"}
    assert node_table(bed, m2)["m2"][1] == "Ready"
    bed.start_service(m1, APISERVER_UNIT)
    assert wait_for(lambda: kubectl(bed, m1, "get", "nodes").returncode == 0, 20)
    assert wait_for(
        lambda: (t := node_table(bed, m1)) and set(t) == {"m1", "m2"} and t["m1"][1] == "Ready", 20
    )


def test_token_create_and_upload_certs_on_a_master(cluster: Any) -> None:
    bed, m2 = cluster["bed"], cluster["m2"]
    created = bed.tool(m2, "kubeadm", "token", "create", "--print-join-command")
    assert created.returncode == 0, created.stderr
    line = created.stdout.strip("\n")
    assert "\n" not in line
    # 1.20 prints the template with its continuations removed: five spaces before the hash flag.
    assert re.fullmatch(
        r"kubeadm join apiserver\.cluster\.local:6443 --token [a-z0-9]{6}\.[a-z0-9]{16}"
        r"     --discovery-token-ca-cert-hash " + re.escape(cluster["pin"]) + " ",
        line,
    )
    cluster["fresh_join"] = line.split()
    uploaded = bed.tool(m2, "kubeadm", "init", "phase", "upload-certs", "--upload-certs")
    assert uploaded.returncode == 0, uploaded.stderr
    assert re.search(r"\[upload-certs\] Using certificate key:\n[0-9a-f]{64}\n", uploaded.stdout)
    skipped = bed.tool(m2, "kubeadm", "init", "phase", "upload-certs")
    assert "[upload-certs] Skipping phase. Please see --upload-certs" in skipped.stdout


def test_reset_removes_what_kubeadm_made_and_a_node_can_join_again(cluster: Any) -> None:
    bed, m1, w1 = cluster["bed"], cluster["m1"], cluster["w1"]
    hosts_file = Path("/etc/netns") / w1.netns / "hosts"
    hosts_before = hosts_file.read_text()
    reset = bed.tool(w1, "kubeadm", "reset", "-f")
    assert reset.returncode == 0, reset.stderr
    assert (
        "The reset process does not reset or clean up iptables rules or IPVS tables."
        in reset.stdout
    )
    assert not (w1.root / "etc/kubernetes/kubelet.conf").exists()
    assert not any((w1.root / "var/lib/kubelet").iterdir())
    assert "kubelet" not in bed.pids(w1)
    assert hosts_file.read_text() == hosts_before
    assert (w1.root / "etc/systemd/system/kubelet.service").exists()
    assert (w1.root / "usr/bin/kubeadm").exists()
    bed.set_hosts(w1, {"apiserver.cluster.local": m1.address})
    command = cluster["fresh_join"]
    assert command[:2] == ["kubeadm", "join"]
    rejoined = bed.tool(w1, "kubeadm", *command[1:], "--node-name", "w1")
    assert rejoined.returncode == 0, rejoined.stdout + rejoined.stderr
    assert wait_for(
        lambda: (t := node_table(bed, m1)) and t.get("w1", [None, None])[1] == "Ready", 20
    )
