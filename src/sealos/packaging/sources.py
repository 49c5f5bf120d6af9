"""The upstream artifacts of a package for one Kubernetes version and architecture: where each
comes from, where its published checksum is and in which format (the fact sheet
`shared/package-sources.md` §1 quotes the release scripts that write them).

Choices where upstream is silent:
- runc's `runc.sha256sum` is GPG clear-signed; its hash lines are read and the signature is not
  verified (that needs runc's keyring and gpg on the operator's machine). The hashes come from the
  same release over HTTPS, as the other checksum files do.
- containerd.service, kubelet.service, 10-kubeadm.conf and calico.yaml have no published checksum:
  they are taken from a tag (never a branch), and the package's manifest records their SHA-256.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from sealos import package_versions as pv
from sealos.errors import SpecError
from sealos.kubeversion import KubeVersion

UPSTREAM_HOSTS = ("dl.k8s.io", "github.com", "raw.githubusercontent.com")
CNIS = ("calico", "none")


class Checksum(enum.Enum):
    """How upstream publishes an artifact's SHA-256."""

    HASH_ONLY = "the bare hash"  # kubeadm/kubelet/kubectl `.sha256`, crictl `.sha256`
    SHA256SUM = "`sha256sum` lines"  # containerd `.sha256sum`, CNI plugins `.sha256`
    SIGNED_SHA256SUM = "GPG clear-signed `sha256sum` lines"  # runc.sha256sum
    NONE = "no published checksum"


@dataclass(frozen=True)
class Artifact:
    """One upstream file: its role in the package, URL, checksum file and format, version."""

    name: str
    url: str
    version: str
    checksum: Checksum = Checksum.NONE
    checksum_url: Optional[str] = None

    @property
    def file_name(self) -> str:
        """The last part of the URL: what upstream's checksum lines name."""
        return self.url.rsplit("/", 1)[-1]


def artifacts(version: KubeVersion, arch: str, cni: str = "calico") -> list[Artifact]:
    """Every file a package for this version, arch and CNI downloads (images aside)."""
    if arch not in pv.ARCHES:
        raise SpecError(f"--arch {arch} is not supported; use one of {', '.join(pv.ARCHES)}.")
    if cni not in CNIS:
        raise SpecError(f"--cni {cni} is not supported; use one of {', '.join(CNIS)}.")
    pins = pv.runtime(version)
    kube = f"https://dl.k8s.io/release/{version}/bin/linux/{arch}"
    gh = "https://github.com"
    raw = "https://raw.githubusercontent.com"
    ctd, runc, crictl, cni_v = pins.containerd, pins.runc, pins.crictl, pins.cni_plugins
    templates = f"{raw}/kubernetes/release/v{pv.RELEASE_TEMPLATES}/cmd/krel/templates/latest"
    found = [
        Artifact(b, f"{kube}/{b}", str(version), Checksum.HASH_ONLY, f"{kube}/{b}.sha256")
        for b in ("kubeadm", "kubelet", "kubectl")
    ]
    ctd_url = (
        f"{gh}/containerd/containerd/releases/download/v{ctd}/containerd-{ctd}-linux-{arch}.tar.gz"
    )
    runc_dir = f"{gh}/opencontainers/runc/releases/download/v{runc}"
    crictl_url = (
        f"{gh}/kubernetes-sigs/cri-tools/releases/download/v{crictl}/"
        f"crictl-v{crictl}-linux-{arch}.tar.gz"
    )
    cni_url = (
        f"{gh}/containernetworking/plugins/releases/download/v{cni_v}/"
        f"cni-plugins-linux-{arch}-v{cni_v}.tgz"
    )
    found += [
        Artifact("containerd", ctd_url, ctd, Checksum.SHA256SUM, ctd_url + ".sha256sum"),
        Artifact(
            "containerd.service", f"{raw}/containerd/containerd/v{ctd}/containerd.service", ctd
        ),
        Artifact(
            "runc",
            f"{runc_dir}/runc.{arch}",
            runc,
            Checksum.SIGNED_SHA256SUM,
            f"{runc_dir}/runc.sha256sum",
        ),
        Artifact("crictl", crictl_url, crictl, Checksum.HASH_ONLY, crictl_url + ".sha256"),
        Artifact("cni-plugins", cni_url, cni_v, Checksum.SHA256SUM, cni_url + ".sha256"),
        Artifact("kubelet.service", f"{templates}/kubelet/kubelet.service", pv.RELEASE_TEMPLATES),
        Artifact("10-kubeadm.conf", f"{templates}/kubeadm/10-kubeadm.conf", pv.RELEASE_TEMPLATES),
    ]
    if cni == "calico":
        found.append(
            Artifact(
                "calico.yaml",
                f"{raw}/projectcalico/calico/v{pins.calico}/manifests/calico.yaml",
                pins.calico,
            )
        )
    return found


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *]?(\S.*?)\s*$")


def expected_sha256(artifact: Artifact, text: str) -> str:
    """The SHA-256 upstream published for `artifact`, read from its checksum file's text;
    SpecError when the file does not hold it in the expected format."""
    where = artifact.checksum_url
    if artifact.checksum is Checksum.HASH_ONLY:
        words = text.split()
        if words and _HEX64.match(words[0].lower()):
            return words[0].lower()
    else:
        for line in text.splitlines():
            m = _SUM_LINE.match(line.strip())
            if m and m.group(2).rsplit("/", 1)[-1] == artifact.file_name:
                return m.group(1).lower()
    raise SpecError(
        f"{where} does not hold a SHA-256 for {artifact.file_name} as {artifact.checksum.value}; "
        "the mirror or the release is broken."
    )


def parse_mirrors(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--mirror NAME=URL` values as {upstream host: base URL}."""
    mirrors: dict[str, str] = {}
    for value in values:
        name, sep, url = value.partition("=")
        parts = urlsplit(url)
        if not sep or not name or "/" in name or parts.scheme not in ("http", "https"):
            raise SpecError(
                f"--mirror {value!r} is not NAME=URL; e.g. "
                "--mirror dl.k8s.io=http://10.250.3.1:8080/dl.k8s.io"
            )
        if name not in UPSTREAM_HOSTS:
            # a typo would quietly send the download to the real upstream
            raise SpecError(
                f"--mirror {name}=...: {name} is not a host packages come from; "
                f"use one of {', '.join(UPSTREAM_HOSTS)}."
            )
        mirrors[name] = url.rstrip("/")
    return mirrors


def mirrored(url: str, mirrors: Mapping[str, str]) -> str:
    """The URL to fetch: the upstream host replaced by its mirror's base URL, if one is given."""
    parts = urlsplit(url)
    base = mirrors.get(parts.netloc)
    return url if base is None else base + parts.path
