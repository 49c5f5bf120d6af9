"""Which parts go with which Kubernetes version in a package built by `sealos package build`: the
runtime (containerd, runc, crictl, CNI plugins), the CNI (calico), and kubeadm's own images. Data,
with its sources named (the fact sheet `shared/package-sources.md` lists and quotes them):

- [KS] kubespray's download defaults per release tag (v2.20.0 .. v2.27.0): the runtime pins.
- [CTRD] containerd RELEASES.md "Kubernetes Support" and `script/setup/runc-version` per tag.
- [CRIT] cri-tools README: the same minor as Kubernetes.
- [MK] minikube's `constants_kubeadm_images.go`: real `kubeadm config images list` output
  (pause, etcd and coredns tags, with the patch releases where they change).
- [KIMG] kubeadm `images.go`: the image names and the `coredns/` sub-path of the default registry.
- [CAL] Calico's "tested against" lists (requirements.mdx per 3.NN).

Packages start at 1.24: Kubernetes 1.24 removed dockershim, so containerd serves every version
this builder supports; older versions are refused with the supported range.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealos.errors import SpecError
from sealos.kubeversion import KubeVersion

ARCHES = ("amd64", "arm64")


@dataclass(frozen=True)
class Runtime:
    """Runtime pins for one Kubernetes minor [KS][CTRD][CRIT]."""

    containerd: str
    runc: str
    crictl: str
    cni_plugins: str
    calico: str


# minor -> pins; each row is shipped together by a kubespray release [KS] (see the fact sheet §3).
RUNTIME: dict[int, Runtime] = {
    24: Runtime("1.6.8", "1.1.4", "1.24.2", "1.1.1", "3.23.3"),
    25: Runtime("1.6.15", "1.1.4", "1.25.0", "1.2.0", "3.24.5"),
    26: Runtime("1.7.1", "1.1.7", "1.26.1", "1.3.0", "3.25.1"),
    27: Runtime("1.7.5", "1.1.9", "1.27.1", "1.3.0", "3.25.2"),
    28: Runtime("1.7.11", "1.1.10", "1.28.0", "1.3.0", "3.26.4"),
    29: Runtime("1.7.16", "1.1.12", "1.29.0", "1.3.0", "3.27.3"),
    30: Runtime("1.7.21", "1.1.13", "1.30.1", "1.4.0", "3.28.1"),
    31: Runtime("1.7.24", "1.2.3", "1.31.1", "1.4.0", "3.29.1"),
}

# minor -> (pause, [(first patch, etcd)], [(first patch, coredns)]) from real kubeadm output [MK].
KUBEADM_IMAGES: dict[int, tuple[str, list[tuple[int, str]], list[tuple[int, str]]]] = {
    24: ("3.7", [(0, "3.5.3-0"), (8, "3.5.5-0"), (9, "3.5.6-0")], [(0, "v1.8.6")]),
    25: ("3.8", [(0, "3.5.4-0"), (4, "3.5.5-0"), (5, "3.5.6-0"), (15, "3.5.9-0")], [(0, "v1.9.3")]),
    26: ("3.9", [(0, "3.5.6-0"), (10, "3.5.9-0"), (13, "3.5.10-0")], [(0, "v1.9.3")]),
    27: (
        "3.9",
        [(0, "3.5.7-0"), (7, "3.5.9-0"), (10, "3.5.10-0"), (12, "3.5.12-0")],
        [(0, "v1.10.1")],
    ),
    28: (
        "3.9",
        [(0, "3.5.9-0"), (6, "3.5.10-0"), (8, "3.5.12-0"), (14, "3.5.15-0")],
        [(0, "v1.10.1")],
    ),
    29: (
        "3.9",
        [(0, "3.5.10-0"), (3, "3.5.12-0"), (9, "3.5.15-0"), (11, "3.5.16-0")],
        [(0, "v1.11.1")],
    ),
    30: ("3.9", [(0, "3.5.12-0"), (5, "3.5.15-0")], [(0, "v1.11.1"), (5, "v1.11.3")]),
    31: ("3.10", [(0, "3.5.15-0"), (14, "3.5.24-0")], [(0, "v1.11.1"), (1, "v1.11.3")]),
}

# kubeadm 1.24.0-1.24.8 still defaults to k8s.gcr.io; 1.24.9 and later to registry.k8s.io [MK].
OLD_REGISTRY = "k8s.gcr.io"
REGISTRY = "registry.k8s.io"
MIN_MINOR, MAX_MINOR = min(RUNTIME), max(RUNTIME)


def supported_range() -> str:
    """The versions a package can be built for, as users type them."""
    return f"v1.{MIN_MINOR}.0 to v1.{MAX_MINOR}.x"


def runtime(version: KubeVersion) -> Runtime:
    """The runtime pins for a version; SpecError with the supported range otherwise."""
    pins = RUNTIME.get(version.minor) if version.major == 1 else None
    if pins is None:
        raise SpecError(
            f"a package for Kubernetes {version} cannot be built: supported are "
            f"{supported_range()} (1.24 removed dockershim; older versions need docker)."
        )
    return pins


def _at(patch: int, steps: list[tuple[int, str]]) -> str:
    return [value for first, value in steps if patch >= first][-1]


def kubeadm_images(version: KubeVersion, repository: str = "") -> list[str]:
    """What `kubeadm config images list --kubernetes-version V` prints for this version (default
    image repository unless `repository` is given) [MK][KIMG]."""
    runtime(version)
    pause, etcd, coredns = KUBEADM_IMAGES[version.minor]
    default = OLD_REGISTRY if (version.minor, version.patch) < (24, 9) else REGISTRY
    repo = repository or default
    dns = f"{repo}/coredns/coredns" if repo == default else f"{repo}/coredns"
    tag = f"v{version.major}.{version.minor}.{version.patch}"
    return [
        f"{repo}/kube-apiserver:{tag}",
        f"{repo}/kube-controller-manager:{tag}",
        f"{repo}/kube-scheduler:{tag}",
        f"{repo}/kube-proxy:{tag}",
        f"{dns}:{_at(version.patch, coredns)}",
        f"{repo}/pause:{pause}",
        f"{repo}/etcd:{_at(version.patch, etcd)}",
    ]


def pause_image(version: KubeVersion, repository: str = "") -> str:
    """The sandbox image containerd must use (kubeadm's pause, not containerd's default)."""
    return next(i for i in kubeadm_images(version, repository) if "/pause:" in i)


# kubernetes/release tag whose krel templates give kubelet.service and 10-kubeadm.conf; the
# 1.31-era install-kubeadm page uses it (RELEASE_VERSION) [REL][WEB-KADM].
RELEASE_TEMPLATES = "0.16.2"
