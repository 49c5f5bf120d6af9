"""What one run of an action knows: the spec, the hosts of the cluster with their facts, join
secrets (in memory only), the UI, the log and the state store.

Facts are what a host was found to be when the run gathered them; phases never write them. What
the run did on a host is kept apart, in `ClusterHost.done` (and `outcome`, for the summary).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar

from sealos import kubeadm, preconditions
from sealos.addresses import HostAddress
from sealos.errors import HostError, SealosError
from sealos.etc_hosts import resolves_to
from sealos.facts import HostFacts
from sealos.kubeadm import ClusterSettings, JoinInfo
from sealos.kubeversion import KubeVersion
from sealos.logfile import CommandLog
from sealos.lvscare_node import Bundle
from sealos.package import PackageInfo
from sealos.redaction import Redactor
from sealos.remote_paths import KUBEADM_CONFIG
from sealos.spec import ClusterSpec
from sealos.ssh import SSHConnection
from sealos.state import ClusterState, StateStore
from sealos.ui import UI

T = TypeVar("T")


@dataclass
class ClusterHost:
    """One host of the cluster taking part in the run: its address, role (master or node), SSH
    connection, the facts gathered there, and what this run did there."""

    address: HostAddress
    role: str  # master | node
    ssh: SSHConnection
    facts: Optional[HostFacts] = None
    # Facts read again after the package's init.sh (ReadRuntime): the runtime, swap, sysctls.
    prepared: Optional[HostFacts] = None
    error: Optional[HostError] = None
    outcome: list[str] = field(default_factory=list)  # what was done, for the summary
    done: set[str] = field(default_factory=set)  # remote paths this run wrote (facts stay as found)

    @property
    def name(self) -> str:
        """How messages name the host."""
        return str(self.address)

    @property
    def ip(self) -> str:
        """The address the cluster uses for this host (the one SSH reached)."""
        return self.ssh.ip

    @property
    def usable(self) -> bool:
        """Connected, facts gathered, no error."""
        return self.error is None and self.facts is not None

    def hosts_entry_is(self, ip: str, name: str) -> bool:
        """True when /etc/hosts maps `name` to `ip` through sealos' own line only."""
        if self.facts is None:
            return False
        return resolves_to(self.facts.hosts_lines, name) == [(ip, True)]


class Context:
    """The run's shared knowledge. Secrets in here never reach the log or the state file."""

    def __init__(
        self,
        spec: ClusterSpec,
        ui: UI,
        log: CommandLog,
        store: StateStore,
        state: Optional[ClusterState],
        dry_run: bool = False,
        new: Optional[set[str]] = None,
    ) -> None:
        self.spec = spec
        self.ui = ui
        self.log = log
        self.redact: Redactor = log.redact
        self.store = store
        self.state = state or ClusterState()
        self.dry_run = dry_run
        # Hosts this run adds to a running cluster (join): tokens come from an existing master.
        self.new: set[str] = new or set()
        # --force-takeover: install over a Kubernetes install sealos did not start (it is reset).
        self.takeover = False
        self.nodes: list[ClusterHost] = []
        self.package: Optional[PackageInfo] = None
        self.package_sha256: Optional[str] = spec.pkg_sha256
        self.bundle: Optional[Bundle] = None
        self.bundle_task: Optional[asyncio.Task[Bundle]] = None  # built while hosts connect
        self.client_keys: Optional[list[Any]] = None
        self.known_hosts: Optional[Any] = None  # ssh.KnownHosts: the known_hosts files, read once
        # ssh.SSHConnection to the --bastion every host is reached through (one for the run)
        self.bastion: Optional[Any] = None
        self.operator_time = 0.0
        self.plan: dict[str, list[str]] = {}
        # Failures of phases that let the action go on (clean): hosts and messages.
        self.failed: set[str] = set()
        self.errors: list[str] = []
        # (title, monotonic start, seconds, parallel) of each phase that ran: for benchmarks
        self.phase_times: list[tuple[str, float, float, bool]] = []
        # (phase title, host, monotonic start, seconds) of each host's turn in a phase: for
        # benchmarks (which host finished a phase last, which turn waited for another)
        self.host_times: list[tuple[str, str, float, float]] = []
        self._join: Optional[JoinInfo] = None
        # IDs of the bootstrap tokens this run made (deleted at its end: runner.delete_join_tokens)
        self.tokens_made: list[str] = []
        self._join_lock = asyncio.Lock()

    # --- who is who ----------------------------------------------------------------------------

    @property
    def version(self) -> KubeVersion:
        """The Kubernetes version (validated before any phase needs it)."""
        if self.spec.version is None:
            raise SealosError("no Kubernetes version given; add --version, e.g. --version v1.14.1.")
        return self.spec.version

    @property
    def masters(self) -> list[ClusterHost]:
        """Masters, the first master first."""
        return [n for n in self.nodes if n.role == "master"]

    @property
    def workers(self) -> list[ClusterHost]:
        """Worker nodes."""
        return [n for n in self.nodes if n.role == "node"]

    @property
    def first_master(self) -> ClusterHost:
        """The master `kubeadm init` runs on; when hosts join a running cluster, the first
        existing master that answers (the recorded first one may be down)."""
        if not self.new:
            return self.masters[0]
        existing = [m for m in self.masters if m.name not in self.new]
        for m in existing:
            if m.usable:
                return m
        return existing[0] if existing else self.masters[0]

    # --- the container runtime ------------------------------------------------------------------

    @functools.cached_property
    def _given_config(self) -> tuple[Optional[str], Optional[str]]:
        """criSocket and cgroupDriver of the --kubeadm-config (read once a run)."""
        path = self.spec.kubeadm_config
        if path is None:
            return None, None
        return kubeadm.config_cri_socket(path), kubeadm.config_cgroup_driver(path)

    def wanted_cri_socket(self) -> Optional[str]:
        """The CRI socket the user named: --cri-socket, else the --kubeadm-config's criSocket."""
        return self.spec.cri_socket or self._given_config[0]

    def runtime_choice(self, node: ClusterHost) -> preconditions.Choice:
        """The runtime kubeadm will use on `node`, from its latest facts."""
        f = node.prepared or node.facts or HostFacts()
        return preconditions.choose_runtime(node.name, self.version, f, self.wanted_cri_socket())

    def cri_socket(self, node: ClusterHost) -> Optional[str]:
        """criSocket for `node`'s kubeadm config (None: kubeadm's default)."""
        return self.runtime_choice(node).socket

    def runtime_driver(self, node: ClusterHost) -> Optional[str]:
        """The cgroup driver of the runtime on `node`, when it told."""
        f = node.prepared or node.facts
        return preconditions.cgroup_driver(f, self.runtime_choice(node).runtime) if f else None

    def cgroup_driver(self) -> Optional[str]:
        """The kubelets' cgroup driver (see `cgroup_driver_source`)."""
        return self.cgroup_driver_source()[0]

    def cgroup_driver_source(self) -> tuple[Optional[str], str]:
        """The kubelets' cgroup driver and where it comes from: as recorded for the cluster,
        else as the --kubeadm-config sets it, else the first master's runtime's (which every
        host must share)."""
        if self.state.cgroup_driver:
            return self.state.cgroup_driver, "as recorded when the cluster was installed"
        given = self._given_config[1]
        if given:
            return given, f"as {self.spec.kubeadm_config} sets"
        if not self.masters:
            return None, ""
        m0 = self.first_master
        return self.runtime_driver(m0), f"as the runtime on {m0.name}"

    def settings(self) -> ClusterSettings:
        """The data kubeadm configs are rendered from."""
        s = self.spec
        return ClusterSettings(
            version=self.version,
            apiserver=s.apiserver,
            vip=s.vip,
            masters=[m.ip for m in self.masters],
            pod_cidr=s.pod_cidr,
            svc_cidr=s.svc_cidr,
            cert_sans=list(s.cert_sans),
            repo=s.repo,
            cri_socket=self.cri_socket(self.first_master) if self.masters else None,
            cgroup_driver=self.cgroup_driver(),
        )

    def would(self, node: ClusterHost, line: str) -> None:
        """Dry run: remember that `line` would be done on `node` (a real run ignores it: the
        step it names happens inside another one, e.g. `kubeadm reset` inside a join)."""
        if self.dry_run:
            self.plan.setdefault(node.name, []).append(line)

    async def wet(
        self,
        node: ClusterHost,
        plan: str,
        act: Callable[[], Awaitable[T]],
        step: Optional[str] = None,
    ) -> Optional[T]:
        """One step that changes a host (k0sctl's `Wet`): a dry run records `plan` and returns
        None; a real run shows `step` (default: `plan`) on the host's row and does `act`."""
        if self.dry_run:
            self.would(node, plan)
            return None
        self.ui.step(node.name, step or plan)
        return await act()

    # --- join secrets --------------------------------------------------------------------------

    def remember_join(self, info: JoinInfo) -> None:
        """Keep join info from `kubeadm init` (its secrets are masked from now on)."""
        self.redact.add(*info.secrets())
        self._join = info

    async def join_info(self, control_plane: bool) -> JoinInfo:
        """Join info from this run's init, else a fresh token (and key) from the first master."""
        async with self._join_lock:
            info = self._join
            if info is None:
                info = await self._fresh_token()
            if control_plane and not info.certificate_key:
                info.certificate_key = await self._fresh_certificate_key()
                self.redact.add(info.certificate_key)
            self._join = info
            return info

    async def _fresh_token(self) -> JoinInfo:
        m0 = self.first_master
        self.ui.step(m0.name, "creating a join token")
        result = await m0.ssh.run(kubeadm.token_create_command(), timeout=120)
        info = kubeadm.parse_join_commands(result.stdout)
        if info is None:
            raise HostError(
                m0.name,
                "`kubeadm token create --print-join-command` printed no join command; "
                "check the control plane there (kubectl get nodes) and run again.",
            )
        self.redact.add(*info.secrets())
        self.tokens_made.append(info.token_id)
        return info

    async def _fresh_certificate_key(self) -> str:
        m0 = self.first_master
        self.ui.step(m0.name, "uploading control-plane certificates")
        has_config = KUBEADM_CONFIG in m0.done or (
            m0.facts is not None and m0.facts.kubeadm_config_sha256 is not None
        )
        command = kubeadm.upload_certs_command(self.version, KUBEADM_CONFIG if has_config else None)
        result = await m0.ssh.run(command, timeout=300)
        key = kubeadm.parse_certificate_key(result.stdout)
        if key is None:
            raise HostError(
                m0.name,
                "`kubeadm init phase upload-certs` printed no certificate key; "
                "check the control plane there and run again.",
            )
        return key
