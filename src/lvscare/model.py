"""The model: a virtual server, its real servers, their health and the weights they should have.

Plain data and pure functions; no kernel, no sockets. The reconciler compares `desired_weights`
with what a backend `Observed` in the kernel and turns the difference into `Change`s (`plan`),
each with its kind and the reason the log gives for it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Optional

SCHEMES = ("http", "https", "tcp")


class UserError(Exception):
    """A problem the user can fix (bad flag, missing permission, missing kernel feature).

    The message is one sentence that names the culprit and the fix; the CLI prints it without a
    traceback and exits non-zero.
    """


@dataclass(frozen=True, order=True)
class Endpoint:
    """An IP address and a TCP port; `host` is the normalised textual address."""

    host: str
    port: int

    @cached_property
    def family(self) -> int:
        """4 or 6."""
        return ipaddress.ip_address(self.host).version

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.family == 6 else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str, flag: str) -> Endpoint:
        """Parse `IP:PORT` or `[IPv6]:PORT`; `flag` names the option in the error sentence."""
        text = text.strip()
        example = "192.168.0.2:6443"
        if text.startswith("["):
            host, sep, port = text[1:].partition("]:")
            example = "[fd00::2]:6443"
            if not sep:
                raise UserError(
                    f"{flag} {text} has no port: write it as [IPv6]:PORT, e.g. {example}."
                )
        else:
            host, sep, port = text.rpartition(":")
            if not sep:
                raise UserError(f"{flag} {text} has no port: write it as IP:PORT, e.g. {example}.")
            if ":" in host:
                raise UserError(
                    f"{flag} {text} is ambiguous: "
                    "put an IPv6 address in brackets, e.g. [fd00::2]:6443."
                )
        if "%" in host:
            raise UserError(
                f"{flag} {text}: a scoped IPv6 address (with %zone) cannot be used by IPVS, nft "
                f"or routes; give a global address, e.g. {example}."
            )
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise UserError(
                f"{flag} {text}: {host!r} is not an IP address; give the address, e.g. {example}."
            ) from None
        if address.is_unspecified or address.is_multicast or str(address) == "255.255.255.255":
            kind = (
                "the unspecified address"
                if address.is_unspecified
                else "a multicast address"
                if address.is_multicast
                else "the broadcast address"
            )
            raise UserError(
                f"{flag} {text}: {address} is {kind}, not one host; give a unicast address, "
                f"e.g. {example}."
            )
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"{flag} {text}: the port must be a number from 1 to 65535.")
        return cls(str(address), int(port))


@dataclass(frozen=True)
class VirtualServer:
    """The virtual server lvscare owns: VIP:PORT, TCP, with a scheduler (IPVS name, e.g. rr)."""

    endpoint: Endpoint
    scheduler: str = "rr"
    protocol: str = "tcp"

    def __str__(self) -> str:
        return str(self.endpoint)


@dataclass(frozen=True)
class HealthPolicy:
    """When a real server leaves and comes back: `fall` failures remove it, `rise` successes
    restore it; the first failure already sets weight 0 (no new connections)."""

    fall: int = 2
    rise: int = 1


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe, with a short reason for the log (e.g. `HTTP 200`, `timed out`)."""

    ok: bool
    reason: str


@dataclass
class Health:
    """One real server's health: consecutive successes/failures and whether it is removed."""

    healthy: bool = True
    removed: bool = False
    failures: int = 0
    successes: int = 0
    reason: str = "not probed yet"

    def record(self, result: ProbeResult, policy: HealthPolicy) -> None:
        """Count one probe result."""
        self.reason = result.reason
        if result.ok:
            self.successes += 1
            self.failures = 0
            if not self.healthy and self.successes >= policy.rise:
                self.healthy = True
                self.removed = False
        else:
            self.failures += 1
            self.successes = 0
            self.healthy = False
            if self.failures >= policy.fall:
                self.removed = True

    def weight(self, full: int = 1) -> Optional[int]:
        """The weight this server should have now; None means it should not be there at all."""
        if self.healthy:
            return full
        return None if self.removed else 0


@dataclass(frozen=True)
class Observed:
    """What a backend found in the kernel for our virtual server.

    `problems` lists differences a backend can see besides weights (a foreign rule, a wrong
    forwarding method), each as a short phrase for the log; any of them makes the backend repair.
    `culprits` maps a problem to the real server whose rule it is about, when it is about one (IPVS:
    a server forwarded by another method than masquerade): it travels here so that `apply` needs
    nothing the backend remembered from `read`.
    """

    exists: bool
    weights: Mapping[Endpoint, int] = field(default_factory=dict)
    scheduler: Optional[str] = None
    problems: tuple[str, ...] = ()
    culprits: Mapping[str, Endpoint] = field(default_factory=dict)


class ChangeKind(str, Enum):
    """What a change does to the kernel; the values are the names older code and logs used."""

    ADD_VIRTUAL_SERVER = "create-service"
    SET_SCHEDULER = "set-scheduler"
    REPAIR = "repair"
    REMOVE_REAL_SERVER = "remove"
    ADD_REAL_SERVER = "add"
    SET_WEIGHT = "set-weight"


@dataclass(frozen=True)
class Change:
    """One difference between desired and observed state, to be applied by a backend.

    `reason` is the log line the planner wrote when it decided the change; two changes that do the
    same thing are equal whatever their reasons say.
    """

    kind: ChangeKind
    endpoint: Optional[Endpoint] = None
    weight: Optional[int] = None
    before: Optional[int] = None
    detail: str = ""
    reason: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # Accept the kind's value ("remove") as well as the member: both name the same change.
        object.__setattr__(self, "kind", ChangeKind(self.kind))


@dataclass(frozen=True)
class History:
    """What the planner needs to say why, besides the two states: each real server's health, the
    weights lvscare last wrote (None before its first write) and the health policy."""

    health: Mapping[Endpoint, Health] = field(default_factory=dict)
    applied: Optional[Mapping[Endpoint, int]] = None
    policy: HealthPolicy = HealthPolicy()


def desired_weights(
    health: Mapping[Endpoint, Health], full: Optional[Mapping[Endpoint, int]] = None
) -> dict[Endpoint, int]:
    """The real servers that should be in the kernel, with their weights."""
    desired = {}
    for endpoint, state in health.items():
        weight = state.weight((full or {}).get(endpoint, 1))
        if weight is not None:
            desired[endpoint] = weight
    return desired


def plan(
    vs: VirtualServer,
    desired: Mapping[Endpoint, int],
    observed: Observed,
    history: Optional[History] = None,
) -> list[Change]:
    """The changes that turn `observed` into `desired`, in the order a backend applies them, each
    with its reason (worded from `history`)."""
    why = _Reasons(vs, history or History())
    changes: list[Change] = []
    current: Mapping[Endpoint, int] = observed.weights if observed.exists else {}
    if not observed.exists:
        changes.append(Change(ChangeKind.ADD_VIRTUAL_SERVER, reason=why.virtual_server_missing()))
    elif observed.scheduler is not None and observed.scheduler != vs.scheduler:
        reason = why.repaired(f"scheduler was {observed.scheduler}, set {vs.scheduler}")
        changes.append(Change(ChangeKind.SET_SCHEDULER, detail=observed.scheduler, reason=reason))
    for problem in observed.problems:
        changes.append(Change(ChangeKind.REPAIR, detail=problem, reason=why.repaired(problem)))
    for ep in sorted(current):
        if ep not in desired:
            reason = why.removed(ep)
            changes.append(
                Change(ChangeKind.REMOVE_REAL_SERVER, ep, before=current[ep], reason=reason)
            )
    for ep in sorted(desired):
        wanted = desired[ep]
        if ep not in current:
            reason = why.added(ep, wanted)
            changes.append(Change(ChangeKind.ADD_REAL_SERVER, ep, weight=wanted, reason=reason))
        elif current[ep] != wanted:
            reason = why.reweighted(ep, wanted, current[ep])
            changes.append(
                Change(ChangeKind.SET_WEIGHT, ep, weight=wanted, before=current[ep], reason=reason)
            )
    return changes


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Reasons:
    """The log line for each kind of change: what happened and why."""

    def __init__(self, vs: VirtualServer, history: History):
        self.vs = vs
        self.history = history
        self.applied = history.applied

    def virtual_server_missing(self) -> str:
        if self.applied is None:
            return f"added virtual server {self.vs} (tcp, {self.vs.scheduler})"
        return f"repaired virtual server {self.vs}: it was missing from the kernel"

    def repaired(self, what: str) -> str:
        return f"repaired virtual server {self.vs}: {what}"

    def removed(self, ep: Endpoint) -> str:
        vs, health = self.vs, self.history.health.get(ep)
        if health is None:
            return f"removed foreign real server {ep} from {vs}: it is not one of lvscare's --rs"
        if self.applied is not None and ep not in self.applied:
            return f"repaired {vs}: removed {ep}, which someone re-added while it is down"
        return (
            f"removed {ep} from {vs}: {_plural(health.failures, 'consecutive failed probe')} "
            f"({health.reason})"
        )

    def _undone(self, ep: Endpoint, wanted: int) -> bool:
        """True when lvscare had already written `wanted`: someone else changed it since."""
        return self.applied is not None and self.applied.get(ep) == wanted

    def added(self, ep: Endpoint, wanted: int) -> str:
        if self._undone(ep, wanted):
            return f"repaired {ep} in {self.vs}: it was missing, added back with weight {wanted}"
        return self._weighted(ep, wanted)

    def reweighted(self, ep: Endpoint, wanted: int, before: int) -> str:
        if self._undone(ep, wanted):
            return f"repaired {ep} in {self.vs}: its weight was {before}, set back to {wanted}"
        return self._weighted(ep, wanted)

    def _weighted(self, ep: Endpoint, wanted: int) -> str:
        """A real server that gets `wanted` because of its probes: drained, new or restored."""
        vs, health = self.vs, self.history.health.get(ep) or Health()
        if wanted == 0:
            fall = self.history.policy.fall
            return (
                f"{ep} weight 0 in {vs}: probe failed ({health.reason}), "
                f"removal after {_plural(fall, 'consecutive failure')}"
            )
        if self.applied is None:
            return f"added {ep} to {vs} with weight {wanted} ({health.reason})"
        return (
            f"restored {ep} in {vs} with weight {wanted}: "
            f"{_plural(health.successes, 'consecutive successful probe')} ({health.reason})"
        )


def check_families(vs: Endpoint, real_servers: Iterable[Endpoint]) -> None:
    """Raise UserError when the real servers' address family differs from the virtual server's."""
    for rs in real_servers:
        if rs.family != vs.family:
            raise UserError(
                f"--vs {vs} is IPv{vs.family} but --rs {rs} is IPv{rs.family}: "
                "use one address family for both."
            )
