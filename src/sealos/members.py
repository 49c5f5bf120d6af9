"""The cluster as `init` recorded it, seen by `join` and `clean`: its members, which typed host is
which member, and the spec those commands run with (the saved settings, today's credentials).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from sealos import spec as spec_mod
from sealos.addresses import DEFAULT_SSH_PORT, HostAddress, parse_host
from sealos.errors import SealosError, SpecError
from sealos.spec import ClusterSpec, Credentials
from sealos.state import ClusterState, Member, StateStore

JOINING = "joining"
# Settings the user may give again on `join`/`clean` (where they differ from init's).
OVERRIDABLE = ("user", "port", "pk", "pkg", "pkgUrl", "pkgSha256", "concurrency")


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
