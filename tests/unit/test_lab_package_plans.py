"""kubeadm stand-in: flags per release, pflag parsing, init/join plans from flags and configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealos_lab.package.standin.cliflags import Flag, FlagError, parse_flags
from sealos_lab.package.standin.decoder import decode_config
from sealos_lab.package.standin.embedded import load_schemas
from sealos_lab.package.standin.kubeadm.flags import init_flags, join_flags, mixed_flag_error
from sealos_lab.package.standin.kubeadm.init_config import build_init_plan
from sealos_lab.package.standin.kubeadm.join_config import build_join_plan
from sealos_lab.package.standin.kubeadm.plans import PlanError, split_endpoint
from sealos_lab.package.standin.kubectl_cmd import human_duration, tabulate
from sealos_lab.package.standin.versions import (
    KubeVersion,
    control_plane_labels,
    join_line_indent,
    parse_kube_version,
)

DATA = Path(__file__).parent / "test_lab_package_data"
CRI = "/var/run/dockershim.sock"


def kv(text: str) -> KubeVersion:
    parsed = parse_kube_version(text)
    assert parsed is not None
    return parsed


def test_pflag_parsing() -> None:
    flags = {
        "config": Flag("config"),
        "v": Flag("v", "int", short="v"),
        "force": Flag("force", "bool", short="f"),
        "ignore": Flag("ignore", "strings"),
    }
    parsed = parse_flags(
        ["join", "--config=a.yaml", "-v", "5", "x:6443", "-f", "--ignore", "a,b", "--ignore=c"],
        flags,
    )
    assert parsed.args == ["join", "x:6443"]
    assert parsed.values["config"] == "a.yaml" and parsed.values["v"] == 5
    assert parsed.values["force"] is True and parsed.values["ignore"] == ["a", "b", "c"]
    assert parse_flags(["-v5"], flags).values["v"] == 5
    with pytest.raises(FlagError, match="unknown flag: --nope"):
        parse_flags(["--nope"], flags)
    with pytest.raises(FlagError, match="flag needs an argument: --config"):
        parse_flags(["--config"], flags)
    with pytest.raises(FlagError, match='invalid argument "x" for "-v, --v" flag'):
        parse_flags(["-v=x"], flags)
    with pytest.raises(FlagError, match="unknown shorthand flag: 'q' in -q"):
        parse_flags(["-q"], flags)


def test_flag_tables_per_release() -> None:
    assert "experimental-upload-certs" in init_flags(kv("v1.14.1"))
    assert "upload-certs" not in init_flags(kv("v1.14.1"))
    assert {"upload-certs", "experimental-upload-certs"} <= set(init_flags(kv("v1.15.12")))
    assert "experimental-upload-certs" not in init_flags(kv("v1.16.15"))
    assert "control-plane-endpoint" not in init_flags(kv("v1.15.12"))
    assert "control-plane-endpoint" in init_flags(kv("v1.16.15"))
    assert "experimental-control-plane" in join_flags(kv("v1.14.1"))
    assert "control-plane" in join_flags(kv("v1.20.15"))
    assert "patches" in join_flags(kv("v1.22.17")) and "patches" not in join_flags(kv("v1.20.15"))


@pytest.mark.parametrize(
    ("version", "flags", "expected"),
    [
        ("v1.20.15", ["--config=c", "--token=abcdef.0123456789abcdef"], "[token]"),
        ("v1.20.15", ["--config=c", "--upload-certs", "--skip-phases=addon/kube-proxy"], None),
        ("v1.14.1", ["--config=c", "--experimental-upload-certs", "--certificate-key=k"], None),
        ("v1.20.15", ["--config=c", "--certificate-key=k"], "[certificate-key]"),
        ("v1.21.14", ["--config=c", "--cri-socket=/x.sock"], None),
        ("v1.22.17", ["--config=c", "--cri-socket=/x.sock"], "[cri-socket]"),
        (
            "v1.20.15",
            ["--config=c", "--node-name=n", "--ignore-preflight-errors=all", "-v=5"],
            None,
        ),
    ],
)
def test_mixing_config_and_flags(version: str, flags: list[str], expected: str | None) -> None:
    parsed = parse_flags(flags, init_flags(kv(version)))
    problem = mixed_flag_error(parsed, kv(version))
    if expected is None:
        assert problem is None
    else:
        assert problem == f"can not mix '--config' with arguments {expected}"


def test_join_output_indent_and_roles_per_release() -> None:
    assert join_line_indent(kv("v1.20.15")) == "    "
    assert join_line_indent(kv("v1.21.0")) == "\t"
    assert control_plane_labels(kv("v1.14.1")) == ["node-role.kubernetes.io/master"]
    assert len(control_plane_labels(kv("v1.20.15"))) == 2
    assert control_plane_labels(kv("v1.24.17")) == ["node-role.kubernetes.io/control-plane"]


def test_init_plan_from_flags() -> None:
    version = kv("v1.20.15")
    parsed = parse_flags(
        [
            "--apiserver-advertise-address=10.0.0.2",
            "--control-plane-endpoint=apiserver.cluster.local:6443",
            "--apiserver-cert-extra-sans=10.103.97.2,apiserver.cluster.local",
            "--upload-certs",
            "--kubernetes-version=v1.20.15",
        ],
        init_flags(version),
    )
    plan = build_init_plan(parsed, None, version, "master0", CRI)
    assert plan.advertise_address == "10.0.0.2" and plan.upload_certs
    assert plan.cluster.control_plane_endpoint == "apiserver.cluster.local:6443"
    assert plan.cluster.cert_sans == ["10.103.97.2", "apiserver.cluster.local"]
    assert plan.node_name == "master0" and plan.cri_socket == CRI
    assert plan.tokens[0].ttl == 24 * 3600


def test_init_plan_refuses_bad_values() -> None:
    version = kv("v1.20.15")
    with pytest.raises(PlanError, match="a lowercase RFC 1123 subdomain"):
        build_init_plan(parse_flags([], init_flags(version)), None, version, "Master0", CRI)
    flags = ["--token=abc.def", "--kubernetes-version=v1.20.15"]
    with pytest.raises(PlanError, match=r'token: Invalid value: "abc\.<redacted>"'):
        build_init_plan(parse_flags(flags, init_flags(version)), None, version, "m", CRI)
    old = ["--kubernetes-version=v1.18.0"]
    with pytest.raises(PlanError, match=r"control plane version >= v1\.19\.0"):
        build_init_plan(parse_flags(old, init_flags(version)), None, version, "m", CRI)
    plan = build_init_plan(parse_flags([], init_flags(version)), None, version, "m", CRI)
    assert plan.cluster.kubernetes_version == "v1.20.15"  # stable-1 falls back offline
    assert any("falling back to the local client version" in w for w in plan.warnings)


def test_init_plan_from_the_v1beta4_doc_config() -> None:
    version = kv("v1.31.4")
    config = decode_config((DATA / "doc_v1beta4_init.yaml").read_text(), load_schemas(), version)
    parsed = parse_flags(["--config=x"], init_flags(version))
    plan = build_init_plan(parsed, config, version, "ignored", CRI)
    assert plan.node_name == "ec2-10-100-0-1"
    assert plan.kubelet_extra_args == {"v": "5"}  # v1beta4 list form
    assert plan.cluster.encryption_algorithm == "ECDSA-P256"
    assert [t.token for t in plan.tokens] == ["9a08jv.c0izixklcxtmnze7", "783bde.3f89s0fje9f38fhf"]
    assert plan.certificate_key.startswith("e6a2eb85")


def test_join_plan_from_flags_and_from_configs() -> None:
    version = kv("v1.20.15")
    parsed = parse_flags(
        [
            "10.103.97.2:6443",
            "--token=abcdef.0123456789abcdef",
            "--discovery-token-ca-cert-hash=sha256:" + "a" * 64,
            "--control-plane",
            "--certificate-key=" + "b" * 64,
        ],
        join_flags(version),
    )
    plan = build_join_plan(parsed, None, version, "node1", CRI)
    assert plan.endpoint == "10.103.97.2:6443" and plan.control_plane
    assert plan.certificate_key == "b" * 64 and plan.discovery_timeout == 300
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta2\nkind: JoinConfiguration\n"
        "discovery:\n  bootstrapToken:\n    apiServerEndpoint: apiserver.cluster.local:6443\n"
        "    token: abcdef.0123456789abcdef\n    caCertHashes: [sha256:" + "c" * 64 + "]\n"
        "  timeout: 30s\n"
        "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 10.0.0.3\n"
        "  certificateKey: " + "d" * 64 + "\n"
        "nodeRegistration:\n  name: master1\n"
    )
    config = decode_config(text, load_schemas(), version)
    plan = build_join_plan(
        parse_flags(["--config=x"], join_flags(version)), config, version, "h", CRI
    )
    assert plan.control_plane and plan.advertise_address == "10.0.0.3"
    assert plan.certificate_key == "d" * 64 and plan.discovery_timeout == 30
    assert plan.node_name == "master1" and plan.ca_cert_hashes == ["sha256:" + "c" * 64]
    v4 = kv("v1.31.4")
    doc = decode_config((DATA / "doc_v1beta4_join.yaml").read_text(), load_schemas(), v4)
    plan = build_join_plan(parse_flags(["--config=x"], join_flags(v4)), doc, v4, "w", CRI)
    assert plan.unsafe_skip_ca_verification and plan.endpoint == "some-address:6443"


def test_kubectl_table_layout_and_ages() -> None:
    table = tabulate([["NAME", "STATUS", "AGE"], ["master0", "Ready", "5m"]])
    assert table == "NAME      STATUS   AGE\nmaster0   Ready    5m\n"
    assert [human_duration(s) for s in (5, 119, 125, 600, 3 * 3600 + 60, 30 * 3600, 3 * 86400)] == [
        "5s", "119s", "2m5s", "10m", "3h1m", "30h", "3d",
    ]  # fmt: skip
    assert split_endpoint("apiserver.cluster.local:6443", 1) == ("apiserver.cluster.local", 6443)
    assert split_endpoint("10.0.0.1", 6443) == ("10.0.0.1", 6443)
