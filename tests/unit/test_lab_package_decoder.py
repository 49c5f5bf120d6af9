"""The stand-ins' strict kubeadm config decoder, against the upstream schemas (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealos_lab.package.standin.decoder import (
    ConfigError,
    decode_config,
    format_go_duration,
    load_yaml_documents,
    parse_go_duration,
)
from sealos_lab.package.standin.embedded import load_schemas
from sealos_lab.package.standin.versions import parse_kube_version

DATA = Path(__file__).parent / "test_lab_package_data"
SCHEMAS = load_schemas()


def decode(text: str, version: str):
    parsed = parse_kube_version(version)
    assert parsed is not None
    return decode_config(text, SCHEMAS, parsed)


def rejected(text: str, version: str) -> str:
    with pytest.raises(ConfigError) as info:
        decode(text, version)
    return str(info.value)


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("doc_v1beta1_init", "v1.14.1"),
        ("doc_v1beta1_init", "v1.20.15"),
        ("doc_v1beta2_init", "v1.20.15"),
        ("doc_v1beta2_init", "v1.24.17"),
        ("doc_v1beta3_init", "v1.24.17"),
        ("doc_v1beta3_init", "v1.28.15"),
        ("doc_v1beta3_init", "v1.31.4"),
        ("doc_v1beta4_init", "v1.31.4"),
        ("doc_v1beta4_join", "v1.31.4"),
        ("defaults_v1beta1_join", "v1.14.1"),
        ("defaults_v1beta2_join", "v1.20.15"),
        ("defaults_v1beta3_join", "v1.28.15"),
    ],
)
def test_documented_configs_are_accepted(name: str, version: str) -> None:
    decoded = decode((DATA / f"{name}.yaml").read_text(), version)
    kinds = {doc.kind for doc in decoded.documents}
    assert kinds & {"InitConfiguration", "JoinConfiguration"}


def test_unknown_field_is_named_with_its_path() -> None:
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta2\n"
        "kind: ClusterConfiguration\n"
        "networking:\n"
        "  podCIDR: 10.0.0.0/8\n"
    )
    message = rejected(text, "v1.20.15")
    assert 'unknown field "networking.podCIDR"' in message
    assert 'Kind:"ClusterConfiguration"' in message


def test_unknown_top_level_field_in_kubeproxy_config() -> None:
    text = (
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmodes: ipvs\n"
    )
    assert 'unknown field "modes"' in rejected(text, "v1.20.15")


def test_unknown_field_inside_a_list_item() -> None:
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n"
        "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  tll: 1h\n"
    )
    assert 'unknown field "bootstrapTokens[0].tll"' in rejected(text, "v1.24.17")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('localAPIEndpoint:\n  bindPort: "6443"\n', "cannot unmarshal string into Go struct field"),
        ("localAPIEndpoint:\n  bindPort: 6443.5\n", "cannot unmarshal number"),
        ("nodeRegistration:\n  kubeletExtraArgs:\n    v: 4\n", "cannot unmarshal number"),
        ("nodeRegistration:\n  taints: {key: a}\n", "cannot unmarshal object"),
        ("nodeRegistration:\n  kubeletExtraArgs: [a]\n", "cannot unmarshal array"),
        ("localAPIEndpoint: 10.0.0.1\n", "cannot unmarshal string"),
    ],
)
def test_wrong_types_are_refused(body: str, expected: str) -> None:
    text = "apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\n" + body
    assert expected in rejected(text, "v1.20.15")


def test_wrong_type_message_names_the_field() -> None:
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta2\n"
        "kind: InitConfiguration\n"
        "localAPIEndpoint:\n"
        "  bindPort: x\n"
    )
    assert "localAPIEndpoint.bindPort of type int32" in rejected(text, "v1.20.15")


def test_boolean_field_refuses_a_string() -> None:
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n"
        '  extraVolumes:\n  - name: a\n    readOnly: "yes"\n'
    )
    assert "readOnly of type bool" in rejected(text, "v1.24.17")


def test_durations_parse_like_go() -> None:
    assert parse_go_duration("4m0s") == 240
    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("1.5s") == 1.5
    assert parse_go_duration("0") == 0
    assert parse_go_duration("300") is None
    assert parse_go_duration("4 m") is None
    assert format_go_duration(300) == "5m0s"
    assert format_go_duration(86400) == "24h0m0s"
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta2\n"
        "kind: ClusterConfiguration\n"
        "apiServer:\n"
        "  timeoutForControlPlane: 4min\n"
    )
    assert 'time: invalid duration "4min"' in rejected(text, "v1.20.15")


@pytest.mark.parametrize(
    ("api", "version", "expected"),
    [
        (
            "v1beta3",
            "v1.20.15",
            'no kind "InitConfiguration" is registered for version "kubeadm.k8s.io/v1beta3"',
        ),
        (
            "v1beta2",
            "v1.14.1",
            'no kind "InitConfiguration" is registered for version "kubeadm.k8s.io/v1beta2"',
        ),
        ("v1beta4", "v1.28.15", 'no kind "InitConfiguration" is registered'),
        (
            "v1beta1",
            "v1.24.17",
            'uses an old API spec: "kubeadm.k8s.io/v1beta1". Please use kubeadm v1.15',
        ),
        (
            "v1beta2",
            "v1.28.15",
            'uses an old API spec: "kubeadm.k8s.io/v1beta2" (kind: "InitConfiguration"). Please '
            "use kubeadm v1.22",
        ),
        (
            "v1alpha3",
            "v1.14.1",
            'uses an old API spec: "kubeadm.k8s.io/v1alpha3". Please use kubeadm v1.13',
        ),
        (
            "v1",
            "v1.31.4",
            'no kind "InitConfiguration" is registered for version "kubeadm.k8s.io/v1"',
        ),
    ],
)
def test_api_versions_outside_the_release_are_refused(
    api: str, version: str, expected: str
) -> None:
    text = f"apiVersion: kubeadm.k8s.io/{api}\nkind: InitConfiguration\n"
    assert expected in rejected(text, version)


def test_api_ranges_follow_the_schemas() -> None:
    for version, accepted in [
        ("v1.14.1", {"v1beta1"}),
        ("v1.15.12", {"v1beta1", "v1beta2"}),
        ("v1.21.14", {"v1beta1", "v1beta2"}),
        ("v1.22.17", {"v1beta2", "v1beta3"}),
        ("v1.26.15", {"v1beta2", "v1beta3"}),
        ("v1.27.16", {"v1beta3"}),
        ("v1.31.4", {"v1beta3", "v1beta4"}),
    ]:
        ok = set()
        for api in ("v1beta1", "v1beta2", "v1beta3", "v1beta4"):
            try:
                decode(f"apiVersion: kubeadm.k8s.io/{api}\nkind: ClusterConfiguration\n", version)
            except ConfigError:
                continue
            ok.add(api)
        assert ok == accepted, version


def test_deprecated_api_gives_a_warning_not_an_error() -> None:
    decoded = decode("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n", "v1.31.4")
    assert any("deprecated API spec" in w for w in decoded.warnings)
    assert not decode(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n", "v1.28.15"
    ).warnings


def test_fields_follow_since_and_removed_releases() -> None:
    strict_arp = (
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
        "kind: KubeProxyConfiguration\n"
        "ipvs:\n"
        "  strictARP: true\n"
    )
    assert 'unknown field "ipvs.strictARP"' in rejected(strict_arp, "v1.14.1")
    decode(strict_arp, "v1.15.12")
    container = (
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
        "kind: KubeProxyConfiguration\n"
        "resourceContainer: /kube-proxy\n"
    )
    decode(container, "v1.14.1")
    assert 'unknown field "resourceContainer"' in rejected(container, "v1.16.15")
    cert_key = "apiVersion: kubeadm.k8s.io/v1beta1\nkind: InitConfiguration\ncertificateKey: abc\n"
    assert 'unknown field "certificateKey"' in rejected(cert_key, "v1.14.1")


def test_type_can_change_between_releases() -> None:
    def kubelet(value: str) -> str:
        return (
            "apiVersion: kubelet.config.k8s.io/v1beta1\n"
            "kind: KubeletConfiguration\n"
            "logging:\n"
            f"  flushFrequency: {value}\n"
        )

    decode(kubelet("5000000000"), "v1.24.17")  # integer nanoseconds in 1.23..1.27
    assert "cannot unmarshal string" in rejected(kubelet('"5s"'), "v1.24.17")
    decode(kubelet('"5s"'), "v1.28.15")  # a duration string from 1.28 (numbers still accepted)
    decode(kubelet("5000000000"), "v1.28.15")


def test_sealos_style_config_is_accepted() -> None:
    text = """apiVersion: kubeadm.k8s.io/v1beta1
kind: ClusterConfiguration
kubernetesVersion: v1.14.1
controlPlaneEndpoint: "apiserver.cluster.local:6443"
networking:
  podSubnet: 100.64.0.0/10
apiServer:
  certSANs:
  - 127.0.0.1
  - apiserver.cluster.local
  - 10.103.97.2
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: "ipvs"
ipvs:
  excludeCIDRs:
  - "10.103.97.2/32"
"""
    decoded = decode(text, "v1.14.1")
    assert [d.kind for d in decoded.documents] == ["ClusterConfiguration", "KubeProxyConfiguration"]


def test_other_document_problems() -> None:
    assert "Object 'Kind' is missing" in rejected(
        "apiVersion: kubeadm.k8s.io/v1beta2\n", "v1.20.15"
    )
    assert "Object 'apiVersion' is missing" in rejected("kind: InitConfiguration\n", "v1.20.15")
    twice = (
        "apiVersion: kubeadm.k8s.io/v1beta2\n"
        "kind: InitConfiguration\n"
        "---\n"
        "apiVersion: kubeadm.k8s.io/v1beta2\n"
        "kind: InitConfiguration\n"
    )
    assert 'kind "InitConfiguration" is specified twice' in rejected(twice, "v1.20.15")
    assert 'no kind "Deployment" is registered for version "apps/v1"' in rejected(
        "apiVersion: apps/v1\nkind: Deployment\n", "v1.20.15"
    )
    assert "error converting YAML to JSON: yaml: line" in rejected("a: [\n", "v1.20.15")


def test_nulls_are_accepted_and_timestamps_stay_strings() -> None:
    decode(
        "apiVersion: kubeadm.k8s.io/v1beta2\nkind: JoinConfiguration\nnodeRegistration:\n  "
        "taints: null\n",
        "v1.20.15",
    )
    docs = load_yaml_documents("expires: 2024-01-01T00:00:00Z\n")
    assert docs == [{"expires": "2024-01-01T00:00:00Z"}]
    expires = (
        "apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\nbootstrapTokens:\n"
        "- token: abcdef.0123456789abcdef\n  expires: 2024-01-01T00:00:00Z\n"
    )
    decode(expires, "v1.20.15")
    assert "cannot parse as RFC3339" in rejected(
        expires.replace("2024-01-01T00:00:00Z", "tomorrow"), "v1.20.15"
    )
