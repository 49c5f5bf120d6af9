"""Stand-in kubeadm preflight and kubelet start-up checks at each release boundary, on a host laid
out under a test root (hostprobe's seam) with a containerd socket answering like gRPC."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sealos_lab.package.standin.hostprobe import HostProbe, write_prepared_host
from sealos_lab.package.standin.kubeadm import common as kubeadm_common
from sealos_lab.package.standin.kubeadm.common import KubeadmFailure
from sealos_lab.package.standin.kubeadm.kubelet_start import kubelet_config_yaml
from sealos_lab.package.standin.kubeadm.plans import ClusterConfigFields
from sealos_lab.package.standin.kubeadm.preflight import (
    common_checks,
    control_plane_ports,
    detect_cri_socket,
    resource_checks,
    run_preflight,
)
from sealos_lab.package.standin.kubelet_preconditions import (
    kubelet_runtime_endpoint,
    kubelet_startup_problem,
)
from sealos_lab.package.standin.versions import KubeVersion
from sealos_lab.package.testbed import CRI_SOCKET, CriSocketServer

CONTAINERD = "unix:///run/containerd/containerd.sock"
DOCKERSHIM = "/var/run/dockershim.sock"
ALL_MINORS = range(14, 34)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A test root that meets every precondition, containerd answering on its socket."""
    root = tmp_path / "root"
    write_prepared_host(root, cgroup_driver="systemd")
    unit = root / "etc/systemd/system/kubelet.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\n")
    monkeypatch.setenv("SEALOS_STANDIN_ROOT", str(root))
    monkeypatch.setenv("SEALOS_STANDIN_NO_SYSTEMD", "1")
    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    server = CriSocketServer(Path(str(root) + CRI_SOCKET))
    try:
        yield root
    finally:
        server.close()


def found(checks: list[tuple[str, str, bool]]) -> dict[str, tuple[str, bool]]:
    """name -> (message, is_error), ports left out (this machine's may be taken)."""
    return {name: (text, error) for name, text, error in checks if not name.startswith("Port-")}


def common(minor: int, cri: str = CONTAINERD, ipv4: bool = True, init: bool = True) -> dict:
    return found(common_checks(cri, minor, minor, ipv4, is_init=init))


def remove(root: Path, tool: str) -> None:
    (root / "usr/sbin" / tool).unlink()


@pytest.mark.parametrize("minor", ALL_MINORS)
def test_a_prepared_host_passes_every_check(host: Path, minor: int) -> None:
    assert common(minor) == {}
    assert common(minor, init=False, ipv4=False) == {}
    assert found(resource_checks(minor)) == {}


@pytest.mark.parametrize("minor", [14, 23, 24, 30])
def test_cri_check_fails_when_the_socket_does_not_answer(host: Path, minor: int) -> None:
    (host / CRI_SOCKET.lstrip("/")).unlink()
    text, error = common(minor)["CRI"]
    assert error
    assert text.startswith("container runtime is not running: output: time=")
    assert "dial unix /run/containerd/containerd.sock: connect: no such file or directory" in text
    assert text.endswith(", error: exit status 1")


def test_cri_check_from_1_31_asks_the_runtime_itself(host: Path) -> None:
    (host / CRI_SOCKET.lstrip("/")).unlink()
    remove(host, "crictl")
    text, error = common(31)["CRI"]
    assert error
    assert text.startswith(
        "container runtime is not running: validate service connection: validate CRI v1 runtime "
        'API for endpoint "unix:///run/containerd/containerd.sock"'
    )


def test_cri_check_refused_connection(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = host / CRI_SOCKET.lstrip("/")
    path.unlink()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    monkeypatch.chdir(path.parent)  # bound by its short name: tmp_path can pass AF_UNIX's 108 bytes
    stale.bind(path.name)
    stale.close()  # a socket file nobody listens on: a stopped runtime
    assert "connect: connection refused" in common(28)["CRI"][0]


@pytest.mark.parametrize(
    "minor,expected",
    [(17, None), (18, True), (23, True), (28, True), (31, True), (32, None)],
)
def test_conntrack(host: Path, minor: int, expected: object) -> None:
    remove(host, "conntrack")
    got = common(minor).get("FileExisting-conntrack")
    assert (got[1] if got else None) == expected
    if got:
        assert got[0] == "conntrack not found in system path"


def test_conntrack_on_1_32_only_for_an_older_cluster_on_init(host: Path) -> None:
    remove(host, "conntrack")
    older = found(common_checks(CONTAINERD, 32, 31, True, is_init=True))
    assert older["FileExisting-conntrack"][1] is True
    assert "FileExisting-conntrack" not in common(32, init=False)


@pytest.mark.parametrize(
    "minor,cri,expected",
    [
        (14, CONTAINERD, True),
        (23, CONTAINERD, True),
        (24, CONTAINERD, True),
        (30, CONTAINERD, True),
        (31, CONTAINERD, False),
        (32, CONTAINERD, None),
    ],
)
def test_crictl(host: Path, minor: int, cri: str, expected: object) -> None:
    remove(host, "crictl")
    got = common(minor, cri).get("FileExisting-crictl")
    assert (got[1] if got else None) == expected


@pytest.mark.parametrize("minor", [14, 20, 28, 31, 33])
def test_tools_errors_and_warnings(host: Path, minor: int) -> None:
    for tool in ("ip", "iptables", "mount", "nsenter", "ebtables", "ethtool", "socat", "tc"):
        remove(host, tool)
    got = common(minor)
    for tool in ("ip", "iptables", "mount", "nsenter"):
        assert got[f"FileExisting-{tool}"] == (f"{tool} not found in system path", True)
    for tool in ("ebtables", "ethtool", "socat", "tc"):
        assert got[f"FileExisting-{tool}"] == (f"{tool} not found in system path", False)


def swap_on(root: Path) -> None:
    swaps = root / "proc/swaps"
    swaps.write_text(swaps.read_text() + "/swapfile  file  1048572  0  -2\n")


@pytest.mark.parametrize("minor,is_error", [(14, True), (22, True), (23, False), (31, False)])
def test_swap(host: Path, minor: int, is_error: bool) -> None:
    swap_on(host)
    text, error = common(minor)["Swap"]
    assert error is is_error
    if minor <= 22:
        assert text == "running with swap on is not supported. Please disable swap"


@pytest.mark.parametrize("minor,checked", [(14, True), (26, True), (29, True), (30, False)])
def test_bridge_nf_call_iptables(host: Path, minor: int, checked: bool) -> None:
    (host / "proc/sys/net/bridge/bridge-nf-call-iptables").unlink()
    name = "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables"
    got = common(minor).get(name)
    if checked:
        assert got == ("/proc/sys/net/bridge/bridge-nf-call-iptables does not exist", True)
    else:
        assert got is None


@pytest.mark.parametrize("minor", [14, 24, 27, 33])
def test_ip_forward(host: Path, minor: int) -> None:
    (host / "proc/sys/net/ipv4/ip_forward").write_text("0\n")
    name = "FileContent--proc-sys-net-ipv4-ip_forward"
    assert common(minor)[name] == ("/proc/sys/net/ipv4/ip_forward contents are not set to 1", True)
    # From 1.27 a join checks it only when the discovery endpoint is an IPv4 address.
    joined_by_name = common(minor, init=False, ipv4=False)
    assert (name in joined_by_name) is (minor < 27)


@pytest.mark.parametrize("minor", [14, 19, 20, 31])
def test_cpus_and_memory(host: Path, minor: int) -> None:
    (host / "sys/devices/system/cpu/online").write_text("0\n")
    (host / "proc/meminfo").write_text("MemTotal:         999424 kB\n")
    got = found(resource_checks(minor))
    assert got["NumCPU"] == ("the number of available CPUs 1 is less than the required 2", True)
    if minor >= 20:
        assert got["Mem"] == ("the system RAM (976 MB) is less than the minimum 1700 MB", True)
    else:
        assert "Mem" not in got


def test_control_plane_ports_by_release() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("0.0.0.0", 10259))
    except OSError:
        pytest.fail("port 10259 is taken on this machine")
    listener.listen(1)
    try:
        assert [c[0] for c in control_plane_ports(17, 16443)] == ["Port-10259"]
        assert control_plane_ports(16, 16443) == []
    finally:
        listener.close()


def test_docker_socket_up_to_1_23(host: Path) -> None:
    assert common(23, DOCKERSHIM) == {}  # the prepared host has docker too
    remove(host, "docker")
    services = host / "run/sealos-lab/services.json"
    services.write_text("{}")
    got = common(23, DOCKERSHIM)
    assert got["CRI"] == (
        'container runtime is not running: output: , error: exec: "docker": executable file not '
        "found in $PATH",
        True,
    )
    assert got["Service-Docker"] == ("docker service does not exist", False)
    assert "FileExisting-crictl" not in got  # not asked with docker
    docker = host / "usr/sbin/docker"
    docker.write_text("#!/bin/sh\necho cgroupfs\n")
    docker.chmod(0o755)
    services.write_text(json.dumps({"docker": {"enabled": True, "active": False}}))
    got = common(21, DOCKERSHIM)
    assert "CRI" not in got
    assert got["Service-Docker"] == (
        "docker service is not active, please run 'systemctl start docker.service'",
        True,
    )
    assert got["IsDockerSystemdCheck"][1] is False
    assert got["IsDockerSystemdCheck"][0].startswith('detected "cgroupfs" as the Docker cgroup')
    assert "IsDockerSystemdCheck" not in common(22, DOCKERSHIM)


def test_ignore_preflight_errors_case_insensitive_and_all(capsys: pytest.CaptureFixture) -> None:
    checks = [("Swap", "swap on", True), ("NumCPU", "1 CPU", True)]
    with pytest.raises(KubeadmFailure) as failed:
        run_preflight(checks, ["swap"])
    assert "[ERROR NumCPU]: 1 CPU" in str(failed.value)
    assert "[ERROR Swap]" not in str(failed.value)
    assert "[WARNING Swap]: swap on" in capsys.readouterr().err
    run_preflight(checks, ["ALL"])


def test_cri_socket_detection(host: Path) -> None:
    assert detect_cri_socket(24, "fallback") == "unix:///var/run/containerd/containerd.sock"
    assert detect_cri_socket(20, "fallback") == "/run/containerd/containerd.sock"
    crio = host / "run/crio/crio.sock"
    crio.parent.mkdir(parents=True)
    extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    extra.bind(str(crio))
    try:
        with pytest.raises(KubeadmFailure, match="found multiple CRI endpoints on the host"):
            detect_cri_socket(28, "fallback")
        with pytest.raises(KubeadmFailure, match="Found multiple CRI sockets"):
            detect_cri_socket(20, "fallback")
    finally:
        extra.close()
    (host / CRI_SOCKET.lstrip("/")).unlink()
    crio.unlink()
    assert detect_cri_socket(28, "fallback") == "fallback"


@pytest.mark.parametrize(
    "minor,user,expected",
    [(21, {}, None), (22, {}, "systemd"), (28, {"cgroupDriver": "cgroupfs"}, "cgroupfs")],
)
def test_kubelet_config_cgroup_driver(
    monkeypatch: pytest.MonkeyPatch, minor: int, user: dict, expected: object
) -> None:
    monkeypatch.setattr(kubeadm_common, "PACKAGE_VERSION", f"v1.{minor}.3")
    config = yaml.safe_load(kubelet_config_yaml(ClusterConfigFields(), user))
    assert config.get("cgroupDriver") == expected


def kv(minor: int) -> KubeVersion:
    return KubeVersion(1, minor, 0)


def test_kubelet_exits_with_swap_on_unless_fail_swap_on_is_false(host: Path) -> None:
    swap_on(host)
    problem = kubelet_startup_problem({}, {"cgroupDriver": "systemd"}, kv(28))
    assert problem is not None
    assert problem.startswith(
        "failed to run Kubelet: running with swap on is not supported, please disable swap! or "
        "set --fail-swap-on flag to false. /proc/swaps contained: [Filename"
    )
    assert "/swapfile" in problem
    assert (
        kubelet_startup_problem({}, {"cgroupDriver": "systemd", "failSwapOn": False}, kv(28))
        is None
    )
    assert (
        kubelet_startup_problem({"fail-swap-on": "false"}, {"cgroupDriver": "systemd"}, kv(28))
        is None
    )


def test_kubelet_exits_without_a_runtime(host: Path) -> None:
    (host / CRI_SOCKET.lstrip("/")).unlink()
    problem = kubelet_startup_problem({}, {"cgroupDriver": "systemd"}, kv(28))
    assert problem is not None
    assert problem.startswith(
        "failed to run Kubelet: validate service connection: validate CRI v1 runtime API for "
        'endpoint "unix:///run/containerd/containerd.sock"'
    )


def test_kubelet_exits_on_a_cgroup_driver_other_than_containerds(host: Path) -> None:
    write_prepared_host(host, cgroup_driver="cgroupfs")
    problem = kubelet_startup_problem({}, {"cgroupDriver": "systemd"}, kv(28))
    assert problem is not None
    assert problem.startswith(
        'failed to run Kubelet: misconfiguration: kubelet cgroup driver: "systemd" is different '
        'from the containerd cgroup driver: "cgroupfs"'
    )
    assert kubelet_startup_problem({}, {"cgroupDriver": "cgroupfs"}, kv(28)) is None
    assert kubelet_startup_problem({}, {}, kv(28)) is None  # the kubelet's default: cgroupfs


def test_kubelet_docker_driver_mismatch_wording(host: Path) -> None:
    docker = host / "usr/sbin/docker"
    docker.write_text("#!/bin/sh\necho cgroupfs\n")
    docker.chmod(0o755)
    problem = kubelet_startup_problem({"cgroup-driver": "systemd"}, {}, kv(20))
    assert problem == (
        'failed to run Kubelet: misconfiguration: kubelet cgroup driver: "systemd" is different '
        'from docker cgroup driver: "cgroupfs"'
    )


def test_kubelet_runtime_endpoint_defaults() -> None:
    assert kubelet_runtime_endpoint({}, {}, kv(23)) == "unix:///var/run/dockershim.sock"
    remote = {"container-runtime": "remote", "container-runtime-endpoint": CONTAINERD}
    assert kubelet_runtime_endpoint(remote, {}, kv(23)) == CONTAINERD
    assert kubelet_runtime_endpoint({}, {}, kv(24)) == CONTAINERD
    other = "unix:///var/run/crio/crio.sock"
    assert kubelet_runtime_endpoint({}, {"containerRuntimeEndpoint": other}, kv(28)) == other


def test_probe_reads_the_real_host_without_a_root() -> None:
    probe = HostProbe("")
    assert probe.cpus() >= 1
    assert probe.mem_mb() > 0
    assert probe.which("sh")
