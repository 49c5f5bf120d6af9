"""Release differences of the built stand-ins, on namespace hosts: 1.14's experimental flags and
slow discovery failures, 1.31's v1beta4 configs; and kubeadm's documented configs accepted (and
broken ones refused) by a stand-in of every test release.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from sealos_lab.package import build
from sealos_lab.package.testbed import NamespaceHost, NetnsTestbed

pytestmark = pytest.mark.root
PYTHON = "/usr/bin/python3"
DATA = Path(__file__).parent.parent / "unit" / "test_lab_package_data"
VERSIONS = ["v1.14.1", "v1.20.15", "v1.24.17", "v1.28.15", "v1.31.4"]


def _group(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in output:\n{text}"
    return match.group(1)


def _bed(tmp: Path, version: str, count: int, tag: str) -> NetnsTestbed:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    package = build(version, tmp / f"kube{version[1:]}.tar.gz")
    bed = NetnsTestbed(f"lpv{tag}{os.getpid() % 10000}", count, tmp / "hosts", package, PYTHON)
    bed.up()
    for host in bed.hosts:
        prepared = bed.run(host, ["sh", str(host.kube / "shell" / "init.sh")])
        assert prepared.returncode == 0, prepared.stderr
    return bed


def _tables(bed: NetnsTestbed, host: NamespaceHost) -> dict[str, list[str]]:
    admin = host.root / "etc/kubernetes/admin.conf"
    result = bed.tool(host, "kubectl", "get", "nodes", env={"KUBECONFIG": str(admin)})
    assert result.returncode == 0, result.stderr
    return {row.split()[0]: row.split() for row in result.stdout.splitlines()[1:]}


@pytest.fixture(scope="module")
def docs_bed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One namespace host with the packages of every test release unpacked."""
    tmp = tmp_path_factory.mktemp("lpk-docs")
    bed = _bed(tmp, "v1.20.15", 1, "d")
    try:
        kubes = {}
        for version in VERSIONS:
            archive = build(version, tmp / f"pkg{version}.tar.gz")
            with tarfile.open(archive) as tar:
                tar.extractall(tmp / version, filter="data")
            kubes[version] = tmp / version / "kube"
        yield bed, kubes
    finally:
        bed.down()


def _kubeadm(bed: NetnsTestbed, kube: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return bed.run(bed.hosts[0], [PYTHON, str(kube / "bin" / "kubeadm"), *args])


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("doc_v1beta1_init", "v1.14.1"),
        ("doc_v1beta2_init", "v1.20.15"),
        ("doc_v1beta3_init", "v1.24.17"),
        ("doc_v1beta4_init", "v1.31.4"),
    ],
)
def test_documented_init_configs_are_accepted(docs_bed: Any, name: str, version: str) -> None:
    bed, kubes = docs_bed
    result = _kubeadm(
        bed, kubes[version], "init", "--config", str(DATA / f"{name}.yaml"), "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "[dryrun] Finished dry-running successfully." in result.stdout


@pytest.mark.parametrize(
    ("version", "document", "expected"),
    [
        (
            "v1.14.1",
            "apiVersion: kubeadm.k8s.io/v1beta1\nkind: ClusterConfiguration\napiServer:\n  "
            "certSAN: [a]\n",
            'unknown field "apiServer.certSAN"',
        ),
        (
            "v1.24.17",
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nlocalAPIEndpoint:\n  "
            "bindPort: '6443'\n",
            "cannot unmarshal string into Go struct field "
            "LocalAPIEndpoint.localAPIEndpoint.bindPort of type int32",
        ),
        (
            "v1.28.15",
            "apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\n",
            'old API spec: "kubeadm.k8s.io/v1beta2"',
        ),
        (
            "v1.20.15",
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n",
            'no kind "InitConfiguration" is registered for version "kubeadm.k8s.io/v1beta3"',
        ),
        (
            "v1.31.4",
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  "
            "extraArgs:\n    authorization-mode: Node\n",
            "cannot unmarshal object into Go struct field ApiServer.apiServer.extraArgs of type "
            "[]ExtraArgs",
        ),
    ],
)
def test_broken_configs_are_refused(
    docs_bed: Any, tmp_path: Path, version: str, document: str, expected: str
) -> None:
    bed, kubes = docs_bed
    config = tmp_path / "kubeadm.yaml"
    config.write_text(document)
    result = _kubeadm(bed, kubes[version], "init", "--config", str(config), "--dry-run")
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_release_1_14_uses_experimental_flags_and_slow_discovery(tmp_path: Path) -> None:
    bed = _bed(tmp_path, "v1.14.1", 2, "a")
    try:
        m1, m2 = bed.hosts
        for host in bed.hosts:
            bed.set_hosts(host, {"apiserver.cluster.local": m1.address})
        config = tmp_path / "kubeadm.yaml"
        config.write_text(
            "apiVersion: kubeadm.k8s.io/v1beta1\nkind: InitConfiguration\n"
            f"localAPIEndpoint:\n  advertiseAddress: {m1.address}\nnodeRegistration:\n  name: "
            "m1\n---\n"
            "apiVersion: kubeadm.k8s.io/v1beta1\nkind: ClusterConfiguration\n"
            "kubernetesVersion: v1.14.1\ncontrolPlaneEndpoint: apiserver.cluster.local:6443\n"
            "apiServer:\n  certSANs: [127.0.0.1, apiserver.cluster.local, 10.103.97.2]\n"
        )
        init = bed.tool(
            m1, "kubeadm", "init", "--config", str(config), "--experimental-upload-certs"
        )
        assert init.returncode == 0, init.stdout + init.stderr
        out = init.stdout
        assert "Alternatively, if you are the root user" not in out
        assert (
            '"kubeadm init phase upload-certs --experimental-upload-certs" to reload certs '
            "afterward." in out
        )
        assert re.search(
            r"\\\n    --experimental-control-plane --certificate-key [0-9a-f]{64}\n", out
        )
        token = _group(r"--token (\S+)", out)
        pin = _group(r"--discovery-token-ca-cert-hash (\S+)", out)
        key = _group(r"--certificate-key (\S+)", out)
        # Before 1.18 every discovery error is retried until the discovery timeout.
        wrong = bed.tool(
            m2,
            "kubeadm",
            "join",
            f"{m1.address}:6443",
            "--token",
            token,
            "--discovery-token-ca-cert-hash",
            "sha256:" + "1" * 64,
            "--node-name",
            "m2",
            env={"SEALOS_STANDIN_DISCOVERY_TIMEOUT": "3"},
        )
        assert wrong.returncode != 0
        assert (
            "couldn't validate the identity of the API Server: abort connecting to API servers "
            "after timeout of 3s" in wrong.stderr
        )
        joined = bed.tool(
            m2,
            "kubeadm",
            "join",
            "apiserver.cluster.local:6443",
            "--token",
            token,
            "--discovery-token-ca-cert-hash",
            pin,
            "--experimental-control-plane",
            "--certificate-key",
            key,
            "--node-name",
            "m2",
            "--apiserver-advertise-address",
            m2.address,
        )
        assert joined.returncode == 0, joined.stdout + joined.stderr
        table = _tables(bed, m1)
        assert {name: row[2] for name, row in table.items()} == {"m1": "master", "m2": "master"}
        assert all(row[4] == "v1.14.1" for row in table.values())
    finally:
        bed.down()


def test_release_1_31_with_v1beta4_configs(tmp_path: Path) -> None:
    bed = _bed(tmp_path, "v1.31.4", 2, "b")
    try:
        m1, w1 = bed.hosts
        for host in bed.hosts:
            bed.set_hosts(host, {"apiserver.cluster.local": m1.address})
        config = tmp_path / "init.yaml"
        config.write_text(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
            f"localAPIEndpoint:\n  advertiseAddress: {m1.address}\n"
            "nodeRegistration:\n  name: m1\n  kubeletExtraArgs:\n  - name: v\n    value: '2'\n---\n"
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
            "kubernetesVersion: v1.31.4\ncontrolPlaneEndpoint: apiserver.cluster.local:6443\n"
            "encryptionAlgorithm: ECDSA-P256\n"
            "apiServer:\n  certSANs: [apiserver.cluster.local, 10.103.97.2]\n"
        )
        init = bed.tool(m1, "kubeadm", "init", "--config", str(config), "--upload-certs")
        assert init.returncode == 0, init.stdout + init.stderr
        assert re.search(r"\\\n\t--control-plane --certificate-key [0-9a-f]{64}\n", init.stdout)
        assert (m1.root / "etc/kubernetes/super-admin.conf").exists()
        ca_key = (m1.root / "etc/kubernetes/pki/ca.key").read_text()
        assert "BEGIN PRIVATE KEY" in ca_key and len(ca_key) < 400  # an EC key, as configured
        token = _group(r"--token (\S+)", init.stdout)
        pin = _group(r"--discovery-token-ca-cert-hash (\S+)", init.stdout)
        join = tmp_path / "join.yaml"
        join.write_text(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
            f"discovery:\n  bootstrapToken:\n    apiServerEndpoint: {m1.address}:6443\n"
            f"    token: {token}\n    caCertHashes: [{pin}]\n"
            "nodeRegistration:\n  name: w1\n"
        )
        joined = bed.tool(w1, "kubeadm", "join", "--config", str(join))
        assert joined.returncode == 0, joined.stdout + joined.stderr
        table = _tables(bed, m1)
        assert {name: row[2] for name, row in table.items()} == {
            "m1": "control-plane",
            "w1": "<none>",
        }
        version = bed.tool(
            m1, "kubectl", "version", env={"KUBECONFIG": str(m1.root / "etc/kubernetes/admin.conf")}
        )
        assert (
            version.stdout.startswith("Client Version: v1.31.4\n")
            and "Server Version: v1.31.4" in version.stdout
        )
        mixed = bed.tool(w1, "kubeadm", "join", "--config", str(join), "--token", token)
        assert "can not mix '--config' with arguments [token]" in mixed.stderr
    finally:
        bed.down()
