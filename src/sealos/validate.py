"""Validation before anything changes: every problem is one sentence naming the host and the fix,
and all problems are listed at once. Pure functions over the spec and the gathered facts.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

import yaml

from sealos.addresses import HostAddress, find_duplicates
from sealos.etc_hosts import resolves_to
from sealos.facts import HostFacts
from sealos.package import PackageInfo, host_arch
from sealos.spec import ClusterSpec

MIN_NODE_PYTHON = (3, 9)
MIN_FREE_BYTES = 200 * 1024**2
URL_PACKAGE_FREE_BYTES = 1024**3  # with --pkg-url the size is unknown before download
CLOCK_SKEW_WARN = 120.0
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


@dataclass
class HostView:
    """One host as validation sees it: its role, the IP sealos uses, and its facts."""

    address: HostAddress
    role: str  # "master" or "node"
    ip: str
    facts: HostFacts


def spec_problems(spec: ClusterSpec) -> list[str]:
    """Problems visible without connecting: missing flags, bad addresses, overlapping ranges."""
    problems: list[str] = []
    if not spec.masters:
        problems.append("no master given; list at least one with --master IP.")
    if spec.version is None:
        problems.append("no Kubernetes version given; add --version, e.g. --version v1.14.1.")
    problems += _package_problems(spec)
    for h in find_duplicates(spec.masters):
        problems.append(f"{h} is listed more than once as --master; list each host once.")
    for h in find_duplicates(spec.nodes):
        problems.append(f"{h} is listed more than once as --node; list each host once.")
    node_keys = {n.key for n in spec.nodes}
    for m in spec.masters:
        if m.key in node_keys:
            problems.append(
                f"{m} is listed both as --master and as --node; "
                "a host is either a master or a node."
            )
    problems += _network_problems(spec)
    if not _DNS_NAME.match(spec.apiserver):
        problems.append(
            f"--apiserver {spec.apiserver!r} is not a valid DNS name; "
            "use e.g. apiserver.cluster.local."
        )
    if spec.kubeadm_config is not None:
        problems += _kubeadm_config_problems(spec)
    key = spec.credentials.key_path
    if key is not None and not key.is_file():
        problems.append(f"the SSH key file {key} does not exist; check --pk.")
    return problems


def _package_problems(spec: ClusterSpec) -> list[str]:
    if spec.pkg is None and not spec.pkg_url:
        return ["no offline package given; add --pkg FILE or --pkg-url URL."]
    if spec.pkg is not None and spec.pkg_url:
        return ["both --pkg and --pkg-url are given; use one of them."]
    problems = []
    if spec.pkg is not None and not spec.pkg.is_file():
        problems.append(f"the package file {spec.pkg} does not exist; check --pkg.")
    if spec.pkg_url and not re.match(r"^(https?|ftp)://[^\s/]+", spec.pkg_url):
        problems.append(
            f"--pkg-url {spec.pkg_url!r} is not an http(s) URL; give e.g. http://10.0.0.1/kube1.14.1.tar.gz."
        )
    if spec.pkg_sha256 and not re.fullmatch(r"[0-9a-f]{64}", spec.pkg_sha256):
        problems.append("--pkg-sha256 must be 64 hexadecimal digits (the output of sha256sum).")
    return problems


def _network_problems(spec: ClusterSpec) -> list[str]:
    problems: list[str] = []
    try:
        vip = ipaddress.ip_address(spec.vip)
    except ValueError:
        return [f"--vip {spec.vip!r} is not an IP address; give one such as 10.103.97.2."]
    nets: dict[str, Optional[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    for flag, text in (("--podcidr", spec.pod_cidr), ("--svccidr", spec.svc_cidr)):
        try:
            nets[flag] = ipaddress.ip_network(text, strict=True)
        except ValueError:
            nets[flag] = None
            problems.append(
                f"{flag} {text!r} is not a network in CIDR form such as 10.96.0.0/16; fix it."
            )
    for flag, net in nets.items():
        if net is not None and vip.version == net.version and vip in net:
            problems.append(
                f"the VIP {vip} lies inside {flag} {net}; "
                "choose a --vip outside the pod and service ranges."
            )
    pod, svc = nets["--podcidr"], nets["--svccidr"]
    if pod is not None and svc is not None and pod.version == svc.version and pod.overlaps(svc):
        problems.append(
            f"--podcidr {pod} overlaps --svccidr {svc}; choose ranges that do not overlap."
        )
    for h in spec.all_hosts:
        if h.is_ip and ipaddress.ip_address(h.host) == vip:
            problems.append(
                f"the VIP {vip} is the address of host {h}; choose a --vip that no host uses."
            )
    return problems


def _kubeadm_config_problems(spec: ClusterSpec) -> list[str]:
    path = spec.kubeadm_config
    assert path is not None
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except OSError:
        return [f"the kubeadm config {path} cannot be read; check --kubeadm-config."]
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "syntax error"
        return [f"the kubeadm config {path} is not valid YAML ({first}); fix the file."]
    kinds = {d.get("kind") for d in docs if isinstance(d, dict)}
    if not kinds & {"InitConfiguration", "ClusterConfiguration"}:
        return [
            f"the kubeadm config {path} has no InitConfiguration or ClusterConfiguration; "
            "it cannot init a cluster."
        ]
    return []


def host_problems(
    spec: ClusterSpec,
    hosts: list[HostView],
    package: Optional[PackageInfo] = None,
) -> list[str]:
    """Problems found in the facts of the hosts that could be reached."""
    problems: list[str] = []
    problems += _duplicate_hostnames(hosts)
    vip = spec.vip
    for h in hosts:
        f = h.facts
        name = str(h.address)
        if f.uid != 0:
            problems.append(
                f"{name}: user {spec.credentials.user!r} is not root (uid {f.uid}); "
                "log in as root with --user root."
            )
        if vip in f.addresses:
            problems.append(
                f"{name}: the VIP {vip} is already an address of this host; "
                "choose a --vip that no host uses."
            )
        if h.ip not in f.addresses and f.addresses:
            problems.append(
                f"{name}: sealos reaches it as {h.ip}, "
                "which is not one of its own addresses (NAT?); "
                "list the host by an address it owns."
            )
        if package is not None and package.arch and f.arch and host_arch(f.arch) != package.arch:
            problems.append(
                f"{name}: the package holds {package.arch} binaries "
                f"but the host is {host_arch(f.arch)}; "
                f"use the {host_arch(f.arch)} package."
            )
        if h.role == "node" and (f.python3 is None or f.python3[:2] < MIN_NODE_PYTHON):
            problems.append(
                f"{name}: lvscare needs python3 3.9 or newer on nodes "
                f"but this node has {f.python3_text}; "
                "install python3 >= 3.9."
            )
        problems += _disk(name, f, spec, package)
        problems += _tools(name, h, spec)
        for ip, ours in resolves_to(f.hosts_lines, spec.apiserver):
            if not ours:
                problems.append(
                    f"{name}: /etc/hosts already maps {spec.apiserver} to {ip} "
                    "(a line sealos did not write); "
                    "remove that line."
                )
    return problems


def warnings(hosts: list[HostView], operator_time: float) -> list[str]:
    """Things worth knowing that do not stop the install."""
    out: list[str] = []
    for h in hosts:
        skew = h.facts.time - operator_time
        if h.facts.time and abs(skew) > CLOCK_SKEW_WARN:
            out.append(
                f"{h.address}: its clock is {abs(skew):.0f} s {'ahead' if skew > 0 else 'behind'}; "
                "certificates may look invalid, sync time (NTP)."
            )
    return out


def _duplicate_hostnames(hosts: list[HostView]) -> list[str]:
    by_name: dict[str, list[str]] = defaultdict(list)
    for h in hosts:
        if h.facts.hostname:
            by_name[h.facts.hostname].append(str(h.address))
    problems = []
    for name, addrs in by_name.items():
        if len(addrs) > 1:
            problems.append(
                f"{' and '.join(addrs)} share the hostname {name!r}; give each host its own "
                "(hostnamectl set-hostname NAME), Kubernetes names nodes after them."
            )
    return problems


def _disk(name: str, f: HostFacts, spec: ClusterSpec, package: Optional[PackageInfo]) -> list[str]:
    if package is not None:
        # Tarball + unpacked copy + images loaded by init.sh: about three times the package.
        need = max(MIN_FREE_BYTES, 3 * package.size)
        if f.package_sha256 == package.sha256:
            need -= package.size
    else:
        need = URL_PACKAGE_FREE_BYTES
    if f.package_ready and f.package_ready == (package.sha256 if package else spec.pkg_sha256):
        return []
    if f.disk_free < need:
        return [
            f"{name}: only {_mib(f.disk_free)} free under /root "
            f"but about {_mib(need)} are needed; free some space."
        ]
    return []


def _tools(name: str, h: HostView, spec: ClusterSpec) -> list[str]:
    tools = h.facts.tools
    problems = []
    missing = [t for t in ("tar", "gzip", "sha256sum") if t not in tools]
    if missing:
        problems.append(f"{name}: {', '.join(missing)} not found; install coreutils, tar and gzip.")
    if spec.pkg_url and not ({"curl", "wget"} & tools):
        problems.append(
            f"{name}: neither curl nor wget is installed, needed for --pkg-url; install curl."
        )
    if h.role == "node" and spec.lvscare_mode == "systemd" and "systemctl" not in tools:
        problems.append(
            f"{name}: systemctl not found, needed for the lvscare service; "
            "use --lvscare-mode static-pod."
        )
    return problems


def _mib(n: int) -> str:
    return f"{n / 1024**2:.0f} MiB"
