"""The release mirror's pure parts: upstream paths per version, checksum file formats, the
calico manifest's images, reproducible archives, and the crictl stand-in against a fake ctr."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sealos_lab import release_mirror as rm


def test_paths_follow_the_version_table() -> None:
    paths = {a.name: a.path for a in rm.artifacts("v1.24.17", "arm64")}
    assert paths["kubelet"] == "dl.k8s.io/release/v1.24.17/bin/linux/arm64/kubelet"
    assert paths["containerd"].endswith("/download/v1.6.8/containerd-1.6.8-linux-arm64.tar.gz")
    assert paths["containerd.service"] == (
        "raw.githubusercontent.com/containerd/containerd/v1.6.8/containerd.service"
    )
    assert paths["calico.yaml"] == (
        "raw.githubusercontent.com/projectcalico/calico/v3.23.3/manifests/calico.yaml"
    )
    with pytest.raises(ValueError, match="arch"):
        rm.artifacts("v1.28.15", "s390x")
    with pytest.raises(Exception, match=r"v1\.24\.0 to v1\.31\.x"):
        rm.artifacts("v1.20.15", "amd64")


def test_runc_checksum_file_keeps_every_arch_in_upstream_order() -> None:
    first = rm.signed_sha256sum({"runc.arm64": "b" * 64})
    merged = rm.signed_sha256sum({**rm.read_sha256sum(first), "runc.amd64": "a" * 64})
    lines = merged.splitlines()
    assert lines[:3] == ["-----BEGIN PGP SIGNED MESSAGE-----", "Hash: SHA256", ""]
    assert lines[3:5] == ["a" * 64 + "  runc.amd64", "b" * 64 + "  runc.arm64"]
    assert rm.read_sha256sum(merged) == {"runc.amd64": "a" * 64, "runc.arm64": "b" * 64}


def test_calico_images_come_from_the_manifest() -> None:
    assert rm.calico_images("v1.31.4") == [
        "docker.io/calico/cni:v3.29.1",
        "docker.io/calico/node:v3.29.1",
        "docker.io/calico/kube-controllers:v3.29.1",
    ]
    assert rm.manifest_images("  - image: 'a/b:1'\n    image: \"a/b:1\"\nimage: c\n") == [
        "a/b:1",
        "c",
    ]


def test_archives_are_reproducible() -> None:
    entries = [("bin", None, 0o755), ("bin/x", b"data", 0o755)]
    one, two = rm.tar_gz(entries), rm.tar_gz(entries)
    assert one == two
    assert gzip.decompress(one)[:4] == b"bin/"
    assert one[4:8] == b"\x00\x00\x00\x00"  # no gzip timestamp


@pytest.fixture()
def fake_ctr(tmp_path: Path) -> dict[str, str]:
    ctr = tmp_path / "ctr"
    ctr.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "-n k8s.io images ls" ] || { echo "unexpected: $*" >&2; exit 9; }\n'
        "echo 'REF TYPE DIGEST SIZE PLATFORMS LABELS'\n"
        "echo 'registry.k8s.io/pause:3.9 application/vnd.oci.image.index.v1+json "
        "sha256:0123456789abcdef0123 1.2 MiB linux/amd64,linux/arm64 -'\n"
        "echo 'sha256:0123456789abcdef0123 application/vnd.oci.image.index.v1+json "
        "sha256:0123456789abcdef0123 1.2 MiB linux/amd64 -'\n"
    )
    ctr.chmod(0o755)
    return {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}


def _crictl(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "crictl"
    script.write_text(rm.crictl_standin("1.28.0"))
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env
    )


def test_crictl_standin_lists_containerds_images(tmp_path: Path, fake_ctr: dict) -> None:
    assert _crictl(tmp_path, fake_ctr, "--version").stdout == "crictl version v1.28.0\n"
    out = _crictl(
        tmp_path, fake_ctr, "--runtime-endpoint", "unix:///run/containerd/containerd.sock", "images"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert lines[1].split() == ["registry.k8s.io/pause", "3.9", "0123456789abc", "1.2MiB"]
    assert len(lines) == 2
    other = _crictl(tmp_path, fake_ctr, "ps")
    assert other.returncode == 1 and "stand-in" in other.stderr


def test_registry_mirror_paths_drop_the_registry_only() -> None:
    from sealos_lab.images import mirror_path

    assert mirror_path("registry.k8s.io/pause:3.9") == "pause:3.9"
    assert mirror_path("registry.k8s.io/coredns/coredns:v1.10.1") == "coredns/coredns:v1.10.1"
    assert mirror_path("docker.io/calico/node:v3.26.4") == "calico/node:v3.26.4"
    assert mirror_path("k8s.gcr.io/pause:3.7") == "pause:3.7"
    assert mirror_path("calico/node:v3.26.4") == "calico/node:v3.26.4"


def test_mirror_args_name_every_host_and_the_registries_images_come_from(tmp_path: Path) -> None:
    from sealos_lab.releases import LabReleases
    from sealos_lab.servers import Server

    http = Server("http", "10.250.3.1", 8080, 1, None, "/dev/null")
    reg = Server("registry", "10.250.3.1", 5000, 2, None, "/dev/null")
    served = LabReleases(tmp_path, "10.250.3.1", ["v1.24.4", "v1.28.15"], ["amd64"], http, reg)
    assert served.mirror_args() == [
        "--mirror",
        "dl.k8s.io=http://10.250.3.1:8080/dl.k8s.io",
        "--mirror",
        "github.com=http://10.250.3.1:8080/github.com",
        "--mirror",
        "raw.githubusercontent.com=http://10.250.3.1:8080/raw.githubusercontent.com",
        "--registry-mirror",
        "docker.io=10.250.3.1:5000",
        "--registry-mirror",
        "k8s.gcr.io=10.250.3.1:5000",  # kubeadm 1.24.0-1.24.8 still names k8s.gcr.io
        "--registry-mirror",
        "registry.k8s.io=10.250.3.1:5000",
        "--insecure-registry",
    ]
    assert served.url("https://github.com/a/b") == "http://10.250.3.1:8080/github.com/a/b"
    assert "registry.k8s.io/pause:3.9" in served.images()
    assert "k8s.gcr.io/pause:3.7" in served.images()
