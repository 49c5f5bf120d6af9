"""Facts about one host, gathered with a single remote shell script that prints `key=value` lines.

Phases decide from these facts what is left to do, so a re-run does only the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Optional

from sealos import remote_paths as rp
from sealos.remote_paths import q

TOOLS = (
    "curl",
    "wget",
    "tar",
    "gzip",
    "systemctl",
    "sha256sum",
    "python3",
    "kubeadm",
    "kubectl",
    # kubeadm preflight's InPathChecks (see sealos.preconditions)
    "conntrack",
    "crictl",
    "ip",
    "iptables",
    "mount",
    "nsenter",
    # container runtimes (the service may be installed but stopped)
    "containerd",
    "crio",
    "dockerd",
)
# The CRI sockets kubeadm knows (sealos.preconditions.RUNTIMES); kept here so facts need no import.
CRI_SOCKETS = (
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/var/run/docker.sock",
    "/var/run/cri-dockerd.sock",
)


@dataclass
class HostFacts:
    """What one host is and what sealos already did there."""

    hostname: str = ""
    arch: str = ""
    os: str = ""
    kernel: str = ""
    uid: int = -1
    time: float = 0.0
    python3: Optional[tuple[int, int, int]] = None
    disk_free: int = 0  # bytes free under /root
    addresses: list[str] = field(default_factory=list)
    tools: set[str] = field(default_factory=set)
    package_sha256: Optional[str] = None  # of the package file on the host, if present
    package_ready: Optional[str] = None  # SHA-256 of the package that was unpacked and init.sh'ed
    started: bool = False  # our marker rp.MARK_STARTED: init/join started changing this host
    # Any of our markers (rp.SEALOS_MARKERS): sealos recorded that it started on this host, so
    # what kubeadm left here is an interrupted run of sealos. This is "recorded as started".
    sealos_started: bool = False
    kubelet_running: bool = False  # kubelet.service active, or a process named kubelet
    init_done: bool = False  # our marker: kubeadm init finished here
    join_done: bool = False  # our marker: kubeadm join finished here
    kubeadm_leftovers: list[str] = field(default_factory=list)
    hosts_lines: list[str] = field(default_factory=list)  # /etc/hosts lines naming the apiserver
    lvscare_sha256: Optional[str] = None
    lvscare_unit_sha256: Optional[str] = None
    lvscare_active: bool = False
    lvscare_manifest_sha256: Optional[str] = None
    kubeadm_config_sha256: Optional[str] = None
    # What kubeadm's preflight and the kubelet ask of a host (sealos.preconditions):
    cri_sockets: dict[str, bool] = field(default_factory=dict)  # socket -> a connect succeeded
    runtime_cgroup: dict[str, str] = field(default_factory=dict)  # containerd|docker -> driver
    swap_devices: int = 0  # lines of /proc/swaps after its header
    ip_forward: Optional[str] = None
    bridge_nf: Optional[str] = None  # net.bridge.bridge-nf-call-iptables; None: not there
    cpus: int = 0
    memory_kb: int = 0  # MemTotal
    cgroup_fs: str = ""  # file system type of /sys/fs/cgroup: cgroup2fs (v2), tmpfs (v1)

    def foreign_kubernetes(self) -> list[str]:
        """What shows a Kubernetes install sealos did not record as started here (kubeadm's
        files, a running kubelet, and none of our markers); empty when there is none."""
        if self.sealos_started:
            return []
        return self.kubeadm_leftovers + (["a running kubelet"] if self.kubelet_running else [])

    @property
    def python3_text(self) -> str:
        """python3's version as text, or 'none'."""
        return ".".join(map(str, self.python3)) if self.python3 else "none"


def gather_script(package_name: str, apiserver: str, package_size: Optional[int] = None) -> str:
    """The POSIX shell script that prints the facts; no secrets in it."""
    pkg = rp.package_file(package_name)
    # Hashing a 500 MB package costs seconds: skip it when the size already tells it differs.
    size_check = (
        f'[ "$(stat -c %s {q(pkg)} 2>/dev/null)" = {q(package_size)} ] && '
        if package_size is not None
        else ""
    )
    lines = [
        'echo "hostname=$(hostname 2>/dev/null || uname -n)"',
        'echo "arch=$(uname -m)"',
        'echo "kernel=$(uname -r)"',
        '( . /etc/os-release 2>/dev/null; echo "os=${PRETTY_NAME:-unknown}" )',
        'echo "uid=$(id -u)"',
        'echo "time=$(date +%s)"',
        "command -v python3 >/dev/null 2>&1 && "
        "v=$(python3 -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])' 2>/dev/null)"
        ' && echo "python3=$v"',
        "echo \"disk_free_kb=$(df -Pk /root 2>/dev/null | awk 'NR==2 {print $4}')\"",
        'ip -o addr show 2>/dev/null | awk \'{split($4, a, "/"); print "address=" a[1]}\'',
        size_check + _sha_fact("package_sha256", pkg),
        f"[ -f {q(rp.MARK_PACKAGE)} ] && [ -f {q(rp.INIT_SCRIPT)} ] && "
        f'echo "package_ready=$(cat {q(rp.MARK_PACKAGE)})"',
        f"[ -f {q(rp.MARK_STARTED)} ] && echo started=1",
        f"for f in {' '.join(q(p) for p in rp.SEALOS_MARKERS)}; "
        'do [ -f "$f" ] && { echo sealos_started=1; break; }; done',
        "{ systemctl is-active --quiet kubelet.service 2>/dev/null || "
        "grep -qsx kubelet /proc/[0-9]*/comm; } && echo kubelet_running=1",
        f"[ -f {q(rp.MARK_INIT)} ] && echo init_done=1",
        f"[ -f {q(rp.MARK_JOIN)} ] && echo join_done=1",
        f"for f in {' '.join(q(p) for p in rp.KUBEADM_LEFTOVERS)}; "
        'do [ -e "$f" ] && echo leftover=$f; done',
        f"grep -F -- {q(apiserver)} {q(rp.HOSTS_FILE)} 2>/dev/null | sed 's/^/hosts_line=/'",
        _sha_fact("lvscare_sha256", rp.LVSCARE_BIN),
        _sha_fact("lvscare_unit_sha256", rp.LVSCARE_UNIT),
        "systemctl is-active --quiet lvscare.service 2>/dev/null && echo lvscare_active=1",
        _sha_fact("lvscare_manifest_sha256", rp.LVSCARE_MANIFEST),
        _sha_fact("kubeadm_config_sha256", rp.KUBEADM_CONFIG),
        runtime_script(),
    ]
    return "\n".join(lines) + "\n"


# A connect to a unix socket proves something listens (a socket file can outlive its server).
_CONNECT = (
    "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(3)\ns.connect(sys.argv[1])\n"
)


def runtime_script() -> str:
    """The lines that read what kubeadm's preflight and the kubelet ask of a host: the CRI sockets
    that answer, the runtimes' cgroup drivers, swap, sysctls, CPUs, memory, the cgroup version
    and the tools. Run again after the package's init.sh, which may have changed them."""
    lines = [
        f'for s in {" ".join(q(p) for p in CRI_SOCKETS)}; do [ -S "$s" ] || continue; '
        f'if command -v python3 >/dev/null 2>&1; then python3 -c {q(_CONNECT)} "$s" '
        '>/dev/null 2>&1 && echo "cri_socket=$s=1" || echo "cri_socket=$s=0"; '
        'else echo "cri_socket=$s=1"; fi; done',
        # containerd's default (no SystemdCgroup line) is cgroupfs.
        "command -v containerd >/dev/null 2>&1 && c=$(containerd config dump 2>/dev/null) && "
        "{ echo \"$c\" | grep -m1 -E '^[[:space:]]*SystemdCgroup[[:space:]]*=' || "
        "echo 'SystemdCgroup = false'; } | sed 's/^/containerd_cgroup=/'",
        "command -v docker >/dev/null 2>&1 && "
        "d=$(docker info --format '{{.CgroupDriver}}' 2>/dev/null) && echo \"docker_cgroup=$d\"",
        '[ -r /proc/swaps ] && echo "swap_devices=$(tail -n +2 /proc/swaps | grep -c .)"',
        "[ -r /proc/sys/net/ipv4/ip_forward ] && "
        'echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"',
        "[ -r /proc/sys/net/bridge/bridge-nf-call-iptables ] && "
        'echo "bridge_nf=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables)"',
        'echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"',
        "echo \"memory_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)\"",
        'echo "cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"',
        f"for t in {' '.join(TOOLS)}; do command -v $t >/dev/null 2>&1 && echo tool=$t; done",
        "true",
    ]
    return "\n".join(lines)


def _sha_fact(key: str, path: str) -> str:
    return f"[ -f {q(path)} ] && echo \"{key}=$(sha256sum {q(path)} 2>/dev/null | cut -d' ' -f1)\""


def key_values(output: str) -> Iterator[tuple[str, str]]:
    """The `key=value` lines of a fact script's output (other lines are skipped)."""
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            yield key, value


def parse(output: str) -> HostFacts:
    """Turn the script's `key=value` lines into HostFacts."""
    f = HostFacts()
    for key, raw in key_values(output):
        value = raw.strip() if key != "hosts_line" else raw
        if key == "hostname":
            f.hostname = value.lower()
        elif key == "arch":
            f.arch = value
        elif key == "kernel":
            f.kernel = value
        elif key == "os":
            f.os = value
        elif key == "uid":
            f.uid = _int(value, -1)
        elif key == "time":
            f.time = float(_int(value, 0))
        elif key == "python3":
            f.python3 = _version(value)
        elif key == "disk_free_kb":
            f.disk_free = _int(value, 0) * 1024
        elif key == "tool":
            f.tools.add(value)
        elif key == "address":
            if value and value not in f.addresses:
                f.addresses.append(value)
        elif key == "package_sha256":
            f.package_sha256 = value or None
        elif key == "package_ready":
            f.package_ready = value or None
        elif key == "started":
            f.started = True
        elif key == "sealos_started":
            f.sealos_started = True
        elif key == "kubelet_running":
            f.kubelet_running = True
        elif key == "init_done":
            f.init_done = True
        elif key == "join_done":
            f.join_done = True
        elif key == "leftover":
            f.kubeadm_leftovers.append(value)
        elif key == "hosts_line":
            f.hosts_lines.append(value)
        elif key == "lvscare_sha256":
            f.lvscare_sha256 = value or None
        elif key == "lvscare_unit_sha256":
            f.lvscare_unit_sha256 = value or None
        elif key == "lvscare_active":
            f.lvscare_active = True
        elif key == "lvscare_manifest_sha256":
            f.lvscare_manifest_sha256 = value or None
        elif key == "kubeadm_config_sha256":
            f.kubeadm_config_sha256 = value or None
        elif key == "cri_socket":
            path, _, ok = value.rpartition("=")
            if path:
                f.cri_sockets[path] = ok == "1"
        elif key in ("containerd_cgroup", "docker_cgroup"):
            driver = _driver(value)
            if driver:
                f.runtime_cgroup[key.removesuffix("_cgroup")] = driver
        elif key == "swap_devices":
            f.swap_devices = _int(value, 0)
        elif key == "ip_forward":
            f.ip_forward = value or None
        elif key == "bridge_nf":
            f.bridge_nf = value or None
        elif key == "cpus":
            f.cpus = _int(value, 0)
        elif key == "memory_kb":
            f.memory_kb = _int(value, 0)
        elif key == "cgroup_fs":
            f.cgroup_fs = value
    return f


def _driver(text: str) -> str:
    """`SystemdCgroup = true` (containerd) or `systemd`/`cgroupfs` (docker) as a driver name."""
    text = text.strip().lower()
    if text.startswith("systemdcgroup"):
        return "systemd" if text.split("=", 1)[-1].strip() == "true" else "cgroupfs"
    return text if text in ("systemd", "cgroupfs") else ""


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _version(text: str) -> Optional[tuple[int, int, int]]:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return (int(parts[0]), int(parts[1]), int(parts[2]))
