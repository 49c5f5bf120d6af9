"""images.py: names, mirrors and skopeo's command line; and real skopeo pulls for a chosen
architecture from a local OCI layout (fake_upstream.oci_layout: no registry here), through
`sealos package build` too: images cached, archived, listed, named by their RepoTag."""

from __future__ import annotations

import io
import json
import shutil
import socket
import tarfile
import time
from pathlib import Path

import pytest
from fake_upstream import Upstream, oci_layout, write_tree

from sealos import package
from sealos.errors import SpecError
from sealos.kubeversion import KubeVersion
from sealos.package_versions import kubeadm_images
from sealos.packaging import build, images, manifest

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
PAUSE = "registry.k8s.io/pause:3.9"
LVSCARE = "docker.io/library/python:3.11-slim"
CALICO = [
    "docker.io/calico/cni:v3.26.4",
    "docker.io/calico/node:v3.26.4",
    "docker.io/calico/kube-controllers:v3.26.4",
]


def test_names_as_containerd_gives_them():
    assert images.normalize("calico/node:v3.8.2") == "docker.io/calico/node:v3.8.2"
    assert images.normalize("busybox") == "docker.io/library/busybox:latest"
    assert images.normalize("quay.io/calico/cni:v3.27.3") == "quay.io/calico/cni:v3.27.3"
    assert images.normalize("localhost:5000/pause:3.9") == "localhost:5000/pause:3.9"
    text = (
        'containers:\n  - image: "calico/cni:v1"\n    name: x\n'
        "  - name: y\n    image: q.io/a:b # c\n"
    )
    assert images.manifest_images(text + "image: calico/cni:v1\n") == [
        "docker.io/calico/cni:v1",
        "q.io/a:b",
    ]


def test_registry_mirrors_keep_the_path_and_tag():
    mirrors = images.parse_registry_mirrors(
        ["registry.k8s.io=10.250.3.1:5000", "docker.io=10.250.3.1:5001"]
    )
    assert (
        images.source("registry.k8s.io/pause:3.9", mirrors) == "docker://10.250.3.1:5000/pause:3.9"
    )
    assert (
        images.source("docker.io/calico/node:v3.26.4", mirrors)
        == "docker://10.250.3.1:5001/calico/node:v3.26.4"
    )
    assert images.source("quay.io/x/y:1", mirrors) == "docker://quay.io/x/y:1"
    for bad in ("registry.k8s.io", "=h:1", "registry.k8s.io=http://h:5000"):
        with pytest.raises(SpecError, match="REGISTRY=HOST"):
            images.parse_registry_mirrors([bad])


def test_the_skopeo_command_picks_the_arch_and_names_the_archive(tmp_path):
    command = images.copy_command(
        "docker://h:5000/pause:3.9", tmp_path / "p.tar", "registry.k8s.io/pause:3.9", "arm64", True
    )
    assert command[:6] == ["skopeo", "--override-os", "linux", "--override-arch", "arm64", "copy"]
    assert "--src-tls-verify=false" in command
    assert command[-1] == f"docker-archive:{tmp_path}/p.tar:registry.k8s.io/pause:3.9"
    plain = images.copy_command("docker://x/y:1", tmp_path / "p.tar", "x/y:1", "amd64")
    assert "--src-tls-verify=false" not in plain
    assert images.archive_name("registry.k8s.io/coredns/coredns:v1.10.1") == (
        "registry.k8s.io_coredns_coredns_v1.10.1.tar"
    )


def archive_facts(path: Path) -> tuple[list[str], str, str]:
    """(RepoTags, config architecture, the layer's marker) of a single-image docker-archive."""
    with tarfile.open(path) as tar:

        def read(name: str) -> bytes:
            f = tar.extractfile(name)
            assert f is not None
            return f.read()

        (entry,) = json.loads(read("manifest.json"))
        config = json.loads(read(entry["Config"]))
        with tarfile.open(fileobj=io.BytesIO(read(entry["Layers"][0]))) as layer:
            f = layer.extractfile("marker")
            assert f is not None
            marker = f.read().decode().strip()
    return entry["RepoTags"], config["architecture"], marker


@needs_skopeo
@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_skopeo_pulls_the_chosen_arch_into_a_named_docker_archive(tmp_path, arch):
    ref = "registry.k8s.io/pause:3.9"
    oci_layout(tmp_path / "oci", [ref])
    dest = tmp_path / "pause.tar"
    images.pull(f"oci:{tmp_path / 'oci'}:{ref}", dest, ref, arch)
    assert archive_facts(dest) == ([ref], arch, arch)


@needs_skopeo
def test_a_failed_pull_says_which_image_and_from_where(tmp_path):
    with pytest.raises(images.ImageError, match=r"cannot pull registry\.k8s\.io/pause:3\.9 for "):
        images.pull(
            f"oci:{tmp_path}/none:x", tmp_path / "p.tar", "registry.k8s.io/pause:3.9", "amd64"
        )
    assert not (tmp_path / "p.tar").exists()


@needs_skopeo
def test_an_unreachable_registry_mirror_is_one_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = images.source(PAUSE, images.parse_registry_mirrors([f"registry.k8s.io=127.0.0.1:{port}"]))
    started = time.monotonic()
    with pytest.raises(images.ImageError) as e:
        images.pull(src, tmp_path / "p.tar", PAUSE, "amd64", insecure=True, timeout=20)
    assert time.monotonic() - started < 20
    message = str(e.value)
    assert message.startswith(
        f"cannot pull {PAUSE} for linux/amd64 from docker://127.0.0.1:{port}/"
    )
    assert "connection refused" in message and "level=" not in message


@needs_skopeo
def test_a_build_with_images_archives_lists_and_caches_them(tmp_path, monkeypatch):
    # --lvscare-image: the static-pod lvscare's image rides along, listed after the others
    wanted = kubeadm_images(KubeVersion.parse("v1.28.15")) + CALICO + [LVSCARE]
    oci_layout(tmp_path / "oci", wanted)
    # every image comes from the local layout instead of its registry
    monkeypatch.setattr(images, "source", lambda ref, mirrors: f"oci:{tmp_path / 'oci'}:{ref}")
    write_tree(tmp_path / "upstream", arch="arm64")
    up = Upstream(tmp_path / "upstream")
    try:

        def opts(out: str, cache: str = "cache") -> build.BuildOptions:
            return build.BuildOptions(
                version="v1.28.15",
                arch="arm64",
                out=tmp_path / out,
                mirrors=up.mirrors(),
                cache=tmp_path / cache,
                extra_images=[LVSCARE],
            )

        first = build.build(opts("a.tar.gz"), io.StringIO())
        assert first.images == 11 and first.downloaded == 18 + 11

        found = manifest.inspect(first.path)
        assert found.problems == []
        assert found.manifest["images"] == wanted
        assert package.inspect(first.path).images == wanted  # what init's check reads
        with tarfile.open(first.path) as tar:
            archives = sorted(n for n in tar.getnames() if n.startswith("kube/images/"))
            assert len(archives) == 11
            f = tar.extractfile("kube/images/registry.k8s.io_pause_3.9.tar")
            assert f is not None
            (tmp_path / "pause.tar").write_bytes(f.read())
        assert archive_facts(tmp_path / "pause.tar") == (
            ["registry.k8s.io/pause:3.9"],
            "arm64",
            "arm64",
        )

        # skopeo writes docker-archives deterministically: a fresh cache gives the same bytes
        build.build(opts("c.tar.gz", cache="fresh"), io.StringIO())
        assert (tmp_path / "c.tar.gz").read_bytes() == (tmp_path / "a.tar.gz").read_bytes()

        def no_pull(*args: object, **kw: object) -> None:
            raise AssertionError("the second build pulled an image")

        monkeypatch.setattr(images, "pull", no_pull)
        second = build.build(opts("b.tar.gz"), io.StringIO())
        assert second.downloaded == 0
        assert (tmp_path / "b.tar.gz").read_bytes() == (tmp_path / "a.tar.gz").read_bytes()
    finally:
        up.close()


@needs_skopeo
def test_a_registry_that_never_answers_fails_within_the_timeout(tmp_path):
    """skopeo limits no server's silence: without the probe this build waited 600 s per image."""
    write_tree(tmp_path / "upstream")
    up = Upstream(tmp_path / "upstream")
    try:
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(64)  # connections complete in the backlog; nobody answers
            host = f"127.0.0.1:{silent.getsockname()[1]}"
            opts = build.BuildOptions(
                version="v1.28.15",
                out=tmp_path / "k.tar.gz",
                mirrors=up.mirrors(),
                registry_mirrors={"registry.k8s.io": host, "docker.io": host},
                insecure_registry=True,
                cache=tmp_path / "cache",
                timeout=2,
            )
            started = time.monotonic()
            with pytest.raises(images.ImageError) as e:
                build.build(opts, io.StringIO())
            took = time.monotonic() - started
    finally:
        up.close()
    assert took < 15, took
    assert str(e.value).startswith(f"the registry at {host} did not answer within 2 s (asked for ")
    assert not (tmp_path / "k.tar.gz").exists()


@needs_skopeo
def test_the_probe_leaves_any_answer_but_silence_to_the_pull(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    images.probe(f"docker://127.0.0.1:{port}/pause:3.9", PAUSE, insecure=True, timeout=5)
    assert time.monotonic() - started < 5
    images.probe(f"oci:{tmp_path}:x", PAUSE, insecure=False, timeout=5)  # not a registry
