"""Debian's registry run by the lab, holding the lab's small busybox images under the names
kubeadm and calico ask for: skopeo sees them per platform, copies them into a docker-archive
that ctr can import, and nothing is left running afterwards."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealos import package_versions
from sealos.kubeversion import KubeVersion
from sealos_lab import images, netns, registry, release_mirror, servers
from sealos_lab.debs import ELF_MACHINE, elf_machine

pytestmark = pytest.mark.root
VERSION = "v1.28.15"


def _names() -> list[str]:
    return package_versions.kubeadm_images(KubeVersion.parse(VERSION)) + (
        release_mirror.calico_images(VERSION)
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    if os.geteuid() != 0:
        pytest.skip("downloads Debian packages into the lab cache (root)")
    work = tmp_path_factory.mktemp("registry")
    with registry.running(work / "registry") as server:
        images.publish(work / "images", _names(), server.endpoint)
        yield server
    assert not server.alive()
    assert not servers.listening(os.getpid(), server.port)


def skopeo(*args: str, in_netns: str = "") -> subprocess.CompletedProcess:
    prefix = ["ip", "netns", "exec", in_netns] if in_netns else []
    return subprocess.run([*prefix, "skopeo", *args], capture_output=True, text=True, timeout=60)


def test_every_image_is_there_for_both_platforms(loaded: servers.Server) -> None:
    for name in _names():
        ref = f"docker://{loaded.endpoint}/{images.mirror_path(name)}"
        amd = skopeo("inspect", "--tls-verify=false", "--config", ref)
        assert amd.returncode == 0, amd.stderr
        arm = skopeo("--override-arch", "arm64", "inspect", "--tls-verify=false", "--config", ref)
        assert arm.returncode == 0, arm.stderr
        for out, arch in ((amd.stdout, "amd64"), (arm.stdout, "arm64")):
            config = json.loads(out)
            assert config["architecture"] == arch
            assert config["config"]["Entrypoint"] == ["/bin/busybox", "echo", name]
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{loaded.endpoint}/pause:3.9")
    platforms = [m["platform"]["architecture"] for m in json.loads(raw.stdout)["manifests"]]
    assert platforms == ["amd64", "arm64"]


def test_a_name_kubeadm_does_not_ask_for_is_not_there(loaded: servers.Server) -> None:
    proc = skopeo("inspect", "--tls-verify=false", f"docker://{loaded.endpoint}/pause:3.10")
    assert proc.returncode != 0
    assert "manifest unknown" in proc.stderr or "not found" in proc.stderr


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_copy_into_a_docker_archive_named_as_upstream(
    loaded: servers.Server, tmp_path: Path, arch: str
) -> None:
    archive = tmp_path / "pause.tar"
    proc = skopeo(
        "--override-arch",
        arch,
        "copy",
        "--src-tls-verify=false",
        f"docker://{loaded.endpoint}/pause:3.9",
        f"docker-archive:{archive}:registry.k8s.io/pause:3.9",
    )
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["registry.k8s.io/pause:3.9"]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        assert config["architecture"] == arch
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        busybox = inner.extractfile("bin/busybox").read()  # type: ignore[union-attr]
    assert elf_machine(busybox) == ELF_MACHINE[arch]
    if arch == "amd64":
        # The entrypoint, run from the layer (busybox is static): prints the image's name.
        binary = tmp_path / "busybox"
        binary.write_bytes(busybox)
        binary.chmod(0o755)
        out = subprocess.run(
            [str(binary), *config["config"]["Entrypoint"][1:]], capture_output=True
        )
        assert out.stdout == b"registry.k8s.io/pause:3.9\n"


@contextlib.contextmanager
def _namespace(name: str) -> Iterator[str]:
    netns.delete(name)
    netns.add(name)
    try:
        yield name
    finally:
        netns.delete(name)


def test_registry_inside_a_namespace_is_stopped_by_pid(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    ns = f"slreg{os.getpid() % 100000}"
    with _namespace(ns):
        with registry.running(tmp_path / "reg", "127.0.0.1", 5000, in_netns=ns) as server:
            assert servers.listening(server.pid, 5000)
            images.publish(
                tmp_path / "img", ["registry.k8s.io/pause:3.9"], "127.0.0.1:5000", in_netns=ns
            )
            seen = skopeo(
                "inspect", "--tls-verify=false", "docker://127.0.0.1:5000/pause:3.9", in_netns=ns
            )
            assert seen.returncode == 0, seen.stderr
        assert not server.alive()
    assert ns not in netns.list_netns()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path) not in mounts
