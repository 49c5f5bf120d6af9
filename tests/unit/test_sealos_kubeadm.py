"""Rendered kubeadm configs, checked strictly against the upstream field lists of every API version,
and parsing of kubeadm's real output formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sealos.kubeadm import (
    ClusterSettings,
    JoinInfo,
    dump,
    init_command,
    init_documents,
    join_command_1_14_control_plane,
    join_document,
    parse_certificate_key,
    parse_join_commands,
    upload_certs_command,
)
from sealos.kubeversion import KubeVersion
from sealos_lab.package.standin.decoder import ConfigError, decode_config
from sealos_lab.package.standin.embedded import load_schemas
from sealos_lab.package.standin.versions import parse_kube_version

SCHEMAS = load_schemas()
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "src/sealos_lab/package/schemas"

VERSIONS = ["v1.14.1", "v1.20.15", "v1.24.17", "v1.28.15", "v1.31.4"]
TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "7c" * 32
KEY = "f8" * 32


def check_document(doc: dict[str, Any], version: KubeVersion) -> list[str]:
    """Decode strictly with the lab's decoder (the one its stand-in kubeadm uses); [] when valid."""
    target = parse_kube_version(str(version))
    assert target is not None
    try:
        decode_config(dump([doc]), SCHEMAS, target)
    except ConfigError as e:
        return [str(e)]
    return []


def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / name).read_text())


def check_document_stream(text: str, version: KubeVersion) -> list[str]:
    target = parse_kube_version(str(version))
    assert target is not None
    try:
        decode_config(text, SCHEMAS, target)
    except ConfigError as e:
        return [str(e)]
    return []


def settings(version: str) -> ClusterSettings:
    return ClusterSettings(
        version=KubeVersion.parse(version),
        apiserver="apiserver.cluster.local",
        vip="10.103.97.2",
        masters=["10.0.0.2", "10.0.0.3", "10.0.0.4"],
        pod_cidr="100.64.0.0/10",
        svc_cidr="10.96.0.0/16",
        cert_sans=["k8s.example.com", "10.0.0.2"],
        repo="registry.example.com/k8s",
    )


def test_the_strict_decoder_catches_what_sealos_must_avoid():
    v = KubeVersion.parse("v1.14.1")
    key_in_v1beta1 = {
        "apiVersion": "kubeadm.k8s.io/v1beta1",
        "kind": "JoinConfiguration",
        "controlPlane": {"certificateKey": KEY},
    }
    assert "certificateKey" in " ".join(check_document(key_in_v1beta1, v))
    bad_type = {"apiVersion": "kubeadm.k8s.io/v1beta1", "kind": "JoinConfiguration",
                "discovery": {"timeout": 5}}  # fmt: skip
    assert check_document(bad_type, v)
    assert check_document({"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "InitConfiguration"}, v)


@pytest.mark.parametrize("version", VERSIONS)
def test_init_documents_are_strictly_valid_and_say_what_sealos_needs(version):
    s = settings(version)
    docs = list(yaml.safe_load_all(dump(init_documents(s, "10.0.0.2"))))
    assert check_document_stream(dump(init_documents(s, "10.0.0.2")), s.version) == []
    init, cluster, proxy = docs
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.0.0.2", "bindPort": 6443}
    assert cluster["controlPlaneEndpoint"] == "apiserver.cluster.local:6443"
    assert cluster["kubernetesVersion"] == version
    assert cluster["apiServer"]["certSANs"] == [
        "127.0.0.1",
        "apiserver.cluster.local",
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.4",
        "10.103.97.2",
        "k8s.example.com",
    ]
    assert cluster["networking"] == {"podSubnet": "100.64.0.0/10", "serviceSubnet": "10.96.0.0/16"}
    assert cluster["imageRepository"] == "registry.example.com/k8s"
    assert proxy["mode"] == "ipvs" and proxy["ipvs"]["excludeCIDRs"] == ["10.103.97.2/32"]


@pytest.mark.parametrize(
    ("version", "api", "socket"),
    [
        ("v1.14.1", "v1beta1", "/var/run/dockershim.sock"),
        ("v1.20.15", "v1beta2", "/var/run/dockershim.sock"),
        ("v1.24.17", "v1beta3", "unix:///var/run/containerd/containerd.sock"),
        ("v1.28.15", "v1beta3", "unix:///var/run/containerd/containerd.sock"),
        ("v1.31.4", "v1beta4", "unix:///var/run/containerd/containerd.sock"),
    ],
)
def test_api_version_and_cri_socket_per_release(version, api, socket):
    flags = load("kubeadm-flags.json")["versions"]
    v = KubeVersion.parse(version)
    init = init_documents(settings(version), "10.0.0.2")[0]
    assert init["apiVersion"] == f"kubeadm.k8s.io/{api}"
    assert (
        init["nodeRegistration"]["criSocket"] == socket == flags[f"1.{v.minor}"]["defaultCriSocket"]
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_join_documents_are_strictly_valid(version):
    v = KubeVersion.parse(version)
    info = JoinInfo("apiserver.cluster.local:6443", TOKEN, [HASH], KEY)
    node = join_document(v, info, "10.103.97.2:6443")
    master = join_document(
        v, info, "apiserver.cluster.local:6443", control_plane_address="10.0.0.3"
    )
    for d in (node, master):
        assert check_document(yaml.safe_load(dump([d])), v) == []
    assert node["discovery"]["bootstrapToken"] == {
        "token": TOKEN,
        "apiServerEndpoint": "10.103.97.2:6443",
        "caCertHashes": [HASH],
    }
    assert "controlPlane" not in node
    assert master["controlPlane"]["localAPIEndpoint"]["advertiseAddress"] == "10.0.0.3"
    # The key goes into the file where the API has the field; on 1.14 it cannot.
    assert ("certificateKey" in master["controlPlane"]) == (v.minor >= 15)


@pytest.mark.parametrize("version", VERSIONS)
def test_flags_match_the_release(version):
    v = KubeVersion.parse(version)
    facts = load("kubeadm-flags.json")["versions"][f"1.{v.minor}"]
    assert init_command(v, "/root/kubeadm-config.yaml").split()[-1] == facts["initUploadCertsFlag"]
    assert upload_certs_command(v, None).split()[-1] == facts["initUploadCertsFlag"]
    assert v.control_plane_flag == facts["joinControlPlaneFlag"]


def test_1_14_control_plane_join_keeps_secrets_off_the_command_line():
    v = KubeVersion.parse("v1.14.1")
    cmd = join_command_1_14_control_plane(v, "apiserver.cluster.local:6443", [HASH], "10.0.0.3")
    assert TOKEN not in cmd and KEY not in cmd
    assert "--experimental-control-plane" in cmd and '--certificate-key "$key"' in cmd
    assert "--config" not in cmd  # 1.14 refuses to mix --config with --certificate-key


INIT_OUTPUT_1_14 = f"""[init] Using Kubernetes version: v1.14.1
Your Kubernetes control-plane has initialized successfully!

You can now join any number of the control-plane node running the following command on each as root:

  kubeadm join apiserver.cluster.local:6443 --token {TOKEN} \\
    --discovery-token-ca-cert-hash {HASH} \\
    --experimental-control-plane --certificate-key {KEY}

Please note that the certificate-key gives access to cluster sensitive data, keep it secret!

Then you can join any number of worker nodes by running the following on each as root:

kubeadm join apiserver.cluster.local:6443 --token {TOKEN} \\
    --discovery-token-ca-cert-hash {HASH}
"""


def test_parse_init_output_with_both_join_commands():
    info = parse_join_commands(INIT_OUTPUT_1_14)
    assert info is not None
    assert info.endpoint == "apiserver.cluster.local:6443"
    assert info.token == TOKEN and info.ca_cert_hashes == [HASH] and info.certificate_key == KEY
    assert TOKEN not in repr(info) and KEY not in repr(info)


def test_parse_print_join_command_and_equals_form():
    out = f"kubeadm join 10.0.0.2:6443 --token={TOKEN} --discovery-token-ca-cert-hash {HASH} \n"
    info = parse_join_commands(out)
    assert info is not None and info.endpoint == "10.0.0.2:6443" and info.certificate_key is None


def test_parse_refuses_garbage():
    assert (
        parse_join_commands("kubeadm join x --token nope --discovery-token-ca-cert-hash h") is None
    )
    assert parse_join_commands("nothing here") is None


def test_parse_certificate_key_from_last_line():
    out = (
        '[upload-certs] Storing the certificates in Secret "kubeadm-certs"\n'
        f"[upload-certs] Using certificate key:\n{KEY}\n"
    )
    assert parse_certificate_key(out) == KEY
    assert parse_certificate_key("error\n") is None
