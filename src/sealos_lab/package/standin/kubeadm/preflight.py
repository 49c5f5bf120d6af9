"""Preflight: the host checks before init or join, and the refusal of unmanageable hosts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..embedded import IMAGES
from ..hostenv import host_path, port_in_use, standin_root, systemd_usable, without_systemd
from .common import ETCD_DIR, K8S_DIR, MANIFESTS, KubeadmFailure, out
from .plans import DEFAULT_CERT_DIR, ClusterConfigFields, InitPlan, JoinPlan


def require_manageable_host() -> None:
    """Refuse to change a host whose services the stand-ins can't manage.

    Lab hosts run systemd; tests set SEALOS_STANDIN_ROOT and SEALOS_STANDIN_NO_SYSTEMD=1 together.
    Anything else (a developer machine without systemd, or a half-set test mode) is refused
    before a single file is written.
    """
    if standin_root() and not without_systemd():
        raise KubeadmFailure(
            "SEALOS_STANDIN_ROOT is set but SEALOS_STANDIN_NO_SYSTEMD is not: test mode needs both "
            "(set SEALOS_STANDIN_NO_SYSTEMD=1)"
        )
    if not systemd_usable():
        raise KubeadmFailure(
            "this host does not run systemd, which the sealos-lab stand-ins use for the kubelet "
            "and "
            "the apiserver: run them on a lab host, or set SEALOS_STANDIN_ROOT=DIR and "
            "SEALOS_STANDIN_NO_SYSTEMD=1 for test mode"
        )


def run_preflight(checks: list[tuple[str, str, bool]], ignored: list[str]) -> None:
    """Print warnings, fail on errors not ignored (kubeadm's preflight output)."""
    ignore = {i.lower() for i in ignored}
    fatal = []
    for name, message, is_error in checks:
        if is_error and "all" not in ignore and name.lower() not in ignore:
            fatal.append(f"\t[ERROR {name}]: {message}")
        else:
            sys.stderr.write(f"\t[WARNING {name}]: {message}\n")
    if fatal:
        raise KubeadmFailure(
            "error execution phase preflight: [preflight] Some fatal errors occurred:\n"
            + "\n".join(fatal)
            + "\n[preflight] If you know what you are doing, you can make a check non-fatal with "
            "`--ignore-preflight-errors=...`"
        )


def file_check(path: str) -> list[tuple[str, str, bool]]:
    if host_path(path).exists():
        name = "FileAvailable-" + path.replace("/", "-")
        return [(name, f"{path} already exists", True)]
    return []


def dir_check(path: str) -> list[tuple[str, str, bool]]:
    target = host_path(path)
    if target.is_dir() and any(target.iterdir()):
        return [("DirAvailable-" + path.replace("/", "-"), f"{path} is not empty", True)]
    return []


def port_check(port: int) -> list[tuple[str, str, bool]]:
    return [(f"Port-{port}", f"Port {port} is in use", True)] if port_in_use(port) else []


def common_checks() -> list[tuple[str, str, bool]]:
    checks: list[tuple[str, str, bool]] = []
    if os.geteuid() != 0:
        checks.append(("IsPrivilegedUser", "user is not running as root", True))
    unit = host_path("/etc/systemd/system/kubelet.service")
    if not unit.exists() and not Path("/lib/systemd/system/kubelet.service").exists():
        checks.append(
            (
                "Service-Kubelet",
                "kubelet service is not enabled, please run 'systemctl enable kubelet.service'",
                False,
            )
        )
    return checks


def init_preflight(plan: InitPlan) -> None:
    """`kubeadm init`'s checks: ports, no control plane manifests yet, an empty etcd dir."""
    out("[preflight] Running pre-flight checks")
    checks = common_checks()
    checks += port_check(plan.bind_port) + port_check(10250)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        checks += file_check(f"{MANIFESTS}/{name}.yaml")
    checks += dir_check(ETCD_DIR)
    run_preflight(checks, plan.ignore_preflight)


def join_preflight(plan: JoinPlan) -> None:
    """`kubeadm join`'s checks: an empty manifests dir, no kubelet kubeconfigs, port 10250."""
    out("[preflight] Running pre-flight checks")
    checks = common_checks()
    checks += dir_check(MANIFESTS)
    checks += file_check(f"{K8S_DIR}/kubelet.conf") + file_check(
        f"{K8S_DIR}/bootstrap-kubelet.conf"
    )
    if not plan.control_plane:
        checks += file_check(f"{DEFAULT_CERT_DIR}/ca.crt")
    checks += port_check(10250)
    run_preflight(checks, plan.ignore_preflight)


def control_plane_join_preflight(plan: JoinPlan, cluster: ClusterConfigFields) -> None:
    """A control-plane join's further checks; the cluster must have a controlPlaneEndpoint."""
    out("[preflight] Running pre-flight checks before initializing the new control plane instance")
    if not cluster.control_plane_endpoint:
        raise KubeadmFailure(
            "error execution phase preflight: \nOne or more conditions for hosting a new control "
            "plane instance is not satisfied.\n\nunable to add a new control plane instance to a "
            "cluster that doesn't have a stable controlPlaneEndpoint address\n\nPlease ensure "
            "that:\n"
            "* The cluster has a stable controlPlaneEndpoint address.\n"
            "* The certificates that must be shared among control plane instances are provided.\n"
        )
    checks = port_check(plan.bind_port) + dir_check(ETCD_DIR)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        checks += file_check(f"{MANIFESTS}/{name}.yaml")
    run_preflight(checks, plan.ignore_preflight)


def images_for(cluster: ClusterConfigFields) -> list[str]:
    """kubeadm's images for this cluster: its list, under the cluster's imageRepository if set
    (where coredns loses its `coredns/` sub-path, as in kubeadm's images.go)."""
    repository = cluster.image_repository
    if not repository:
        return list(IMAGES)
    out_list = []
    for image in IMAGES:
        _registry, path = image.split("/", 1)
        out_list.append(f"{repository}/{path.removeprefix('coredns/')}")
    return out_list


def image_checks(cluster: ClusterConfigFields) -> list[tuple[str, str, bool]]:
    """Real kubeadm asks the container runtime for every image and pulls what is missing; the lab
    is offline, so a missing image fails as a pull fails. Asked of containerd where it runs (the
    packages `sealos package build` makes); hosts without a runtime (older lab packages) skip."""
    images = images_for(cluster)
    if not images or standin_root() or shutil.which("ctr") is None:
        return []
    listed = subprocess.run(
        ["ctr", "-n", "k8s.io", "images", "ls", "-q"], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        return [("CRI", f"container runtime is not running: {listed.stderr.strip()}", True)]
    present = set(listed.stdout.split())
    return [
        (
            "ImagePull",
            f"failed to pull image {image}: output: the image is not in containerd (namespace "
            "k8s.io) and the sealos-lab stand-in pulls nothing: the lab is offline; load it "
            "from the package (ctr -n k8s.io images import), error: exit status 1",
            True,
        )
        for image in images
        if image not in present
    ]


def announce_image_pull(cluster: ClusterConfigFields, ignored: list[str]) -> None:
    """kubeadm's image pull lines, and its check that every image is there (nothing is pulled:
    the stand-ins run no containers and the lab is offline)."""
    out("[preflight] Pulling images required for setting up a Kubernetes cluster")
    out(
        "[preflight] This might take a minute or two, depending on the speed of your internet "
        "connection"
    )
    out(
        "[preflight] You can also perform this action in beforehand using 'kubeadm config images "
        "pull'"
    )
    run_preflight(image_checks(cluster), ignored)
