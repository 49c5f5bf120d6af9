"""The model: a virtual server, its real servers, their health and the weights they should have.

Plain data and pure functions; no kernel, no sockets. The reconciler compares `desired_weights`
with what a backend `Observed` in the kernel and turns the difference into `Change`s (`plan`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise UserError(
                f"{flag} {text}: {host!r} is not an IP address; give the address, e.g. {example}."
            ) from None
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
    """

    exists: bool
    weights: Mapping[Endpoint, int] = field(default_factory=dict)
    scheduler: Optional[str] = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    """One difference between desired and observed state, to be applied by a backend.

    action: create-service | set-scheduler | repair | remove | add | set-weight.
    """

    action: str
    endpoint: Optional[Endpoint] = None
    weight: Optional[int] = None
    before: Optional[int] = None
    detail: str = ""


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


def plan(vs: VirtualServer, desired: Mapping[Endpoint, int], observed: Observed) -> list[Change]:
    """The changes that turn `observed` into `desired`, in the order a backend applies them."""
    changes: list[Change] = []
    current: Mapping[Endpoint, int] = observed.weights if observed.exists else {}
    if not observed.exists:
        changes.append(Change("create-service"))
    elif observed.scheduler is not None and observed.scheduler != vs.scheduler:
        changes.append(Change("set-scheduler", detail=observed.scheduler))
    changes.extend(Change("repair", detail=problem) for problem in observed.problems)
    for endpoint in sorted(current):
        if endpoint not in desired:
            changes.append(Change("remove", endpoint, before=current[endpoint]))
    for endpoint in sorted(desired):
        if endpoint not in current:
            changes.append(Change("add", endpoint, weight=desired[endpoint]))
        elif current[endpoint] != desired[endpoint]:
            changes.append(
                Change("set-weight", endpoint, weight=desired[endpoint], before=current[endpoint])
            )
    return changes


def check_families(vs: Endpoint, real_servers: Iterable[Endpoint]) -> None:
    """Raise UserError when the real servers' address family differs from the virtual server's."""
    for rs in real_servers:
        if rs.family != vs.family:
            raise UserError(
                f"--vs {vs} is IPv{vs.family} but --rs {rs} is IPv{rs.family}: "
                "use one address family for both."
            )
