"""Preflight: the host checks before init or join, and the refusal of unmanageable hosts.

The checks are kubeadm's, per release, with kubeadm's names and wording (the table below
`Check`); what they read of the host goes through `hostprobe` (test mode: a host below
SEALOS_STANDIN_ROOT).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..embedded import IMAGES
from ..hostenv import host_path, port_in_use, standin_root, systemd_usable, without_systemd
from ..hostprobe import HostProbe, host_probe
from ..versions import parse_kube_version
from .common import ETCD_DIR, K8S_DIR, MANIFESTS, KubeadmFailure, kube_version, out
from .plans import DEFAULT_CERT_DIR, ClusterConfigFields, InitPlan, JoinPlan, split_endpoint


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


# A check's result: (name, message, is_error). Warnings are printed, errors fail unless ignored.
Check = tuple[str, str, bool]

# Which checks, from which release, with which severity: upstream cmd/kubeadm/app/preflight
# (checks.go, checks_linux.go) at v1.14..v1.33, read check by check:
# - CRI (error, every release): `docker info` for the dockershim socket (<= 1.23), `crictl -r
#   ENDPOINT info` for any other socket (<= 1.30), the CRI client from 1.31 (PR #124685). The
#   stand-in does not run crictl: it asks the socket for an HTTP/2 (gRPC) answer itself.
# - Service-Docker (<= 1.23, dockershim socket): "does not exist"/"not enabled" warn, "not
#   active" is an error. IsDockerSystemdCheck (<= 1.21, warning; removed by PR #99647 in 1.22).
# - FileExisting-crictl: error for a non-docker runtime up to 1.23 and always 1.24-1.30, a warning
#   in 1.31 (PR #124685), gone from 1.32 (PR #126596).
# - FileExisting-conntrack: error from 1.18; from 1.32 only on init of a version below 1.32
#   (PR #126952), i.e. never for a 1.32+ package.
# - FileExisting-ip/iptables/mount/nsenter: errors; ebtables/ethtool/socat/tc/touch: warnings.
# - FileContent--proc-sys-net-bridge-bridge-nf-call-iptables: error up to 1.29 (removed by PR
#   #123464 in 1.30); FileContent--proc-sys-net-ipv4-ip_forward: error, every release. Up to 1.26
#   both are common checks (init and join); from 1.27 (PR #115420) init adds them when a subnet or
#   the advertise address is IPv4, join only when the discovery endpoint is an IPv4 address.
# - Swap: error up to 1.22, a warning from 1.23 (PR #104854); kubeadm does not read failSwapOn
#   (PR #71231 was closed unmerged): the kubelet does.
# - NumCPU (2) on init and control-plane join, every release; Mem (1700 MB) there from 1.20.
# - Ports: bindPort, 10251/10252 up to 1.16 and 10259/10257 from 1.17 (PR #85043), 2379, 2380
#   (local etcd) on init and control-plane join; 10250 on init and join.
CONTROL_PLANE_CPUS = 2
CONTROL_PLANE_MEM_MB = 1700
ON_PATH_ERRORS = ("ip", "iptables", "mount", "nsenter")
ON_PATH_WARNINGS = ("ebtables", "ethtool", "socat", "tc", "touch")
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
IPV4_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def is_docker_socket(cri_socket: str) -> bool:
    """The dockershim socket (up to 1.23 the docker runtime)."""
    return "dockershim" in cri_socket or cri_socket.endswith("/docker.sock")


def known_cri_sockets(minor: int) -> list[tuple[str, str]]:
    """(socket file to look for, endpoint kubeadm then uses) in kubeadm's detection order."""
    if minor <= 23:
        return [
            ("/var/run/docker.sock", "/var/run/dockershim.sock"),
            ("/var/run/crio/crio.sock", "/var/run/crio/crio.sock"),
            ("/run/containerd/containerd.sock", "/run/containerd/containerd.sock"),
        ]
    return [
        ("/var/run/containerd/containerd.sock", "unix:///var/run/containerd/containerd.sock"),
        ("/var/run/crio/crio.sock", "unix:///var/run/crio/crio.sock"),
        ("/var/run/cri-dockerd.sock", "unix:///var/run/cri-dockerd.sock"),
    ]


def detect_cri_socket(minor: int, fallback: str) -> str:
    """kubeadm's choice of CRI socket when none is configured: the one runtime socket found,
    the fallback when none is, an error when several are (docker wins over containerd up to 1.23,
    as docker brings its own containerd)."""
    probe = host_probe()
    found: list[str] = []
    for path, endpoint in known_cri_sockets(minor):
        target = probe.path(path)
        if target.exists() and target.is_socket() and endpoint not in found:
            found.append(endpoint)
    if minor <= 23 and "/var/run/dockershim.sock" in found:
        found = [f for f in found if "containerd" not in f]
    if not found:
        return fallback
    if len(found) == 1:
        return found[0]
    if minor <= 23:
        raise KubeadmFailure(
            "Found multiple CRI sockets, please use --cri-socket to select one: " + ", ".join(found)
        )
    raise KubeadmFailure(
        "found multiple CRI endpoints on the host. Please define which one do you wish to use by "
        "setting the 'criSocket' field in the kubeadm configuration file: " + ", ".join(found)
    )


def run_preflight(checks: list[Check], ignored: list[str]) -> None:
    """Print warnings, fail on errors not ignored (kubeadm's RunChecks: names compared
    case-insensitively, `all` ignores every check)."""
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


def file_check(path: str) -> list[Check]:
    if host_path(path).exists():
        name = "FileAvailable-" + path.replace("/", "-")
        return [(name, f"{path} already exists", True)]
    return []


def dir_check(path: str) -> list[Check]:
    target = host_path(path)
    if target.is_dir() and any(target.iterdir()):
        return [("DirAvailable-" + path.replace("/", "-"), f"{path} is not empty", True)]
    return []


def port_check(port: int) -> list[Check]:
    return [(f"Port-{port}", f"Port {port} is in use", True)] if port_in_use(port) else []


def in_path_check(probe: HostProbe, executable: str, mandatory: bool) -> list[Check]:
    """InPathCheck: FileExisting-<name>, an error when mandatory, else a warning."""
    if probe.which(executable):
        return []
    return [(f"FileExisting-{executable}", f"{executable} not found in system path", mandatory)]


def file_content_check(probe: HostProbe, path: str) -> list[Check]:
    """FileContentCheck for "1" (the sysctls kubeadm wants on)."""
    name = "FileContent-" + path.replace("/", "-")
    text = probe.read(path)
    if text is None:
        return [(name, f"{path} does not exist", True)]
    if not text.startswith("1"):
        return [(name, f"{path} contents are not set to 1", True)]
    return []


def ipv4_checks(probe: HostProbe, minor: int) -> list[Check]:
    checks = file_content_check(probe, BRIDGE_NF) if minor <= 29 else []
    return checks + file_content_check(probe, IPV4_FORWARD)


def swap_check(probe: HostProbe, minor: int) -> list[Check]:
    if not probe.swap_lines():
        return []
    if minor <= 22:
        return [("Swap", "running with swap on is not supported. Please disable swap", True)]
    if minor <= 28:
        text = (
            "swap is enabled; production deployments should disable swap unless testing the "
            "NodeSwap feature gate of the kubelet"
        )
    elif minor <= 30:
        text = (
            "swap is supported for cgroup v2 only; the NodeSwap feature gate of the kubelet is "
            "beta but disabled by default"
        )
    else:
        text = (
            "swap is supported for cgroup v2 only. The kubelet must be properly configured to use "
            "swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/"
            "#swap-memory, or disable swap on the node"
        )
    return [("Swap", text, False)]


def cri_checks(probe: HostProbe, cri_socket: str, minor: int) -> list[Check]:
    """CRI, and for the dockershim socket Service-Docker and IsDockerSystemdCheck."""
    if minor <= 23 and is_docker_socket(cri_socket):
        checks: list[Check] = []
        code, output = probe.run(["docker", "info"])
        if code != 0:
            error = "exit status 1" if code != 127 else output
            shown = "" if code == 127 else output.strip()
            checks.append(
                ("CRI", f"container runtime is not running: output: {shown}, error: {error}", True)
            )
        exists, enabled, active = probe.service("docker")
        if not exists:
            checks.append(("Service-Docker", "docker service does not exist", False))
        else:
            if not enabled:
                checks.append(
                    (
                        "Service-Docker",
                        "docker service is not enabled, please run 'systemctl enable "
                        "docker.service'",
                        False,
                    )
                )
            if not active:
                checks.append(
                    (
                        "Service-Docker",
                        "docker service is not active, please run 'systemctl start docker.service'",
                        True,
                    )
                )
        if minor <= 21 and code == 0:
            _runtime, driver, _problem = probe.runtime_cgroup_driver(cri_socket)
            if driver and driver != "systemd":
                checks.append(
                    (
                        "IsDockerSystemdCheck",
                        f'detected "{driver}" as the Docker cgroup driver. The recommended driver '
                        'is "systemd". Please follow the guide at '
                        "https://kubernetes.io/docs/setup/cri/",
                        False,
                    )
                )
        return checks
    problem = probe.cri_problem(cri_socket)
    if problem is None:
        return []
    endpoint = cri_socket if cri_socket.startswith("unix://") else f"unix://{cri_socket}"
    grpc = (
        f'validate service connection: validate CRI v1 runtime API for endpoint "{endpoint}": '
        f'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while '
        f'dialing: {problem}"'
    )
    if minor >= 31:
        return [("CRI", f"container runtime is not running: {grpc}", True)]
    if probe.which("crictl") is None:
        return [
            (
                "CRI",
                'container runtime is not running: output: , error: exec: "crictl": executable '
                "file not found in $PATH",
                True,
            )
        ]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return [
        (
            "CRI",
            f'container runtime is not running: output: time="{stamp}" level=fatal '
            f'msg="{grpc}"\n, error: exit status 1',
            True,
        )
    ]


def common_checks(
    cri_socket: str, minor: int, kube_minor: int, with_ipv4: bool, is_init: bool
) -> list[Check]:
    """addCommonChecks (init's and join's shared checks), in kubeadm's order. kube_minor is the
    cluster's minor on init (conntrack's rule from 1.32 reads it), minor the kubeadm's."""
    probe = host_probe()
    checks: list[Check] = []
    if os.geteuid() != 0:
        checks.append(("IsPrivilegedUser", "user is not running as root", True))
    checks += cri_checks(probe, cri_socket, minor)
    docker = minor <= 23 and is_docker_socket(cri_socket)
    if minor <= 26:
        if not docker:
            checks += in_path_check(probe, "crictl", True)
        checks += ipv4_checks(probe, minor)
        checks += swap_check(probe, minor)
    else:
        checks += swap_check(probe, minor)
        if minor <= 31:
            checks += in_path_check(probe, "crictl", minor <= 30)
    if 18 <= minor <= 31 or (minor >= 32 and is_init and kube_minor < 32):
        checks += in_path_check(probe, "conntrack", True)
    for tool in ON_PATH_ERRORS:
        checks += in_path_check(probe, tool, True)
    for tool in ON_PATH_WARNINGS:
        checks += in_path_check(probe, tool, False)
    unit = host_path("/etc/systemd/system/kubelet.service")
    if not unit.exists() and not Path("/lib/systemd/system/kubelet.service").exists():
        checks.append(
            (
                "Service-Kubelet",
                "kubelet service is not enabled, please run 'systemctl enable kubelet.service'",
                False,
            )
        )
    checks += port_check(10250)
    if minor >= 27 and with_ipv4:
        checks += ipv4_checks(probe, minor)
    return checks


def resource_checks(minor: int) -> list[Check]:
    """NumCPU and (from 1.20) Mem: init's and a control-plane join's first checks."""
    probe = host_probe()
    checks: list[Check] = []
    cpus = probe.cpus()
    if cpus < CONTROL_PLANE_CPUS:
        checks.append(
            (
                "NumCPU",
                f"the number of available CPUs {cpus} is less than the required "
                f"{CONTROL_PLANE_CPUS}",
                True,
            )
        )
    if minor >= 20:
        mem = probe.mem_mb()
        if mem < CONTROL_PLANE_MEM_MB:
            checks.append(
                (
                    "Mem",
                    f"the system RAM ({mem} MB) is less than the minimum {CONTROL_PLANE_MEM_MB} MB",
                    True,
                )
            )
    return checks


def control_plane_ports(minor: int, bind_port: int) -> list[Check]:
    scheduler, controller_manager = (10251, 10252) if minor <= 16 else (10259, 10257)
    return port_check(bind_port) + port_check(scheduler) + port_check(controller_manager)


def _is_ipv4(text: str) -> bool:
    try:
        return ipaddress.ip_network(text.strip(), strict=False).version == 4
    except ValueError:
        return False


def init_preflight(plan: InitPlan) -> None:
    """`kubeadm init`'s checks (InitNodeChecks), in kubeadm's order."""
    out("[preflight] Running pre-flight checks")
    minor = kube_version().minor
    cluster = plan.cluster
    cluster_version = parse_kube_version(cluster.kubernetes_version or "")
    checks = resource_checks(minor) + control_plane_ports(minor, plan.bind_port)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        checks += file_check(f"{MANIFESTS}/{name}.yaml")
    candidates = [*cluster.service_subnet.split(","), *cluster.pod_subnet.split(",")]
    candidates.append(plan.advertise_address)
    with_ipv4 = any(_is_ipv4(item) for item in candidates if item.strip())
    checks += common_checks(
        plan.cri_socket,
        minor,
        cluster_version.minor if cluster_version else minor,
        with_ipv4,
        is_init=True,
    )
    checks += port_check(2379) + port_check(2380) + dir_check(ETCD_DIR)
    run_preflight(checks, plan.ignore_preflight)


def join_preflight(plan: JoinPlan) -> None:
    """`kubeadm join`'s checks (JoinNodeChecks): manifests dir, kubelet kubeconfigs, the common
    checks, the CA file on a worker."""
    out("[preflight] Running pre-flight checks")
    minor = kube_version().minor
    checks = dir_check(MANIFESTS)
    checks += file_check(f"{K8S_DIR}/kubelet.conf") + file_check(
        f"{K8S_DIR}/bootstrap-kubelet.conf"
    )
    host, _port = split_endpoint(plan.endpoint, 6443)
    checks += common_checks(plan.cri_socket, minor, minor, _is_ipv4(host), is_init=False)
    if not plan.control_plane:
        checks += file_check(f"{DEFAULT_CERT_DIR}/ca.crt")
    run_preflight(checks, plan.ignore_preflight)


def control_plane_join_preflight(plan: JoinPlan, cluster: ClusterConfigFields) -> None:
    """A control-plane join's further checks (InitNodeChecks for a secondary control plane);
    the cluster must have a controlPlaneEndpoint."""
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
    minor = kube_version().minor
    checks = resource_checks(minor) + control_plane_ports(minor, plan.bind_port)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        checks += file_check(f"{MANIFESTS}/{name}.yaml")
    checks += port_check(2379) + port_check(2380) + dir_check(ETCD_DIR)
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
