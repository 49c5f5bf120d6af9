"""The cluster as recorded in the state file: its members, which typed host is which member, the
spec `join` and `clean` run with (the saved settings, today's credentials), and how each action
records what it changed (`record_*`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from sealos import spec as spec_mod
from sealos.addresses import DEFAULT_SSH_PORT, HostAddress, parse_host
from sealos.context import ClusterHost, Context
from sealos.errors import SealosError, SpecError
from sealos.spec import ClusterSpec, Credentials
from sealos.state import ClusterState, Member, StateStore

JOINING = "joining"
# Settings the user may give again on `join`/`clean` (where they differ from init's).
OVERRIDABLE = ("user", "port", "pk", "bastion", "pkg", "pkgUrl", "pkgSha256", "concurrency")


def load(store: StateStore) -> ClusterState:
    """The recorded cluster; a clear error when `init` never saved one here."""
    state = store.load()
    if state is None or not state.members:
        raise SealosError(
            f"no cluster is recorded in {store.path}; install one with `sealos init` "
            "(or set SEALOS_HOME to the folder of the cluster's state)."
        )
    return state


def address_of(member: Member) -> HostAddress:
    """The SSH address a member was recorded with (its text carries any non-default port)."""
    try:
        return parse_host(member.address, DEFAULT_SSH_PORT, f"--{member.role}")[0]
    except SpecError:
        raise SealosError(
            f"the state file records a member as {member.address!r}, which is not a host address; "
            "fix that line under members."
        ) from None


def find(state: ClusterState, address: HostAddress) -> Optional[Member]:
    """The member typed as `address` (same host and port, or the IP sealos reached it by)."""
    for m in state.members:
        if address_of(m).key == address.key:
            return m
    for m in state.members:
        if m.ip and m.ip == address.host and address_of(m).port == address.port:
            return m
    return None


def find_by_ip(state: ClusterState, ip: str) -> Optional[Member]:
    """The member sealos reached at `ip` (to catch a host typed by another name)."""
    return next((m for m in state.members if m.ip == ip), None)


def settings_with(state: ClusterState, typed: dict[str, Any]) -> dict[str, Any]:
    """init's saved settings overlaid by the ones typed now (user, port, key, package, ...)."""
    values = spec_mod.merge(state.settings, {})
    values.update({k: v for k, v in typed.items() if k in OVERRIDABLE})
    return values


def build_spec(
    values: dict[str, Any],
    credentials: Credentials,
    masters: Iterable[HostAddress],
    nodes: Iterable[HostAddress],
    connect_timeout: float = 10.0,
) -> ClusterSpec:
    """A spec from saved settings with exactly these hosts (no re-parsing of the host lists)."""
    base = dict(values)
    base["masters"], base["nodes"] = [], []
    # join and clean never render a kubeadm config: a file init read may be gone by now.
    base["kubeadmConfig"] = None
    spec = spec_mod.build(base, credentials)
    spec.masters = list(masters)
    spec.nodes = list(nodes)
    spec.connect_timeout = connect_timeout
    return spec


def sync_settings(state: ClusterState) -> None:
    """Keep the settings' host lists equal to the recorded members."""
    state.settings["masters"] = [m.address for m in state.masters]
    state.settings["nodes"] = [m.address for m in state.nodes]


def _pin_keys(ctx: Context) -> None:
    for ssh in [n.ssh for n in ctx.nodes] + ([ctx.bastion] if ctx.bastion else []):
        if ssh.host_key:
            ctx.state.host_keys[ssh.address.key] = ssh.host_key


def record_install(ctx: Context, status: str) -> str:
    """init: this run's settings and hosts, merged into the state (members added later by `join`
    stay), with `status` (installing, then ready). Returns the note for the UI."""
    state = ctx.state
    state.settings = spec_mod.to_values(ctx.spec)
    state.status = status
    state.package_sha256 = ctx.package_sha256
    state.cgroup_driver = ctx.cgroup_driver() or state.cgroup_driver
    known = {m.address: m for m in state.members}
    recorded = []
    for n in ctx.nodes:
        old = known.pop(n.name, None)
        hostname = n.facts.hostname if n.facts else (old.hostname if old else "")
        recorded.append(Member(n.name, n.role, n.ip, hostname))
    recorded.extend(known.values())
    state.members = recorded
    _pin_keys(ctx)
    ctx.store.save(state)
    return f"{status}: {ctx.store.path}"


def record_join(ctx: Context, status: str) -> str:
    """join: the new hosts as members with `status` ("joining" before changes, "" once joined:
    members). Returns the note for the UI."""
    state = ctx.state
    _pin_keys(ctx)
    for n in ctx.nodes:
        if n.name not in ctx.new:
            continue
        hostname = n.facts.hostname if n.facts else ""
        member = next((m for m in state.members if m.address == n.name), None)
        if member is None:
            state.members.append(Member(n.name, n.role, n.ip, hostname, status))
        else:
            member.role, member.ip, member.status = n.role, n.ip, status
            member.hostname = hostname or member.hostname
    if not status:
        state.status = "ready"
    sync_settings(state)
    ctx.store.save(state)
    what = "new members joining" if status else "new members recorded"
    return f"{what}: {ctx.store.path}"


def record_removed(ctx: Context, removed: list[ClusterHost], recorded: dict[str, str]) -> None:
    """clean: drop the removed hosts' members (`recorded`: host name -> member address) and their
    pinned keys; remove the file when no member is left."""
    state = ctx.state
    gone = set()
    for n in removed:
        address = recorded.get(n.name)
        if address is not None:
            gone.add(address)
            state.host_keys.pop(n.address.key, None)
    if not gone:
        return
    state.members = [m for m in state.members if m.address not in gone]
    if not state.members:
        ctx.store.remove()
        ctx.ui.info(f"The cluster is gone; removed {ctx.store.path}.")
        return
    sync_settings(state)
    ctx.store.save(state)
