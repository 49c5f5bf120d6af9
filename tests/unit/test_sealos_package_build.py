"""`sealos package build` and `inspect` against a throwaway upstream on 127.0.0.1 (fake_upstream):
tiny files, checksum files in each upstream's format. These builds pull no images
(`BuildOptions.images=False`, a hook the CLI does not offer): there is no registry here. images.py
is tested on its own (test_sealos_package_images.py); the lab's integration test pulls for real.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import tarfile
import time
from pathlib import Path

import pytest
import tomllib
from click.testing import CliRunner
from fake_upstream import Upstream, sha, write_tree

from sealos import cli as cli_mod
from sealos import package as package_mod
from sealos.errors import SealosError, SpecError
from sealos.kubeversion import KubeVersion
from sealos.packaging import build, containerd_config, images, manifest, sources
from sealos.packaging.fetch import Cache, ChecksumMismatch, FetchError

VERSION = "v1.28.15"


@pytest.fixture
def upstream(tmp_path):
    root = tmp_path / "upstream"
    files = write_tree(root)
    up = Upstream(root)
    up.files = files
    yield up
    up.close()


def options(upstream, tmp_path, out="kube.tar.gz", cache="cache", **kw):
    return build.BuildOptions(
        version=VERSION,
        out=tmp_path / out,
        mirrors=upstream.mirrors(),
        cache=tmp_path / cache,
        images=False,
        **kw,
    )


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def read(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def test_a_second_build_is_byte_identical_and_downloads_nothing(upstream, tmp_path):
    first = build.build(options(upstream, tmp_path, "a.tar.gz"), io.StringIO())
    assert first.downloaded == 18  # 11 files and 7 checksum files
    asked = len(upstream.requests)
    assert asked == 18

    started = time.monotonic()
    second = build.build(options(upstream, tmp_path, "b.tar.gz"), io.StringIO())
    assert time.monotonic() - started < 5
    assert len(upstream.requests) == asked  # not one request: checksum files come from the cache
    assert second.downloaded == 0
    a, b = (tmp_path / "a.tar.gz").read_bytes(), (tmp_path / "b.tar.gz").read_bytes()
    assert a == b

    # not a copy of a cached package: an empty cache gives the same bytes again
    build.build(options(upstream, tmp_path, "c.tar.gz", cache="other-cache"), io.StringIO())
    assert (tmp_path / "c.tar.gz").read_bytes() == a


def test_the_layout_owners_times_and_the_manifest_lists_every_file(upstream, tmp_path):
    out = io.StringIO()
    result = build.build(options(upstream, tmp_path), out)
    path = result.path
    found = members(path)
    files = {n for n, m in found.items() if m.isfile()}
    assert files == {
        "kube/bin/kubeadm",
        "kube/bin/kubelet",
        "kube/bin/kubectl",
        "kube/bin/containerd",
        "kube/bin/ctr",
        "kube/bin/containerd-shim-runc-v2",
        "kube/bin/containerd-stress",
        "kube/bin/runc",
        "kube/bin/crictl",
        "kube/cni/bin/bridge",
        "kube/cni/bin/host-local",
        "kube/cni/bin/loopback",
        "kube/conf/containerd.service",
        "kube/conf/config.toml",
        "kube/conf/kubelet.service",
        "kube/conf/10-kubeadm.conf",
        "kube/conf/net/calico.yaml",
        "kube/version",
        "kube/shell/init.sh",
        "kube/manifest.json",
    }
    names = list(found)
    assert names == sorted(names)
    for m in found.values():
        assert (m.uid, m.gid, m.mtime) == (0, 0, 0), m.name
        if m.name.startswith(("kube/bin/", "kube/cni/bin/")) or m.isdir():
            assert m.mode == 0o755, m.name
    assert found["kube/conf/config.toml"].mode == 0o644
    assert (path.read_bytes()[4:8]) == b"\0\0\0\0"  # gzip header mtime 0

    data = json.loads(read(path, "kube/manifest.json"))
    listed = {f["path"]: f for f in data["files"]}
    assert set(listed) == files - {"kube/manifest.json"}
    for name, record in listed.items():
        content = read(path, name)
        assert record["sha256"] == hashlib.sha256(content).hexdigest(), name
        assert record["size"] == len(content), name
        assert record["source"] and record["version"], name
    kubeadm = listed["kube/bin/kubeadm"]
    assert kubeadm["source"] == "https://dl.k8s.io/release/v1.28.15/bin/linux/amd64/kubeadm"
    assert kubeadm["via"] == f"{upstream.base}/dl.k8s.io/release/v1.28.15/bin/linux/amd64/kubeadm"
    assert kubeadm["version"] == VERSION
    assert kubeadm["sha256"] == sha(upstream.files["kubeadm"].read_bytes())
    ctr = listed["kube/bin/ctr"]
    assert ctr["member"] == "bin/ctr" and ctr["version"] == "1.7.11"
    assert ctr["source"].endswith("/v1.7.11/containerd-1.7.11-linux-amd64.tar.gz")
    assert listed["kube/conf/containerd.service"]["source"] == (
        "https://raw.githubusercontent.com/containerd/containerd/v1.7.11/containerd.service"
    )
    assert listed["kube/conf/net/calico.yaml"]["version"] == "3.26.4"
    assert listed["kube/shell/init.sh"]["source"] == "generated"
    assert data["components"]["runc"] == "1.1.10"

    config = tomllib.loads(read(path, "kube/conf/config.toml").decode())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.9"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert read(path, "kube/version") == b"v1.28.15\n"
    # init reads the package as before: kubeadm's architecture from its ELF header
    assert package_mod.inspect(path).arch == "amd64"
    assert re.search(r"wrote .*kube\.tar\.gz \(\d+ bytes, 19 files, 0 images\)", out.getvalue())


def test_cni_none_leaves_calico_out(upstream, tmp_path):
    result = build.build(options(upstream, tmp_path, cni="none"), io.StringIO())
    assert "kube/conf/net/calico.yaml" not in members(result.path)
    assert not any("calico" in p for p in upstream.requests)


def test_a_tampered_file_is_refused_naming_the_url_and_both_sums(upstream, tmp_path, monkeypatch):
    kubelet = upstream.files["kubelet"]
    good = sha(kubelet.read_bytes())
    kubelet.write_bytes(kubelet.read_bytes() + b"evil")
    bad = sha(kubelet.read_bytes())
    opts = options(upstream, tmp_path, out="out/kube.tar.gz")
    (tmp_path / "out").mkdir()
    with pytest.raises(ChecksumMismatch) as e:
        build.build(opts, io.StringIO())
    message = str(e.value)
    assert f"{upstream.base}/dl.k8s.io/release/v1.28.15/bin/linux/amd64/kubelet " in message
    assert good in message and bad in message
    assert list((tmp_path / "out").iterdir()) == []  # no package, no partial file
    assert not (tmp_path / "cache/sha256" / bad).exists()  # never cached
    assert list((tmp_path / "cache/tmp").iterdir()) == []

    # through the CLI: one sentence, exit 1, no traceback (the refusal comes before any image
    # pull; skopeo is not needed for it)
    monkeypatch.setattr(images, "require_skopeo", lambda: "skopeo")
    result = CliRunner().invoke(
        cli_mod.cli,
        [
            *("package", "build", "--version", VERSION, "--out", str(tmp_path / "out/k.tar.gz")),
            *("--cache", str(tmp_path / "cache"), *upstream.mirror_flags()),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert re.search(
        rf"error: .*kubelet has SHA-256 {bad}, but .*kubelet\.sha256 says {good}", result.output
    )
    assert list((tmp_path / "out").iterdir()) == []


def test_once_the_mirror_is_fixed_the_next_build_succeeds(upstream, tmp_path):
    # a wrong checksum file (the artifact is right) is refused, and not trusted from the cache
    sums = upstream.files["kubectl"].with_name("kubectl.sha256")
    good = sums.read_text()
    sums.write_text("0" * 64)
    with pytest.raises(ChecksumMismatch, match=r"kubectl\.sha256 says 0{64}"):
        build.build(options(upstream, tmp_path), io.StringIO())
    sums.write_text(good)
    result = build.build(options(upstream, tmp_path), io.StringIO())
    assert manifest.inspect(result.path).problems == []
    asked = [p for p in upstream.requests if p.endswith("/kubectl.sha256")]
    assert len(asked) == 2  # asked again, not taken from the cache


def test_a_mirror_on_a_closed_port_is_one_clear_error_within_the_timeout(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = build.BuildOptions(
        version=VERSION,
        out=tmp_path / "kube.tar.gz",
        mirrors={h: f"http://127.0.0.1:{port}/{h}" for h in sources.UPSTREAM_HOSTS},
        cache=tmp_path / "cache",
        images=False,
        timeout=2.0,
    )
    started = time.monotonic()
    with pytest.raises(FetchError, match=rf"cannot reach http://127\.0\.0\.1:{port}/.*refused"):
        build.build(opts, io.StringIO())
    assert time.monotonic() - started < 2.0
    assert not (tmp_path / "kube.tar.gz").exists()


def test_a_mirror_that_never_answers_fails_within_the_timeout(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections are queued, never answered
    port = silent.getsockname()[1]
    try:
        opts = build.BuildOptions(
            version=VERSION,
            out=tmp_path / "kube.tar.gz",
            mirrors={h: f"http://127.0.0.1:{port}/{h}" for h in sources.UPSTREAM_HOSTS},
            cache=tmp_path / "cache",
            images=False,
            timeout=1.0,
        )
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"(sent nothing for 1 s|timed out); check --mirror"):
            build.build(opts, io.StringIO())
        assert time.monotonic() - started < 1.8  # one --timeout, not one per job taken after
    finally:
        silent.close()


@pytest.mark.parametrize("version", ["v1.20.15", "v1.32.0", "v1.10.0"])
def test_an_unsupported_version_is_refused_with_the_supported_range(version, tmp_path):
    with pytest.raises(SpecError, match=r"supported are v1\.24\.0 to v1\.31\.x"):
        build.build(build.BuildOptions(version=version, cache=tmp_path, images=False))
    result = CliRunner().invoke(cli_mod.cli, ["package", "build", "--version", version])
    assert result.exit_code == 2 and "v1.24.0 to v1.31.x" in result.output
    assert "Traceback" not in result.output


def test_inspect_verifies_every_file_and_finds_a_changed_one(upstream, tmp_path):
    path = build.build(options(upstream, tmp_path), io.StringIO()).path
    found = manifest.inspect(path)
    assert found.problems == [] and found.checked == 19
    result = CliRunner().invoke(cli_mod.cli, ["package", "inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "all 19 files match" in result.output and "kube/bin/kubeadm" in result.output

    # the same package with one byte of kubelet changed (same size) and one file added
    changed = tmp_path / "changed.tar.gz"
    with tarfile.open(path) as src, tarfile.open(changed, "w:gz") as dst:
        for m in src.getmembers():
            f = src.extractfile(m) if m.isfile() else None
            data = f.read() if f else b""
            if m.name == "kube/bin/kubelet":
                data = data[:-1] + b"X"
            dst.addfile(m, io.BytesIO(data) if f else None)
        extra = tarfile.TarInfo("kube/bin/extra")
        dst.addfile(extra, io.BytesIO(b""))
    found = manifest.inspect(changed)
    assert len(found.problems) == 2
    assert re.match(
        r"kube/bin/kubelet has SHA-256 [0-9a-f]{64} .*, the manifest says", found.problems[0]
    )
    assert found.problems[1] == "kube/bin/extra is in the package but not in the manifest"
    result = CliRunner().invoke(cli_mod.cli, ["package", "inspect", str(changed)])
    assert result.exit_code == 1
    assert "problem: kube/bin/kubelet has SHA-256" in result.output
    assert "error: " in result.output and "Traceback" not in result.output


def test_inspect_of_an_old_shape_package_says_there_is_nothing_to_verify(tmp_path):
    old = tmp_path / "kube1.14.1.tar.gz"
    with tarfile.open(old, "w:gz") as tar:
        info = tarfile.TarInfo("kube/shell/init.sh")
        tar.addfile(info, io.BytesIO(b""))
    result = CliRunner().invoke(cli_mod.cli, ["package", "inspect", str(old)])
    assert result.exit_code == 1
    assert "has no kube/manifest.json: it is a package of the old shape" in result.output


def test_missing_skopeo_says_how_to_install_it(upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    opts = options(upstream, tmp_path)
    opts.images = True
    with pytest.raises(Exception, match=r"skopeo is not installed.*apt-get install skopeo"):
        build.build(opts, io.StringIO())
    assert upstream.requests == []  # refused before downloading anything


def test_plain_progress_lines_when_not_a_terminal(upstream, tmp_path):
    out = io.StringIO()
    build.build(options(upstream, tmp_path), out)
    lines = out.getvalue().splitlines()
    assert any(
        re.match(r"downloaded kubeadm \(\d+ bytes\) from http://127\.0\.0\.1", x) for x in lines
    )
    assert "\x1b[" not in out.getvalue()


def test_mirror_names_must_be_hosts_and_registries_the_package_uses(upstream, tmp_path):
    assert (
        sources.mirrored(
            "https://dl.k8s.io/release/v1.28.15/bin/linux/amd64/kubeadm",
            sources.parse_mirrors(["dl.k8s.io=http://10.250.3.1:8080/dl.k8s.io/"]),
        )
        == "http://10.250.3.1:8080/dl.k8s.io/release/v1.28.15/bin/linux/amd64/kubeadm"
    )
    with pytest.raises(SpecError, match=r"dl\.k8s\.i0 is not a host packages come from"):
        sources.parse_mirrors(["dl.k8s.i0=http://10.250.3.1:8080/dl.k8s.io"])
    with pytest.raises(SpecError, match="is not NAME=URL"):
        sources.parse_mirrors(["dl.k8s.io=10.250.3.1:8080"])
    opts = options(upstream, tmp_path, registry_mirrors={"registry.k8s.i0": "127.0.0.1:1"})
    with pytest.raises(SpecError, match=r"no image of this package comes from registry\.k8s\.i0; "):
        build.build(opts, io.StringIO())


def test_a_cached_file_changed_on_disk_is_not_packed(upstream, tmp_path):
    build.build(options(upstream, tmp_path, "a.tar.gz"), io.StringIO())
    blob = tmp_path / "cache/sha256" / sha(upstream.files["kubectl"].read_bytes())
    blob.write_bytes(blob.read_bytes()[:-1] + b"X")
    with pytest.raises(
        SealosError, match=rf"{blob} \(for kube/bin/kubectl\) no longer has SHA-256"
    ):
        build.build(options(upstream, tmp_path, "b.tar.gz"), io.StringIO())
    assert not (tmp_path / "b.tar.gz").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_cache_sweeps_what_interrupted_builds_left(tmp_path):
    (tmp_path / "tmp/stage-old").mkdir(parents=True)
    (tmp_path / "tmp/part-old").write_bytes(b"x")
    (tmp_path / "tmp/part-new").write_bytes(b"x")
    day_ago = time.time() - 2 * 24 * 3600
    for name in ("stage-old", "part-old"):
        os.utime(tmp_path / "tmp" / name, (day_ago, day_ago))
    Cache(tmp_path)
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == ["part-new"]


def test_two_builds_sharing_a_cache_keep_each_others_urls(tmp_path):
    """Two builds at once (amd64 and arm64) each hold the URL index in memory: what one adds must
    not be lost when the other writes (the next build would download it again)."""
    first, second = Cache(tmp_path), Cache(tmp_path)
    for cache, key in ((first, "http://a/1"), (second, "http://a/2"), (first, "http://a/3")):
        tmp = cache.temp_file()
        tmp.write_bytes(key.encode())
        cache.add(key, tmp, sha(key.encode()))
    second.forget("http://a/1")
    later = Cache(tmp_path)
    assert later.known("http://a/1") is None
    assert later.known("http://a/2") is not None and later.known("http://a/3") is not None


def test_checksum_files_are_read_in_each_upstream_format():
    v = KubeVersion.parse(VERSION)
    found = {a.name: a for a in sources.artifacts(v, "arm64", "calico")}
    h1, h2 = "a" * 64, "b" * 64
    assert sources.expected_sha256(found["kubeadm"], f"{h1}") == h1  # bare hash, no newline
    assert sources.expected_sha256(found["crictl"], f"{h1}\n") == h1
    containerd = f"{h1}  containerd-1.7.11-linux-arm64.tar.gz\n"
    assert sources.expected_sha256(found["containerd"], containerd) == h1
    signed = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
        f"{h1}  runc.amd64\n{h2}  runc.arm64\n-----BEGIN PGP SIGNATURE-----\n\nx\n"
    )
    assert sources.expected_sha256(found["runc"], signed) == h2  # the line of this arch
    with pytest.raises(SpecError, match=r"does not hold a SHA-256 for cni-plugins-linux-arm64"):
        sources.expected_sha256(found["cni-plugins"], f"{h1}  cni-plugins-linux-amd64-v1.3.0.tgz")
    with pytest.raises(SpecError, match="as the bare hash"):
        sources.expected_sha256(found["kubectl"], "<html>not found</html>")


def test_containerd_config_per_containerd_release():
    v2 = tomllib.loads(containerd_config.render("1.6.8", "k8s.gcr.io/pause:3.7"))
    assert v2["version"] == 2
    assert v2["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "k8s.gcr.io/pause:3.7"
    v3 = tomllib.loads(containerd_config.render("2.0.0", "registry.k8s.io/pause:3.10"))
    assert v3["version"] == 3
    images_ = v3["plugins"]["io.containerd.cri.v1.images"]
    assert images_["pinned_images"]["sandbox"] == "registry.k8s.io/pause:3.10"
    runc = v3["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True


def test_the_default_name_says_the_version_and_a_foreign_arch(upstream, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tree(upstream.root, arch="arm64")
    opts = options(upstream, tmp_path, arch="arm64")
    opts.out = None
    assert build.build(opts, io.StringIO()).path == Path("kube1.28.15-arm64.tar.gz")
    opts = options(upstream, tmp_path)
    opts.out = None
    assert build.build(opts, io.StringIO()).path == Path("kube1.28.15.tar.gz")


def test_a_binary_for_another_arch_is_refused(upstream, tmp_path):
    write_tree(upstream.root, arch="arm64")
    kubelet = upstream.root / "dl.k8s.io/release/v1.28.15/bin/linux/arm64/kubelet"
    kubelet.write_bytes(upstream.files["kubelet"].read_bytes())  # the amd64 one
    kubelet.with_name("kubelet.sha256").write_text(sha(kubelet.read_bytes()))
    with pytest.raises(
        SealosError, match=r"arm64/kubelet gave a linux/amd64 binary, not linux/arm64"
    ):
        build.build(options(upstream, tmp_path, arch="arm64"), io.StringIO())
    assert not (tmp_path / "kube.tar.gz").exists()


def test_out_naming_a_folder_writes_the_default_name_inside_it(upstream, tmp_path):
    folder = tmp_path / "packages"
    folder.mkdir()
    result = build.build(options(upstream, tmp_path, out="packages"), io.StringIO())
    assert result.path == folder / "kube1.28.15.tar.gz"
    assert [p.name for p in folder.iterdir()] == ["kube1.28.15.tar.gz"]
