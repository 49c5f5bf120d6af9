"""A local copy of the upstream release downloads for one Kubernetes version and architecture,
laid out as `ROOT/<upstream host>/<upstream path>` with upstream's checksum files beside them, so
that `sealos package build --mirror HOST=http://ADDR:PORT/HOST` reads it as it reads upstream.

What is real and what stands in:
- containerd (containerd, ctr, the shims), runc and the CNI plugins are Debian's real binaries
  (packages containerd, runc, containernetworking-plugins; see `debs`), repackaged in the upstream
  release layout under the upstream version numbers the package builder asks for;
- kubeadm, kubelet and kubectl are the lab's stand-ins (`sealos_lab.package.builder`);
- crictl is not in Debian: a small stand-in script that says so (`CRICTL_STANDIN`);
- runc.sha256sum wraps its hash lines in a clear-signed-looking PGP frame like upstream's; the
  signature block is a stand-in, not a signature;
- calico.yaml is a small calico-like manifest naming upstream's three calico images.

The component versions come from `sealos.package_versions`, the product's own table: the lab may
import the product here because the mirror must serve exactly what the product will ask for.
The layouts and checksum formats follow the fact sheet `shared/package-sources.md` §1 and §4.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import string
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sealos import package_versions
from sealos.kubeversion import KubeVersion
from sealos_lab import debs
from sealos_lab.kernel import cache_lock
from sealos_lab.package.builder import standin_script
from sealos_lab.paths import CACHE

K8S = "dl.k8s.io"
GITHUB = "github.com"
RAW = "raw.githubusercontent.com"
HOSTS = (K8S, GITHUB, RAW)
KREL_VERSION = "v0.16.2"  # kubernetes/release tag install-kubeadm takes the units from
RUNC_ARCHES = ("amd64", "arm64", "armel", "armhf", "ppc64le", "riscv64", "s390x")
_MTIME = 1_700_000_000  # fixed, so that two builds give the same bytes
_FORMAT = "1"  # bump when the cached tarballs' layout changes
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Artifact:
    """One upstream download: where it sits under the mirror root, and its checksum file.

    `checksum_format`: "hash" (the bare hex digest, dl.k8s.io and cri-tools), "sha256sum"
    ("HASH  NAME" lines, containerd and CNI plugins), "signed-sha256sum" (such lines inside a PGP
    clear-signed frame, runc) or "" for files upstream publishes no checksum for.
    """

    name: str
    path: str
    checksum_path: str = ""
    checksum_format: str = ""

    @property
    def url_name(self) -> str:
        """The file name at the end of the URL (what sha256sum lines name)."""
        return self.path.rsplit("/", 1)[-1]


def _runtime(version: str) -> tuple[KubeVersion, package_versions.Runtime]:
    v = KubeVersion.parse(version)
    return v, package_versions.runtime(v)


def artifacts(version: str, arch: str) -> list[Artifact]:
    """Every download of one Kubernetes version and arch, at its upstream path (no files made)."""
    if arch not in package_versions.ARCHES:
        raise ValueError(
            f"unknown arch {arch!r}; choose one of {', '.join(package_versions.ARCHES)}"
        )
    v, rt = _runtime(version)
    out = []
    for program in ("kubeadm", "kubelet", "kubectl"):
        path = f"{K8S}/release/{v}/bin/linux/{arch}/{program}"
        out.append(Artifact(program, path, path + ".sha256", "hash"))
    ctd = f"{GITHUB}/containerd/containerd/releases/download/v{rt.containerd}"
    tarball = f"{ctd}/containerd-{rt.containerd}-linux-{arch}.tar.gz"
    out.append(Artifact("containerd", tarball, tarball + ".sha256sum", "sha256sum"))
    out.append(
        Artifact(
            "containerd.service", f"{RAW}/containerd/containerd/v{rt.containerd}/containerd.service"
        )
    )
    runc = f"{GITHUB}/opencontainers/runc/releases/download/v{rt.runc}"
    out.append(
        Artifact("runc", f"{runc}/runc.{arch}", f"{runc}/runc.sha256sum", "signed-sha256sum")
    )
    crictl = (
        f"{GITHUB}/kubernetes-sigs/cri-tools/releases/download/v{rt.crictl}/"
        f"crictl-v{rt.crictl}-linux-{arch}.tar.gz"
    )
    out.append(Artifact("crictl", crictl, crictl + ".sha256", "hash"))
    cni = (
        f"{GITHUB}/containernetworking/plugins/releases/download/v{rt.cni_plugins}/"
        f"cni-plugins-linux-{arch}-v{rt.cni_plugins}.tgz"
    )
    out.append(Artifact("cni-plugins", cni, cni + ".sha256", "sha256sum"))
    krel = f"{RAW}/kubernetes/release/{KREL_VERSION}/cmd/krel/templates/latest"
    out.append(Artifact("kubelet.service", f"{krel}/kubelet/kubelet.service"))
    out.append(Artifact("10-kubeadm.conf", f"{krel}/kubeadm/10-kubeadm.conf"))
    out.append(
        Artifact("calico.yaml", f"{RAW}/projectcalico/calico/v{rt.calico}/manifests/calico.yaml")
    )
    return out


# ---- file contents ------------------------------------------------------------------------------
KUBELET_SERVICE = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

KUBEADM_DROPIN = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/sysconfig/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""  # noqa: E501 (upstream's text, line for line)

CRICTL_STANDIN = """\
#!/usr/bin/env python3
# crictl v${version} -- sealos-lab STAND-IN, not cri-tools: crictl is not packaged in Debian.
# It answers `crictl --version` and `crictl images [-q]` by asking the real containerd
# (`ctr -n k8s.io images ls`); every other command fails and says it is a stand-in.
import subprocess
import sys

VERSION = "v${version}"
FLAGS_WITH_VALUE = {"-r", "--runtime-endpoint", "-i", "--image-endpoint", "-t", "--timeout",
                    "-c", "--config"}


def images(quiet):
    proc = subprocess.run(["ctr", "-n", "k8s.io", "images", "ls"], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write("crictl (stand-in): ctr failed: " + proc.stderr)
        return 1
    rows = []
    for line in proc.stdout.splitlines()[1:]:
        f = line.split()
        if len(f) < 5 or f[0].startswith("sha256:"):
            continue
        name, _, tag = f[0].rpartition(":")
        if "/" in tag or not name:
            name, tag = f[0], "<none>"
        rows.append((name, tag, f[2].split(":")[-1][:13], f[3] + f[4]))
    if quiet:
        print("\\n".join("sha256:" + r[2] for r in rows) if rows else "", end="\\n" if rows else "")
        return 0
    rows.insert(0, ("IMAGE", "TAG", "IMAGE ID", "SIZE"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def main(argv):
    args = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in FLAGS_WITH_VALUE:
            skip = True
        elif a.split("=")[0] in FLAGS_WITH_VALUE or a in ("-D", "--debug"):
            pass
        else:
            args.append(a)
    if args[:1] in (["--version"], ["-v"]):
        print("crictl version " + VERSION)
        return 0
    if args[:1] == ["images"] or args[:1] == ["img"]:
        return images("-q" in args or "--quiet" in args)
    sys.stderr.write("crictl %s is a sealos-lab stand-in: %r is not supported\\n"
                     % (VERSION, " ".join(args)))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
"""


def crictl_standin(version: str) -> str:
    """The stand-in crictl script for cri-tools `version` (e.g. "1.28.0")."""
    return string.Template(CRICTL_STANDIN).substitute(version=version)


def calico_manifest(calico_version: str) -> str:
    """The lab's calico-like manifest for Calico `calico_version` (e.g. "3.26.4")."""
    text = (_HERE / "release_calico.yaml").read_text()
    return string.Template(text).substitute(version=f"v{calico_version}")


def manifest_images(manifest: str) -> list[str]:
    """The `image:` values of a manifest, first seen first (as `grep 'image:'` finds them)."""
    found: list[str] = []
    for line in manifest.splitlines():
        key, sep, value = line.strip().removeprefix("- ").partition(":")
        if sep and key == "image":
            image = value.strip().strip("\"'")
            if image not in found:
                found.append(image)
    return found


def calico_images(version: str) -> list[str]:
    """The images the calico manifest served for Kubernetes `version` names."""
    return manifest_images(calico_manifest(_runtime(version)[1].calico))


def containerd_unit() -> str:
    """Upstream's containerd.service: Debian ships upstream's text with /usr/bin; upstream's
    release unit starts /usr/local/bin/containerd (where its tarball unpacks)."""
    unit = debs.unpacked("containerd", debs.native_arch()).path(
        "/lib/systemd/system/containerd.service"
    )
    text = unit.read_text()
    if "ExecStart=/usr/bin/containerd\n" not in text:
        raise debs.DebError(f"{unit}: no ExecStart=/usr/bin/containerd line to rewrite")
    return text.replace("ExecStart=/usr/bin/containerd\n", "ExecStart=/usr/local/bin/containerd\n")


# ---- archives -----------------------------------------------------------------------------------
def tar_gz(entries: Sequence[tuple[str, Optional[bytes], int]], level: int = 6) -> bytes:
    """A reproducible .tar.gz: entries (name, data or None for a folder, mode) in the given order,
    owner root, fixed mtime, no gzip timestamp."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = _MTIME
            info.mode = mode
            info.uname = info.gname = "root"
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=level, mtime=0)


def _cached_archive(key: str, make: Callable[[], bytes]) -> bytes:
    """A big archive built once per key into the cache (gzip of ~100 MB takes seconds)."""
    path = CACHE / "release-mirror" / f"{key}.{_FORMAT}"
    with cache_lock("release-mirror"):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(make())
            tmp.replace(path)
    return path.read_bytes()


# What Debian's containerd ships of upstream's 1.6/1.7 tarball (all but containerd-stress).
CONTAINERD_BINARIES = (
    "containerd",
    "containerd-shim",
    "containerd-shim-runc-v1",
    "containerd-shim-runc-v2",
    "ctr",
)


def containerd_tarball(arch: str) -> bytes:
    """containerd's release tarball for `arch`: `bin/<command>` from Debian's containerd."""
    pkg = debs.unpacked("containerd", arch)

    def make() -> bytes:
        entries: list[tuple[str, Optional[bytes], int]] = [("bin", None, 0o755)]
        for name in CONTAINERD_BINARIES:
            entries.append((f"bin/{name}", pkg.path(f"/usr/bin/{name}").read_bytes(), 0o755))
        return tar_gz(entries)

    return _cached_archive(f"containerd-{pkg.version}-{arch}.tar.gz", make)


def cni_tarball(arch: str) -> bytes:
    """The CNI plugins' release tarball for `arch`: flat `./NAME` from Debian's /usr/lib/cni."""
    pkg = debs.unpacked("containernetworking-plugins", arch)

    def make() -> bytes:
        entries: list[tuple[str, Optional[bytes], int]] = [(".", None, 0o755)]
        for plugin in sorted(pkg.path("/usr/lib/cni").iterdir()):
            entries.append((f"./{plugin.name}", plugin.read_bytes(), 0o755))
        return tar_gz(entries)

    return _cached_archive(f"cni-plugins-{pkg.version}-{arch}.tgz", make)


# ---- checksum files -----------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    """The hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


SIGNATURE_STANDIN = (
    "-----BEGIN PGP SIGNATURE-----\n"
    "Comment: sealos-lab release mirror: a stand-in block, not a signature\n"
    "\n"
    "c2VhbG9zLWxhYiBzdGFuZC1pbiwgbm90IGEgc2lnbmF0dXJlCg==\n"
    "=LAB0\n"
    "-----END PGP SIGNATURE-----\n"
)


def signed_sha256sum(lines: dict[str, str]) -> str:
    """runc's `runc.sha256sum`: "HASH  NAME" lines in a PGP clear-signed frame (stand-in block)."""
    order = {f"runc.{a}": i for i, a in enumerate(RUNC_ARCHES)}
    body = "".join(
        f"{h}  {n}\n" for n, h in sorted(lines.items(), key=lambda kv: order.get(kv[0], 99))
    )
    return f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{body}{SIGNATURE_STANDIN}"


def read_sha256sum(text: str) -> dict[str, str]:
    """NAME -> HASH from "HASH  NAME" lines (any other line, such as a PGP frame, is skipped)."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if (
            len(parts) == 2
            and len(parts[0]) == 64
            and all(c in "0123456789abcdef" for c in parts[0])
        ):
            found[parts[1].lstrip("*")] = parts[0]
    return found


# ---- the tree -----------------------------------------------------------------------------------
def _write(root: Path, rel: str, data: bytes, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def build_tree(root: Path, version: str, arch: str) -> list[Artifact]:
    """Write every download of Kubernetes `version` for `arch` under `root/<host>/<path>`, with
    upstream-style checksum files; other versions and arches already there stay (runc's one
    checksum file per release gains this arch's line). Returns what was written."""
    v, rt = _runtime(version)
    items = artifacts(version, arch)
    by_name = {a.name: a for a in items}
    contents: dict[str, bytes] = {}
    for program in ("kubeadm", "kubelet", "kubectl"):
        contents[program] = standin_script(program, str(v)).encode()
    contents["containerd"] = containerd_tarball(arch)
    contents["containerd.service"] = containerd_unit().encode()
    contents["runc"] = debs.unpacked("runc", arch).path("/usr/sbin/runc").read_bytes()
    contents["crictl"] = tar_gz([("crictl", crictl_standin(rt.crictl).encode(), 0o755)])
    contents["cni-plugins"] = cni_tarball(arch)
    contents["kubelet.service"] = KUBELET_SERVICE.encode()
    contents["10-kubeadm.conf"] = KUBEADM_DROPIN.encode()
    contents["calico.yaml"] = calico_manifest(rt.calico).encode()
    for name, data in contents.items():
        a = by_name[name]
        _write(
            root,
            a.path,
            data,
            0o755 if name in ("kubeadm", "kubelet", "kubectl", "runc") else 0o644,
        )
        digest = sha256(data)
        if a.checksum_format == "hash":
            # dl.k8s.io's files hold the bare digest; cri-tools' `awk | tee` adds a newline.
            end = "" if a.path.startswith(K8S + "/") else "\n"
            _write(root, a.checksum_path, (digest + end).encode())
        elif a.checksum_format == "sha256sum":
            _write(root, a.checksum_path, f"{digest}  {a.url_name}\n".encode())
        elif a.checksum_format == "signed-sha256sum":
            existing = root / a.checksum_path
            lines = read_sha256sum(existing.read_text()) if existing.exists() else {}
            lines[a.url_name] = digest
            _write(root, a.checksum_path, signed_sha256sum(lines).encode())
    return items
