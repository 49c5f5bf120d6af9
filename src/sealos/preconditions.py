"""What a host must have for kubeadm and the kubelet of a given Kubernetes version, in one place.

Each rule below is kubeadm's own preflight check (cmd/kubeadm/app/preflight/checks.go and
checks_linux.go) or a kubelet start-up condition, with the versions it applies to; docs/
host-preconditions.md is the table of them with their sources. sealos asks them twice:
- before anything changes (`before_change`): what the package cannot fix: host tools, CPUs and
  memory of control-plane hosts, the cgroup version, and a container runtime when the package
  brings none;
- after the package's init.sh ran (`after_prepare`): what init.sh should have set up (swap off,
  forwarding, bridge netfilter, crictl) and the runtime's socket and cgroup driver, which decide
  the CRI socket and the kubelet's cgroup driver sealos renders.
Pure functions over facts: each problem is one sentence naming the host and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sealos.facts import HostFacts
from sealos.kubeversion import KubeVersion

MIN_CPUS = 2  # kubeadm NumCPUCheck, init and control-plane join
MIN_MEMORY_MB = 1700  # kubeadm MemCheck (from 1.20), init and control-plane join
MEMORY_CHECK_SINCE = 20
CGROUP_V2_SINCE = 25  # kubelet cgroup v2 support GA
CONNTRACK = (18, 31)  # mandatory from 1.18; kube-proxy stopped needing it in 1.32
CRICTL_REQUIRED = (24, 30)  # mandatory from 1.24 (dockershim gone); a warning from 1.31
BRIDGE_NF_UNTIL = 29  # FileContent--proc-sys-net-bridge-bridge-nf-call-iptables dropped in 1.30
DOCKERSHIM_UNTIL = 23

# Tools kubeadm's preflight requires on every version (InPathCheck, mandatory), and the Debian
# package that brings each.
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "iptables": "iptables",
    "mount": "mount",
    "nsenter": "util-linux",
}


@dataclass(frozen=True)
class Runtime:
    """A container runtime kubeadm knows by its socket."""

    name: str
    socket: str  # the path that must answer
    cri_path: str  # criSocket as a path (kubeadm before 1.24)
    driver_of: str  # which fact holds its cgroup driver: containerd | docker | ""


CONTAINERD = Runtime(
    "containerd", "/run/containerd/containerd.sock", "/run/containerd/containerd.sock", "containerd"
)
CRIO = Runtime("cri-o", "/var/run/crio/crio.sock", "/var/run/crio/crio.sock", "")
DOCKERSHIM = Runtime(
    "docker (dockershim)", "/var/run/docker.sock", "/var/run/dockershim.sock", "docker"
)
CRI_DOCKERD = Runtime(
    "cri-dockerd", "/var/run/cri-dockerd.sock", "/var/run/cri-dockerd.sock", "docker"
)
RUNTIMES = (CONTAINERD, CRIO, DOCKERSHIM, CRI_DOCKERD)
# The sockets the fact script probes (each once).
PROBED_SOCKETS = tuple(dict.fromkeys(r.socket for r in RUNTIMES))


def known_runtimes(version: KubeVersion) -> tuple[Runtime, ...]:
    """kubeadm's auto-detection list for this version (dockershim until 1.23, cri-dockerd after)."""
    if version.minor <= DOCKERSHIM_UNTIL:
        return (DOCKERSHIM, CONTAINERD, CRIO)
    return (CONTAINERD, CRIO, CRI_DOCKERD)


def cri_path(socket: str) -> str:
    """A CRI endpoint as a plain path (`unix:///run/x.sock` -> `/run/x.sock`)."""
    return socket.removeprefix("unix://")


def cri_socket_value(version: KubeVersion, socket: str) -> str:
    """criSocket in the form the version wants: a path until 1.23, a unix:// URL from 1.24."""
    path = cri_path(socket)
    return path if version.minor <= DOCKERSHIM_UNTIL else f"unix://{path}"


def _same_socket(a: str, b: str) -> bool:
    # /var/run is a link to /run on every systemd host.
    def norm(s: str) -> str:
        p = cri_path(s)
        return p.replace("/var/run/", "/run/", 1) if p.startswith("/var/run/") else p

    return norm(a) == norm(b)


def runtime_for(socket: str) -> Optional[Runtime]:
    """The known runtime whose criSocket (or socket) this is."""
    for r in RUNTIMES:
        if _same_socket(socket, r.cri_path) or _same_socket(socket, r.socket):
            return r
    return None


def answers(f: HostFacts, socket: str) -> bool:
    """The host's fact script connected to `socket` (dockershim: to docker's own socket)."""
    r = runtime_for(socket)
    probe = r.socket if r is not None else cri_path(socket)
    return any(_same_socket(probe, s) and ok for s, ok in f.cri_sockets.items())


@dataclass(frozen=True)
class Choice:
    """The CRI socket for one host, or why there is none."""

    socket: Optional[str]  # criSocket as the version wants it
    runtime: Optional[Runtime]
    problem: str = ""


def choose_runtime(name: str, version: KubeVersion, f: HostFacts, wanted: Optional[str]) -> Choice:
    """The runtime kubeadm will use on the host: `wanted` (--cri-socket or the kubeadm config's
    criSocket) when given, else the one known runtime that answers (kubeadm's own detection,
    which fails when it finds several)."""
    if wanted:
        runtime = runtime_for(wanted)
        if not answers(f, wanted):
            return Choice(
                None,
                runtime,
                f"{name}: nothing answers on the CRI socket {cri_path(wanted)}; start the "
                "container runtime there, or name the one it runs with --cri-socket.",
            )
        return Choice(cri_socket_value(version, wanted), runtime)
    found = [r for r in known_runtimes(version) if answers(f, r.socket)]
    if len(found) == 1:
        return Choice(cri_socket_value(version, found[0].cri_path), found[0])
    if found:
        names = ", ".join(f"{r.name} ({r.cri_path})" for r in found)
        return Choice(
            None,
            None,
            f"{name}: several container runtimes answer ({names}); choose one with --cri-socket.",
        )
    hint = ""
    if version.minor > DOCKERSHIM_UNTIL and answers(f, DOCKERSHIM.socket):
        hint = f" (docker answers, but Kubernetes {version} needs cri-dockerd in front of it)"
    else:
        installed = [s for s in ("containerd", "crio", "dockerd") if s in f.tools]
        if installed:
            service = {"dockerd": "docker"}.get(installed[0], installed[0])
            hint = (
                f" ({installed[0]} is installed but does not answer: "
                f"systemctl enable --now {service})"
            )
    checked = ", ".join(r.socket for r in known_runtimes(version))
    return Choice(
        None,
        None,
        f"{name}: no container runtime answers{hint} (looked for {checked}); install and start "
        "one (e.g. apt-get install containerd), or use a package that brings its own.",
    )


def cgroup_driver(f: HostFacts, runtime: Optional[Runtime]) -> Optional[str]:
    """The cgroup driver the runtime uses (systemd or cgroupfs), when the host told it."""
    if runtime is None or not runtime.driver_of:
        return None
    return f.runtime_cgroup.get(runtime.driver_of)


def before_change(
    name: str,
    version: KubeVersion,
    role: str,
    f: HostFacts,
    package_runtime: Optional[bool],
    wanted_socket: Optional[str],
) -> list[str]:
    """What the package cannot fix. `package_runtime`: the package brings a container runtime
    (True), brings none (False), or is not known yet (None, a --pkg-url package)."""
    problems = []
    if f.cgroup_fs == "cgroup2fs" and version.minor < CGROUP_V2_SINCE:
        problems.append(
            f"{name}: the kubelet of Kubernetes {version} cannot run on cgroup v2, which this "
            f"host runs (support came in v1.{CGROUP_V2_SINCE}); boot it with "
            "systemd.unified_cgroup_hierarchy=0 on the kernel command line, or install "
            f"v1.{CGROUP_V2_SINCE} or newer."
        )
    if role == "master":
        if 0 < f.cpus < MIN_CPUS:
            problems.append(
                f"{name}: kubeadm needs {MIN_CPUS} CPUs on a control-plane host and this one has "
                f"{f.cpus}; give it more CPUs, or add it as a --node."
            )
        memory_mb = f.memory_kb // 1024
        if version.minor >= MEMORY_CHECK_SINCE and 0 < memory_mb < MIN_MEMORY_MB:
            problems.append(
                f"{name}: kubeadm needs {MIN_MEMORY_MB} MB of memory on a control-plane host "
                f"and this one has {memory_mb} MB; give it more memory, or add it as a --node."
            )
    missing = {t: p for t, p in REQUIRED_TOOLS.items() if t not in f.tools}
    if CONNTRACK[0] <= version.minor <= CONNTRACK[1] and "conntrack" not in f.tools:
        missing["conntrack"] = "conntrack"
    if missing:
        debs = " ".join(dict.fromkeys(missing.values()))
        problems.append(
            f"{name}: {', '.join(missing)} not found, which kubeadm {version} requires; install "
            f"them (Debian/Ubuntu: apt-get install {debs})."
        )
    if package_runtime is False:
        choice = choose_runtime(name, version, f, wanted_socket)
        if choice.problem:
            problems.append(choice.problem)
    return problems


def after_prepare(name: str, version: KubeVersion, f: HostFacts) -> list[str]:
    """What the package's init.sh should have left in place before kubeadm runs."""
    problems = []
    if f.swap_devices > 0:
        problems.append(
            f"{name}: swap is still on after the package's init.sh ({f.swap_devices} swap "
            "device(s) in /proc/swaps) and the kubelet refuses to start with it; turn it off "
            "(swapoff -a) and remove it from /etc/fstab."
        )
    if f.ip_forward is not None and f.ip_forward != "1":
        problems.append(
            f"{name}: net.ipv4.ip_forward is {f.ip_forward}, kubeadm requires 1; set it "
            "(sysctl -w net.ipv4.ip_forward=1, and in /etc/sysctl.d)."
        )
    if version.minor <= BRIDGE_NF_UNTIL and f.bridge_nf != "1":
        state = "missing (br_netfilter not loaded)" if f.bridge_nf is None else f.bridge_nf
        problems.append(
            f"{name}: net.bridge.bridge-nf-call-iptables is {state}, kubeadm {version} requires "
            "1; load br_netfilter (modprobe br_netfilter, and in /etc/modules-load.d) and set it."
        )
    low, high = CRICTL_REQUIRED
    if low <= version.minor <= high and "crictl" not in f.tools:
        problems.append(
            f"{name}: crictl not found, which kubeadm {version} requires; use a package that "
            "brings it (kube/bin/crictl) or install cri-tools."
        )
    return problems


def driver_problems(
    drivers: dict[str, Optional[str]], expected: Optional[str], source: str
) -> list[str]:
    """Hosts whose runtime uses another cgroup driver than the cluster's kubelets (`expected`,
    from `source`): their kubelet would fail. `drivers`: host name -> its runtime's driver."""
    if expected is None:
        return []
    return [
        f"{name}: its container runtime uses the {driver} cgroup driver but the cluster's "
        f"kubelets use {expected} ({source}); configure the runtime for {expected} "
        "(containerd: SystemdCgroup in /etc/containerd/config.toml) and restart it."
        for name, driver in drivers.items()
        if driver is not None and driver != expected
    ]
