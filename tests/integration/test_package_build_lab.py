"""`sealos package build` as a user runs it, against the lab's release mirror and real registry on
127.0.0.1 (issue 9, acceptance 1 and 2): three packages (v1.28.15 amd64, v1.31.4 amd64, v1.28.15
arm64) built by `python -m sealos package build ... <mirror flags>`, each verified by `sealos
package inspect`; their images are exactly kubeadm's list and calico's, as docker-archives named
by their upstream reference for the package's architecture; a second build gives the same bytes
without asking the mirror or the registry (the registry is stopped for it). Refusals: a tampered
file at the mirror, an unreachable or silent mirror, an unsupported version: one sentence, exit
!= 0, nothing left behind.

The expected kubeadm lists are written out here (upstream's `kubeadm config images list
--kubernetes-version ...`), not taken from the product's table, so the table is checked too.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealos.package import elf_arch
from sealos_lab import release_mirror, releases, servers

pytestmark = pytest.mark.root

OTHER = "v1.31.4"
# upstream `kubeadm config images list --kubernetes-version V`
KUBEADM_IMAGES = {
    "v1.28.15": [
        "registry.k8s.io/kube-apiserver:v1.28.15",
        "registry.k8s.io/kube-controller-manager:v1.28.15",
        "registry.k8s.io/kube-scheduler:v1.28.15",
        "registry.k8s.io/kube-proxy:v1.28.15",
        "registry.k8s.io/coredns/coredns:v1.10.1",
        "registry.k8s.io/pause:3.9",
        "registry.k8s.io/etcd:3.5.15-0",
    ],
    OTHER: [
        "registry.k8s.io/kube-apiserver:v1.31.4",
        "registry.k8s.io/kube-controller-manager:v1.31.4",
        "registry.k8s.io/kube-scheduler:v1.31.4",
        "registry.k8s.io/kube-proxy:v1.31.4",
        "registry.k8s.io/coredns/coredns:v1.11.3",
        "registry.k8s.io/pause:3.10",
        "registry.k8s.io/etcd:3.5.15-0",
    ],
}
# (file name, version, arch, extra flags)
PACKAGES = [
    ("kube1.28.15.tar.gz", "v1.28.15", "amd64", []),
    ("kube1.31.4.tar.gz", OTHER, "amd64", []),
    ("kube1.28.15-arm64.tar.gz", "v1.28.15", "arm64", ["--arch", "arm64"]),
]


@dataclass
class Built:
    served: releases.LabReleases
    root: Path  # SEALOS_HOME and the packages live here
    home: Path
    out: Path  # where the first builds wrote (the default names, in the current folder)


def sealos(cwd: Path, home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m sealos ARGS` in `cwd`, SEALOS_HOME=home, as a user would run it."""
    env = {**os.environ, "SEALOS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "sealos", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def build_args(version: str, extra: list[str], served: releases.LabReleases) -> list[str]:
    return ["package", "build", "--version", version, *extra, *served.mirror_args()]


def one_sentence_error(proc: subprocess.CompletedProcess) -> str:
    """The refusal's message: exit != 0, no traceback, one `error:` line; returns it."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    if os.geteuid() != 0:
        pytest.skip("needs root (the lab cache: Debian's containerd, runc, registry)")
    root = tmp_path_factory.mktemp("pkg")
    served = releases.start(root / "releases", ["v1.28.15", OTHER], ("amd64", "arm64"))
    try:
        out = root / "first"
        out.mkdir()
        home = root / "home"
        # v1.28.15 for amd64 and arm64 at the same time, sharing the cache (as a user may run
        # them); the second builds below show neither lost what the other cached.
        env = {**os.environ, "SEALOS_HOME": str(home)}
        running = [
            subprocess.Popen(
                [sys.executable, "-m", "sealos", *build_args(version, extra, served)],
                cwd=out,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _, version, _, extra in PACKAGES
            if version == "v1.28.15"
        ]
        for proc in running:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stdout + stderr
        done = sealos(out, home, *build_args(OTHER, [], served))
        assert done.returncode == 0, done.stdout + done.stderr
        for name, *_ in PACKAGES:
            assert (out / name).is_file(), name
        yield Built(served, root, home, out)
    finally:
        served.stop()


def members(package: Path) -> dict[str, bytes]:
    with tarfile.open(package) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_each_package_is_built_and_inspect_verifies_it(built: Built) -> None:
    for name, version, arch, _ in PACKAGES:
        package = built.out / name
        assert package.is_file()
        shown = sealos(built.out, built.home, "package", "inspect", name)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert f"Kubernetes {version} linux/{arch}, CNI calico" in shown.stdout
        files = members(package)
        for path in (
            "kube/bin/kubeadm",
            "kube/bin/containerd",
            "kube/bin/runc",
            "kube/cni/bin/bridge",
            "kube/conf/net/calico.yaml",
            "kube/shell/init.sh",
            f"kube/images/registry.k8s.io_kube-apiserver_{version}.tar",
        ):
            assert path in files and f"  {path} " in shown.stdout, (name, path)
        listed = json.loads(files["kube/manifest.json"])
        recorded = {f["path"] for f in listed["files"]}
        assert recorded == set(files) - {"kube/manifest.json"}
        assert f"all {len(recorded)} files match" in shown.stdout
        assert files["kube/version"].decode().strip() == version
        # Debian's real binaries, repackaged by the mirror: ELF for the package's arch
        for path in ("kube/bin/containerd", "kube/bin/ctr", "kube/bin/runc", "kube/cni/bin/bridge"):
            assert elf_arch(files[path][:20]) == arch, (name, path)


def _config(archive: bytes) -> tuple[list[str], dict]:
    """(RepoTags, image config) of a one-image docker-archive."""
    import io

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        index = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert len(index) == 1, index
        config = json.load(tar.extractfile(index[0]["Config"]))  # type: ignore[arg-type]
    return index[0]["RepoTags"], config


def test_images_are_kubeadms_and_calicos_named_upstream_for_the_arch(built: Built) -> None:
    for name, version, arch, _ in PACKAGES:
        files = members(built.out / name)
        calico = re.findall(
            r"^\s*-?\s*image:\s*(\S+)", files["kube/conf/net/calico.yaml"].decode(), re.M
        )
        assert calico and all(i.startswith("docker.io/calico/") for i in calico), calico
        want = set(KUBEADM_IMAGES[version]) | set(calico)
        archives = {k: v for k, v in files.items() if k.startswith("kube/images/")}
        tags = {}
        for path, data in archives.items():
            repo_tags, config = _config(data)
            assert len(repo_tags) == 1, (path, repo_tags)
            tags[repo_tags[0]] = path
            assert (config["os"], config["architecture"]) == ("linux", arch), (name, path)
            # the lab's images print their own upstream name: this is that image
            assert config["config"]["Entrypoint"][-1] == repo_tags[0], (path, config)
        assert set(tags) == want, (name, sorted(tags))
        assert len(archives) == len(want)
        listed = json.loads(files["kube/manifest.json"])["images"]
        assert sorted(listed) == sorted(want)


def test_tampered_mirror_file_is_refused_naming_url_and_both_checksums(
    built: Built, tmp_path: Path
) -> None:
    kubelet = next(a for a in release_mirror.artifacts("v1.28.15", "amd64") if a.name == "kubelet")
    path = built.served.tree / kubelet.path
    original = path.read_bytes()
    published = (built.served.tree / kubelet.checksum_path).read_text().strip()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    cache = tmp_path / "cache"
    try:
        path.write_bytes(bytes(tampered))
        import hashlib

        actual = hashlib.sha256(tampered).hexdigest()
        proc = sealos(
            tmp_path, built.home, *build_args("v1.28.15", ["--cache", str(cache)], built.served)
        )
    finally:
        path.write_bytes(original)
    error = one_sentence_error(proc)
    url = built.served.url(f"https://{kubelet.path}")
    assert url in error and published in error and actual in error, error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no package, no .part
    assert list((cache / "tmp").iterdir()) == []
    assert actual not in {p.name for p in (cache / "sha256").iterdir()}


def test_unreachable_mirror_is_one_sentence(built: Built, tmp_path: Path) -> None:
    closed = f"127.0.0.1:{servers.free_port('127.0.0.1')}"
    args = [a.replace(built.served.http.endpoint, closed) for a in built.served.mirror_args()]
    started = time.monotonic()
    proc = sealos(
        tmp_path,
        built.home,
        "package",
        "build",
        "--version",
        "v1.28.15",
        "--cache",
        str(tmp_path / "c"),
        *args,
        "--timeout",
        "5",
    )
    assert time.monotonic() - started < 15
    error = one_sentence_error(proc)
    assert f"cannot reach http://{closed}/" in error and "connection refused" in error, error
    assert "check --mirror" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_silent_mirror_fails_within_the_timeout(built: Built, tmp_path: Path) -> None:
    """A server that accepts connections and never answers: the build gives up after --timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections complete in the kernel's backlog; nobody reads them
        endpoint = f"127.0.0.1:{silent.getsockname()[1]}"
        args = [a.replace(built.served.http.endpoint, endpoint) for a in built.served.mirror_args()]
        started = time.monotonic()
        proc = sealos(
            tmp_path,
            built.home,
            "package",
            "build",
            "--version",
            "v1.28.15",
            "--cache",
            str(tmp_path / "c"),
            *args,
            "--timeout",
            "2",
        )
        took = time.monotonic() - started
    error = one_sentence_error(proc)
    assert f"http://{endpoint}/" in error and "2 s" in error, error
    assert 2 <= took < 3.5, took  # one --timeout (plus start-up), not one per job
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_silent_registry_fails_within_the_timeout(built: Built, tmp_path: Path) -> None:
    """The files come from the cache; the images' registry accepts connections, never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        endpoint = f"127.0.0.1:{silent.getsockname()[1]}"
        args = [
            a.replace(built.served.registry.endpoint, endpoint) for a in built.served.mirror_args()
        ]
        started = time.monotonic()
        proc = sealos(
            tmp_path,
            built.home,
            "package",
            "build",
            "--version",
            "v1.28.15",
            *args,
            "--timeout",
            "2",
        )
        took = time.monotonic() - started
    error = one_sentence_error(proc)
    assert f"the registry at {endpoint} did not answer within 2 s" in error, error
    assert took < 15, took
    assert list(tmp_path.iterdir()) == []


def test_unsupported_version_is_refused_with_the_range(built: Built, tmp_path: Path) -> None:
    proc = sealos(tmp_path, built.home, *build_args("v1.20.15", [], built.served))
    error = one_sentence_error(proc)
    assert "v1.20.15" in error and "supported are v1.24.0 to v1.31.x" in error, error
    assert list(tmp_path.iterdir()) == []


def test_second_build_is_byte_identical_and_asks_no_server(built: Built) -> None:
    """Last in this module: it stops the registry, so an image pull would fail."""
    asked = list(built.served.requests())
    servers.stop(built.served.registry)
    assert not built.served.registry.alive()
    again = built.root / "second"
    again.mkdir()
    for name, version, _, extra in PACKAGES:
        proc = sealos(again, built.home, *build_args(version, extra, built.served))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "; 0 downloaded" in proc.stdout and "pulled" not in proc.stdout, proc.stdout
        assert (again / name).read_bytes() == (built.out / name).read_bytes(), name
    assert built.served.http.alive()
    assert built.served.requests() == asked
