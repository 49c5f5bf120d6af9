"""Validation before anything changes, in one place: every problem is one sentence naming the host
and the fix, and all problems are listed at once. Pure functions: over the spec and the gathered
facts, and (the `Rule`s at the end) over a run's context; none of them changes anything.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import yaml

from sealos import kubeadm, lvscare_node, members, preconditions
from sealos.addresses import HostAddress, find_duplicates
from sealos.context import ClusterHost, Context
from sealos.etc_hosts import resolves_to
from sealos.facts import HostFacts
from sealos.package import PackageInfo, host_arch
from sealos.redaction import MASK, redact_url
from sealos.spec import ClusterSpec, package_name_problem, url_file_name
from sealos.state import ClusterState

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
    problems += _cri_socket_problems(spec)
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
    if spec.pkg_url:
        problems += package_url_problems(spec.pkg_url, spec.pkg_sha256)
    if spec.pkg is not None:
        bad_name = package_name_problem(spec.pkg.name, "--pkg")
    else:
        bad_name = package_name_problem(url_file_name(spec.pkg_url or ""), "--pkg-url")
    if bad_name:
        problems.append(bad_name)
    if spec.pkg_sha256 and not re.fullmatch(r"[0-9a-f]{64}", spec.pkg_sha256):
        problems.append("--pkg-sha256 must be 64 hexadecimal digits (the output of sha256sum).")
    return problems


def package_url_problems(url: str, sha256: Optional[str]) -> list[str]:
    """--pkg-url: an http(s) or ftp URL that can travel in a curl config, and over plain http or
    ftp (which anyone on the way can change, URL.sha256 included) only with --pkg-sha256."""
    shown = redact_url(url)
    if MASK in url:
        return [
            "the --pkg-url recorded at init held credentials, which sealos never saves; "
            "give the URL again with --pkg-url."
        ]
    if not re.match(r"^(https?|ftp)://[^\s/]+", url):
        return [
            f"--pkg-url {shown!r} is not an http(s) URL; give e.g. https://10.0.0.1/kube1.14.1.tar.gz."
        ]
    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        return [f"--pkg-url {shown!r} holds a space or control character; percent-encode it (%20)."]
    if not url.startswith("https://") and not sha256:
        scheme = url.split(":", 1)[0]
        return [
            f"--pkg-url {shown} is plain {scheme}, where anyone on the way can change the package "
            "and its .sha256 file; give the package's checksum with --pkg-sha256 (sha256sum of "
            "the file), or serve it over https."
        ]
    return []


def _network_problems(spec: ClusterSpec) -> list[str]:
    problems: list[str] = []
    if "%" in spec.vip:
        return [
            f"--vip {spec.vip!r} is a scoped IPv6 address (with %zone), which kubeadm, nft and "
            "lvscare cannot use; give a global address."
        ]
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


def _cri_socket_problems(spec: ClusterSpec) -> list[str]:
    socket = spec.cri_socket
    if socket is None:
        return []
    path = preconditions.cri_path(socket)
    if not path.startswith("/") or any(c.isspace() for c in path) or "://" in path:
        return [
            f"--cri-socket {socket!r} is not a unix socket path or unix:// URL; give e.g. "
            "unix:///run/containerd/containerd.sock."
        ]
    given = kubeadm.config_cri_socket(spec.kubeadm_config) if spec.kubeadm_config else None
    if given and preconditions.cri_path(given) != path:
        return [
            f"--cri-socket {socket} differs from the criSocket {given} of "
            f"{spec.kubeadm_config}; give one of them."
        ]
    return []


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
    # the socket the user named, as the run renders it (Context.wanted_cri_socket)
    wanted_socket = spec.cri_socket or (
        kubeadm.config_cri_socket(spec.kubeadm_config) if spec.kubeadm_config else None
    )
    for h in hosts:
        f = h.facts
        name = str(h.address)
        if f.uid != 0:
            problems.append(
                f"{name}: commands run as uid {f.uid}, not root; "
                "log in as root (--user root) or as a user with sudo rights."
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
        if spec.version is not None:
            problems += preconditions.before_change(
                name,
                spec.version,
                h.role,
                f,
                package.brings_runtime if package is not None else None,
                wanted_socket,
            )
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


# --- membership: who is in the cluster already (join, clean) -------------------------------------


def already_member(name: str, role: str, hostname: str) -> str:
    """The refusal for a host that is in the cluster already."""
    known = f" (hostname {hostname!r})" if hostname else ""
    return (
        f"{name} is already a {role} of this cluster{known}; to add it again, "
        f"remove it first with `sealos clean --{role} {name}`."
    )


def resumes(state: ClusterState, node: ClusterHost) -> bool:
    """The host's earlier join was recorded as started and did not finish."""
    member = members.find(state, node.address)
    return member is not None and member.status == members.JOINING


def membership_problems(
    state: ClusterState, new: list[ClusterHost], existing: list[ClusterHost]
) -> list[str]:
    """New hosts that are members already, or share a hostname with a member or each other."""
    problems: list[str] = []
    joining_again = {n.name for n in new if resumes(state, n)}
    for n in new:
        member = members.find(state, n.address)
        if member is None and n.ssh.connected:
            member = members.find_by_ip(state, n.ip)
        if member is not None and n.name not in joining_again:
            problems.append(already_member(n.name, member.role, member.hostname))
        elif member is not None and member.role != n.role:
            problems.append(
                f"{n.name} started joining as a {member.role}; run `sealos join --{member.role} "
                f"{n.name}` to finish, or `sealos clean --{member.role} {n.name}` first."
            )
    # Hostnames of the members as they are now (facts), else as recorded.
    names: dict[str, str] = {}
    live = {n.name: n for n in existing}
    for m in state.members:
        node = live.get(m.address)
        hostname = node.facts.hostname if node is not None and node.facts else m.hostname
        if hostname and m.address not in joining_again:
            names[hostname] = m.address
    for n in new:
        if n.facts is None or not n.facts.hostname or n.name in joining_again:
            continue
        other = names.get(n.facts.hostname)
        if other is not None and other != n.name and members.find(state, n.address) is None:
            problems.append(
                f"{n.name} has the hostname {n.facts.hostname!r}, which member {other} already "
                "has; give it its own (hostnamectl set-hostname NAME), Kubernetes names nodes "
                "after them."
            )
    return problems


def join_request_problems(
    state: ClusterState,
    state_path: str,
    spec: ClusterSpec,
    new_masters: list[HostAddress],
    new_nodes: list[HostAddress],
    package: Optional[PackageInfo],
    package_sha256: Optional[str],
) -> list[str]:
    """What `join` refuses before connecting: an unfinished cluster, members named again, flags,
    a package other than the cluster's."""
    problems = []
    if state.status != "ready":
        problems.append(
            f"the cluster recorded in {state_path} is not fully installed yet "
            f"(status {state.status!r}); run the same `sealos init` again first."
        )
    named = set()
    for a in [*new_masters, *new_nodes]:
        member = members.find(state, a)
        if member is not None:
            named.add(member.address)
            if member.status != members.JOINING:
                problems.append(already_member(str(a), member.role, member.hostname))
    # Flag checks over the new hosts and the members not named again (no double reports).
    others = [m for m in state.members if m.address not in named]
    check = dataclasses.replace(
        spec,
        masters=[*(members.address_of(m) for m in others if m.role == "master"), *new_masters],
        nodes=[*(members.address_of(m) for m in others if m.role == "node"), *new_nodes],
        # The checksum recorded at init verifies a plain-http download as one given would.
        pkg_sha256=spec.pkg_sha256 or package_sha256,
    )
    problems += spec_problems(check)
    recorded = state.package_sha256
    if package is not None and recorded and package.sha256 != recorded:
        problems.append(
            f"the package {spec.pkg} (SHA-256 {package.sha256[:12]}…) is not the one the "
            f"cluster was installed from ({recorded[:12]}…); give that package with --pkg."
        )
    if spec.pkg_url and not package_sha256:
        problems.append("the package's SHA-256 is not recorded; give it with --pkg-sha256.")
    return list(dict.fromkeys(problems))


# --- rules over a run: each takes the run's context and returns its problems ------------------

Rule = Callable[[Context], list[str]]


def _installing(ctx: Context) -> list[ClusterHost]:
    """The hosts this run installs: the new ones of a join, else every host."""
    return [n for n in ctx.nodes if n.name in ctx.new] if ctx.new else list(ctx.nodes)


def _views(nodes: list[ClusterHost]) -> list[HostView]:
    return [HostView(n.address, n.role, n.ip, n.facts) for n in nodes if n.facts]


def unreachable(ctx: Context) -> list[str]:
    """Hosts to install that could not be reached or read."""
    return [str(n.error) for n in _installing(ctx) if n.error is not None]


def facts_problems(ctx: Context) -> list[str]:
    """What the host rules find in the facts of the hosts to install."""
    return host_problems(ctx.spec, _views(_installing(ctx)), ctx.package)


def lvscare_image_problems(ctx: Context) -> list[str]:
    """Static-pod lvscare is privileged: its image by tag must come with the package (the pod
    never pulls it); a package whose manifest does not list it can't run it. A legacy package
    without a manifest is taken at its word (its images.tar), as init.sh imports it."""
    image, package = ctx.spec.lvscare_image, ctx.package
    if ctx.spec.lvscare_mode != "static-pod" or lvscare_node.pinned_by_digest(image):
        return []
    if package is None or package.images is None:
        return []
    from sealos.packaging.images import normalize  # as the package lists, and containerd names

    if normalize(image) in package.images:
        return []
    return [
        f"--lvscare-image {image} is a tag that the package does not carry, and the privileged "
        "lvscare pod is never pulled by a tag that can move; build the package with "
        f"`sealos package build --lvscare-image {image}`, or pin the image by digest "
        "(--lvscare-image NAME@sha256:DIGEST)."
    ]


def runtime_problems(ctx: Context) -> list[str]:
    """After the package's init.sh: what kubeadm's preflight and the kubelet would refuse (swap,
    sysctls, crictl), a runtime that does not answer, and cgroup drivers that differ."""
    problems: list[str] = []
    for n in _installing(ctx):
        f = n.prepared
        if f is None or n.error is not None or _before_init_sh(ctx, n):
            continue
        choice = ctx.runtime_choice(n)
        if choice.problem:
            problems.append(choice.problem)
        problems += preconditions.after_prepare(n.name, ctx.version, f)
    return problems + cgroup_driver_problems(ctx)


def _before_init_sh(ctx: Context, n: ClusterHost) -> bool:
    """A dry run, on a host whose init.sh has not run for this package: what it reads there is
    what init.sh would still change (swap, sysctls, the runtime it may install)."""
    return ctx.dry_run and (n.facts is None or n.facts.package_ready != ctx.package_sha256)


def cgroup_driver_problems(ctx: Context) -> list[str]:
    """Hosts whose runtime uses another cgroup driver than the cluster's kubelets. Before any
    change only where the runtime is already there (the package brings none); after init.sh
    everywhere."""
    brings = ctx.package.brings_runtime if ctx.package is not None else None
    drivers: dict[str, Optional[str]] = {}
    for n in _installing(ctx):
        prepared = n.prepared is not None and not _before_init_sh(ctx, n)
        if n.error is None and (prepared or brings is False):
            drivers[n.name] = ctx.runtime_driver(n)
    driver, source = ctx.cgroup_driver_source()
    return preconditions.driver_problems(drivers, driver, source)


def clock_warnings(ctx: Context) -> list[str]:
    """Clocks far from the operator's (a warning, not a stop)."""
    return warnings(_views(_installing(ctx)), ctx.operator_time)


def another_cluster(ctx: Context) -> list[str]:
    """init: the state file records a cluster with another first master."""
    recorded = ctx.state.masters
    if not recorded or not ctx.masters:
        return []
    first = recorded[0].address
    if first != ctx.first_master.name:
        return [
            f"{ctx.store.path} records another cluster (first master {first}); "
            f"remove it with `sealos clean` or set SEALOS_HOME to keep a second cluster apart."
        ]
    return []


def not_members(ctx: Context) -> list[str]:
    """join: new hosts that are members already (by address, IP or hostname)."""
    new = [n for n in ctx.nodes if n.name in ctx.new]
    existing = [n for n in ctx.nodes if n.name not in ctx.new]
    return membership_problems(ctx.state, new, existing)


def cluster_reachable(ctx: Context) -> list[str]:
    """join: a master of the cluster answers, and every node whose lvscare must learn new
    masters answers."""
    existing = [n for n in ctx.nodes if n.name not in ctx.new]
    masters = [n for n in existing if n.role == "master"]
    problems = []
    if not any(m.usable for m in masters):
        reasons = "; ".join(str(m.error) for m in masters if m.error is not None).rstrip(".")
        problems.append(
            "no master of the cluster can be reached, so there is nothing to join"
            + (f" ({reasons})" if reasons else "")
            + "; bring a master up and run again."
        )
    if any(n.role == "master" for n in ctx.nodes if n.name in ctx.new):
        for n in existing:
            if n.role == "node" and n.error is not None:
                why = str(n.error).removeprefix(f"{n.name}: ").split(";")[0].rstrip(".")
                problems.append(
                    f"{n.name} cannot be reached ({why}), but its lvscare must learn the new "
                    f"masters; bring it up, or remove it with "
                    f"`sealos clean --node {n.name} --force`."
                )
    return problems


def masters_down(ctx: Context) -> list[str]:
    """join: masters that do not answer while another does (a warning: the join goes on)."""
    masters = [n for n in ctx.nodes if n.name not in ctx.new and n.role == "master"]
    if not any(m.usable for m in masters):
        return []
    return [
        f"{m.error} (the join goes on through the other masters)"
        for m in masters
        if m.error is not None
    ]


TAKEOVER_FLAG = "--force-takeover"
NOT_A_MEMBER_FLAG = "--not-a-member"


def foreign_kubernetes(ctx: Context) -> list[str]:
    """init, join: hosts to install that hold a Kubernetes install sealos did not record as
    started there (kubeadm's files or a running kubelet, and no marker of ours: see
    `HostFacts.sealos_started`). Installing would overwrite its binaries and reset it (its etcd
    too), so it is refused unless the user takes it over (`--force-takeover`)."""
    if ctx.takeover:
        return []
    problems = []
    for n in _installing(ctx):
        found = n.facts.foreign_kubernetes() if n.facts is not None else []
        if found:
            problems.append(
                f"{n.name} holds a Kubernetes install sealos did not start there "
                f"({', '.join(found)}); remove it first with `sealos clean --{n.role} {n.name} "
                f"{NOT_A_MEMBER_FLAG}`, or add {TAKEOVER_FLAG} to reset it and install over it."
            )
    return problems


def foreign_installs(ctx: Context) -> list[str]:
    """join: new hosts that hold a Kubernetes install sealos made for another cluster."""
    problems = []
    for n in ctx.nodes:
        f = n.facts
        if n.name not in ctx.new or f is None or resumes(ctx.state, n):
            continue
        if f.init_done or f.join_done:
            problems.append(
                f"{n.name} already holds a Kubernetes install made by sealos "
                "(another cluster, or one not cleaned); "
                f"remove it first with `sealos clean --{n.role} {n.name}`."
            )
    return problems


def named_as_recorded(ctx: Context, unrecorded: set[str]) -> list[str]:
    """clean: a host typed by another name than its record (found by the IP it answers on)
    would be cleaned but stay recorded."""
    problems = []
    for n in ctx.nodes:
        if n.name not in unrecorded or not n.ssh.connected:
            continue
        member = members.find_by_ip(ctx.state, n.ip)
        if member is not None:
            problems.append(
                f"{n.name} is the {member.role} recorded as {member.address}; "
                f"name it that way (--{member.role} {member.address}). Nothing was changed."
            )
    return problems
