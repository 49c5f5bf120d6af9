"""The package builder and the built stand-ins' per-release surface (no root needed)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sealos_lab.package import BuildError, build, main, standin_script

VERSIONS = ["v1.14.1", "v1.20.15", "v1.24.17", "v1.28.15", "v1.31.4"]


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every test version built and unpacked once: version -> kube/ directory."""
    base = tmp_path_factory.mktemp("lab-packages")
    unpacked = {}
    for version in VERSIONS:
        archive = build(version, base / f"kube{version[1:]}.tar.gz")
        target = base / version
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        unpacked[version] = target / "kube"
    return unpacked


def run(
    kube: Path, program: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(kube.parent / "home")}
    return subprocess.run(
        [sys.executable, str(kube / "bin" / program), *args],
        capture_output=True,
        text=True,
        env={**base_env, **(env or {})},
        timeout=60,
        check=False,
    )


def test_layout_modes_and_reproducibility(tmp_path: Path) -> None:
    first = build("v1.14.1", tmp_path / "a.tar.gz")
    second = build("1.14.1", tmp_path / "b.tar.gz")
    assert (
        hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    )
    with tarfile.open(first) as tar:
        members = {m.name: m for m in tar.getmembers()}
    for name in (
        "kube/bin/kubeadm",
        "kube/bin/kubelet",
        "kube/bin/kubectl",
        "kube/shell/init.sh",
        "kube/conf/net/calico.yaml",
        "kube/conf/kubelet.service",
        "kube/conf/10-kubeadm.conf",
        "kube/conf/heapster/heapster.yaml",
        "kube/conf/dashboard/kubernetes-dashboard.yaml",
        "kube/images/images.tar",
        "kube/version",
    ):
        assert name in members, name
    for name in ("kube/bin/kubeadm", "kube/bin/kubelet", "kube/bin/kubectl", "kube/shell/init.sh"):
        assert members[name].mode & 0o111 == 0o111
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())


def test_default_output_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert build("v1.20.15") == tmp_path / "kube1.20.15.tar.gz"


def test_bad_versions_are_refused_with_one_sentence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(BuildError, match="not a Kubernetes version"):
        build("latest", tmp_path / "x.tar.gz")
    assert main(["--version", "v1.9.0", "--out", str(tmp_path / "x.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert "outside what the stand-ins support" in err and "Traceback" not in err
    assert not (tmp_path / "x.tar.gz").exists()


def test_scripts_are_single_self_contained_files() -> None:
    script = standin_script("kubeadm", "v1.20.15")
    assert script.startswith("#!/usr/bin/env python3\n")
    assert "from ." not in script and "sealos_lab" not in script.split("# containers. Built by")[0]
    assert "import sealos_lab" not in script and "from sealos_lab" not in script


def test_a_module_left_out_of_the_bundle_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from sealos_lab.package import builder

    without_join = [m for m in builder.STANDIN_MODULES if m != "kubeadm/join"]
    monkeypatch.setattr(builder, "STANDIN_MODULES", without_join)
    with pytest.raises(BuildError, match=r"not listed \['kubeadm/join'\]"):
        standin_script("kubeadm", "v1.20.15")


def test_version_outputs_name_the_stand_in(packages: dict[str, Path]) -> None:
    for version, kube in packages.items():
        full = run(kube, "kubeadm", "version")
        assert full.returncode == 0
        assert f'GitVersion:"{version}"' in full.stdout and "(sealos-lab stand-in)" in full.stdout
        assert "sealos-lab stand-in kubeadm" in full.stderr.splitlines()[0]
        short = run(kube, "kubeadm", "version", "-o", "short")
        assert short.stdout == f"{version}\n"
        kubelet = run(kube, "kubelet", "--version")
        assert kubelet.stdout == f"Kubernetes {version} (sealos-lab stand-in)\n"


def test_kubectl_version_format_changes_in_1_28(packages: dict[str, Path]) -> None:
    old = run(packages["v1.24.17"], "kubectl", "version", "--client")
    assert old.stdout.startswith('Client Version: version.Info{Major:"1", Minor:"24"')
    new = run(packages["v1.28.15"], "kubectl", "version", "--client")
    assert new.stdout.startswith("Client Version: v1.28.15\n")


def test_upload_certs_flag_spelling_per_release(packages: dict[str, Path]) -> None:
    result = run(packages["v1.14.1"], "kubeadm", "init", "--upload-certs")
    assert result.returncode == 1
    assert "unknown flag: --upload-certs" in result.stderr
    result = run(packages["v1.20.15"], "kubeadm", "init", "--experimental-upload-certs")
    assert "unknown flag: --experimental-upload-certs" in result.stderr
    result = run(packages["v1.20.15"], "kubeadm", "join", "x:6443", "--experimental-control-plane")
    assert "unknown flag: --experimental-control-plane" in result.stderr
    result = run(packages["v1.14.1"], "kubeadm", "join", "x:6443", "--control-plane")
    assert "unknown flag: --control-plane" in result.stderr
    result = run(packages["v1.14.1"], "kubeadm", "init", "--control-plane-endpoint", "x")
    assert "unknown flag: --control-plane-endpoint" in result.stderr


def test_mixing_config_with_flags(packages: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n")
    result = run(
        packages["v1.20.15"],
        "kubeadm",
        "init",
        "--config",
        str(config),
        "--token",
        "abcdef.0123456789abcdef",
        "--pod-network-cidr",
        "10.0.0.0/8",
    )
    assert result.returncode == 1
    assert "can not mix '--config' with arguments [pod-network-cidr token]" in result.stderr
    result = run(
        packages["v1.20.15"],
        "kubeadm",
        "init",
        "--config",
        str(config),
        "--certificate-key",
        "ab" * 32,
    )
    assert "can not mix '--config' with arguments [certificate-key]" in result.stderr
    config.write_text("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n")
    result = run(
        packages["v1.24.17"],
        "kubeadm",
        "init",
        "--config",
        str(config),
        "--cri-socket",
        "unix:///x.sock",
    )
    assert "can not mix '--config' with arguments [cri-socket]" in result.stderr


def test_config_errors_from_the_built_binary(packages: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  bogus: 1\n"
    )
    result = run(packages["v1.28.15"], "kubeadm", "init", "--config", str(config))
    assert result.returncode == 1
    assert 'unknown field "networking.bogus"' in result.stderr
    assert "Traceback" not in result.stderr
    config.write_text("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n")
    result = run(packages["v1.20.15"], "kubeadm", "init", "--config", str(config))
    assert (
        'no kind "ClusterConfiguration" is registered for version "kubeadm.k8s.io/v1beta3"'
        in result.stderr
    )


def test_kubectl_without_kubeconfig_is_refused_like_the_real_one(packages: dict[str, Path]) -> None:
    result = run(packages["v1.20.15"], "kubectl", "get", "nodes")
    assert result.returncode == 1
    assert (
        "The connection to the server localhost:8080 was refused - did you specify the right "
        "host or port?" in result.stderr
    )


def test_kubectl_apply_validates_manifests(packages: dict[str, Path], tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("metadata:\n  name: x\n")
    result = run(packages["v1.20.15"], "kubectl", "apply", "-f", str(manifest))
    assert result.returncode == 1
    assert "error validating data: [apiVersion not set, kind not set]" in result.stderr
    result = run(packages["v1.20.15"], "kubectl", "apply", "-f", str(tmp_path / "missing.yaml"))
    assert 'the path "' in result.stderr and "does not exist" in result.stderr


def test_join_refuses_bad_discovery_settings_before_touching_anything(
    packages: dict[str, Path],
) -> None:
    kube = packages["v1.20.15"]
    result = run(kube, "kubeadm", "join", "10.0.0.1:6443", "--token", "abcdef.0123456789abcdef")
    assert result.returncode == 1
    assert "using token-based discovery without caCertHashes can be unsafe" in result.stderr
    result = run(
        kube,
        "kubeadm",
        "join",
        "10.0.0.1:6443",
        "--token",
        "nope",
        "--discovery-token-unsafe-skip-ca-verification",
    )
    assert "the bootstrap token is invalid" in result.stderr
    result = run(
        kube,
        "kubeadm",
        "join",
        "10.0.0.1:6443",
        "--token",
        "abcdef.0123456789abcdef",
        "--discovery-token-ca-cert-hash",
        "md5:00",
    )
    assert 'invalid hash, expected "format:hex-value"' in result.stderr


def test_init_sh_in_test_mode_is_idempotent(packages: dict[str, Path], tmp_path: Path) -> None:
    kube = packages["v1.20.15"]
    env = {
        "SEALOS_STANDIN_ROOT": str(tmp_path / "root"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    for _ in range(2):
        result = subprocess.run(
            ["sh", "init.sh"],
            cwd=kube / "shell",
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    root = tmp_path / "root"
    assert (root / "usr/bin/kubeadm").read_bytes() == (kube / "bin/kubeadm").read_bytes()
    assert os.access(root / "usr/bin/kubelet", os.X_OK)
    assert "ExecStart=/usr/bin/kubelet" in (root / "etc/systemd/system/kubelet.service").read_text()
    assert (
        "KUBELET_KUBEADM_ARGS"
        in (root / "etc/systemd/system/kubelet.service.d/10-kubeadm.conf").read_text()
    )
    assert "net.ipv4.ip_forward = 1" in (root / "etc/sysctl.d/k8s.conf").read_text()
    assert "copied kubeadm kubelet kubectl to /usr/bin" in result.stdout
    assert "no container runtime" in result.stdout
    other_cwd = subprocess.run(
        ["sh", str(kube / "shell" / "init.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert other_cwd.returncode == 0, other_cwd.stderr
