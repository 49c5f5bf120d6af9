"""The lab's release mirror tree: every download at its upstream path, verified by its checksum
file the way upstream's own instructions do (`sha256sum --check`), and Debian's real binaries of
the requested architecture inside the containerd, runc and CNI downloads."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from sealos_lab import release_mirror
from sealos_lab.debs import ELF_MACHINE, elf_machine

pytestmark = pytest.mark.root
VERSION = "v1.28.15"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("downloads Debian packages into the lab cache (root)")
    root = tmp_path_factory.mktemp("mirror")
    for arch in ("amd64", "arm64"):
        release_mirror.build_tree(root, VERSION, arch)
    return root


def _check(cmd: str, cwd: Path) -> None:
    proc = subprocess.run(["sh", "-c", cmd], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd} in {cwd}: {proc.stdout}{proc.stderr}"
    assert ": OK" in proc.stdout, proc.stdout


def verify_upstream_style(root: Path, a: release_mirror.Artifact, arch: str) -> None:
    """Check one download against its checksum file as upstream's docs say to."""
    where = (root / a.path).parent
    checksum = root / a.checksum_path
    name = a.url_name
    if a.checksum_format == "hash":
        # dl.k8s.io / cri-tools: the bare digest; install-kubectl: echo "$(cat F.sha256)  F" | ...
        text = checksum.read_text()
        assert len(text.strip()) == 64 and " " not in text.strip(), text
        _check(f'echo "$(cat {checksum.name})  {name}" | sha256sum --check', where)
    elif a.checksum_format == "sha256sum":
        assert (
            checksum.read_text()
            == f"{release_mirror.sha256((root / a.path).read_bytes())}  {name}\n"
        )
        _check(f"sha256sum --check {checksum.name}", where)
    else:
        text = checksum.read_text()
        assert text.startswith("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"), text
        assert "-----BEGIN PGP SIGNATURE-----" in text and text.endswith(
            "-----END PGP SIGNATURE-----\n"
        )
        _check(f"grep ' runc.{arch}$' {checksum.name} | sha256sum -c", where)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_every_download_is_at_its_upstream_path_and_verifies(tree: Path, arch: str) -> None:
    items = release_mirror.artifacts(VERSION, arch)
    paths = {a.name: a.path for a in items}
    assert paths["kubeadm"] == f"dl.k8s.io/release/{VERSION}/bin/linux/{arch}/kubeadm"
    assert paths["containerd"] == (
        "github.com/containerd/containerd/releases/download/v1.7.11/"
        f"containerd-1.7.11-linux-{arch}.tar.gz"
    )
    assert paths["runc"] == f"github.com/opencontainers/runc/releases/download/v1.1.10/runc.{arch}"
    assert paths["cni-plugins"] == (
        "github.com/containernetworking/plugins/releases/download/v1.3.0/"
        f"cni-plugins-linux-{arch}-v1.3.0.tgz"
    )
    assert paths["crictl"] == (
        "github.com/kubernetes-sigs/cri-tools/releases/download/v1.28.0/"
        f"crictl-v1.28.0-linux-{arch}.tar.gz"
    )
    for a in items:
        assert (tree / a.path).is_file(), a.path
        if a.checksum_format:
            verify_upstream_style(tree, a, arch)


def test_a_changed_file_fails_its_check(tree: Path, tmp_path: Path) -> None:
    """The checks above can fail: one byte changed in a copy of the tree is caught."""
    subprocess.run(["cp", "-a", f"{tree}/.", str(tmp_path)], check=True)
    a = next(a for a in release_mirror.artifacts(VERSION, "amd64") if a.name == "kubelet")
    (tmp_path / a.path).write_bytes((tmp_path / a.path).read_bytes() + b"#")
    with pytest.raises(AssertionError):
        verify_upstream_style(tmp_path, a, "amd64")


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_runtime_downloads_hold_real_binaries_of_the_arch(tree: Path, arch: str) -> None:
    items = {a.name: tree / a.path for a in release_mirror.artifacts(VERSION, arch)}
    ctd = _members(items["containerd"])
    for name in ("bin/containerd", "bin/ctr", "bin/containerd-shim-runc-v2"):
        assert elf_machine(ctd[name]) == ELF_MACHINE[arch], name
    cni = _members(items["cni-plugins"])
    for name in ("./bridge", "./host-local", "./loopback", "./portmap"):
        assert elf_machine(cni[name]) == ELF_MACHINE[arch], name
    assert elf_machine(items["runc"].read_bytes()) == ELF_MACHINE[arch]
    crictl = _members(items["crictl"])
    assert list(crictl) == ["crictl"]
    assert b"STAND-IN" in crictl["crictl"]


def test_units_manifest_and_standins(tree: Path) -> None:
    items = {a.name: tree / a.path for a in release_mirror.artifacts(VERSION, "amd64")}
    unit = items["containerd.service"].read_text()
    assert "ExecStart=/usr/local/bin/containerd\n" in unit and "Type=notify" in unit
    assert "ExecStart=/usr/bin/kubelet\n" in items["kubelet.service"].read_text()
    assert "$KUBELET_KUBEADM_ARGS" in items["10-kubeadm.conf"].read_text()
    images = [
        line.split("image:")[1].strip()
        for line in items["calico.yaml"].read_text().splitlines()
        if "image:" in line
    ]
    assert sorted(set(images)) == [
        "docker.io/calico/cni:v3.26.4",
        "docker.io/calico/kube-controllers:v3.26.4",
        "docker.io/calico/node:v3.26.4",
    ]
    out = subprocess.run(
        ["python3", str(items["kubeadm"]), "version", "-o", "short"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == VERSION


def test_the_same_inputs_give_the_same_bytes(tree: Path, tmp_path: Path) -> None:
    release_mirror.build_tree(tmp_path, VERSION, "amd64")
    for a in release_mirror.artifacts(VERSION, "amd64"):
        assert (tmp_path / a.path).read_bytes() == (tree / a.path).read_bytes(), a.path
