"""An in-memory backend: a dict that plays the kernel, for tests of the reconcile logic.

Tests change `services` directly to play "someone else" (kube-proxy deleting a rule, an admin
adding a real server) and read `applied` to see what lvscare did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from lvscare.backends.base import Backend, BackendError
from lvscare.model import Change, ChangeKind, Endpoint, Observed, VirtualServer


@dataclass
class MemoryService:
    """One virtual server as the pretend kernel holds it."""

    scheduler: str
    weights: dict[Endpoint, int] = field(default_factory=dict)


class MemoryBackend(Backend):
    """Keeps services in a dict; counts writes so tests can check that idle ticks write nothing."""

    name = "memory"

    def __init__(self) -> None:
        self.services: dict[Endpoint, MemoryService] = {}
        self.writes = 0
        self.applied: list[list[Change]] = []
        self.fail_next_apply = False

    def read(self, vs: VirtualServer) -> Observed:
        """The pretend kernel's state for `vs`."""
        service = self.services.get(vs.endpoint)
        if service is None:
            return Observed(exists=False)
        return Observed(exists=True, weights=dict(service.weights), scheduler=service.scheduler)

    def apply(
        self,
        vs: VirtualServer,
        desired: Mapping[Endpoint, int],
        observed: Observed,
        changes: Sequence[Change],
    ) -> None:
        """Apply each change the way a netlink backend would: one operation at a time."""
        if self.fail_next_apply:
            self.fail_next_apply = False
            raise BackendError("pretend kernel refused the change")
        self.applied.append(list(changes))
        for change in changes:
            self.writes += 1
            _HANDLERS[change.kind](self.services, vs, change)

    def clean(self, vs: VirtualServer) -> bool:
        """Forget the service."""
        return self.services.pop(vs.endpoint, None) is not None

    def describe(self, vs: VirtualServer) -> str:
        """ipvsadm-like text."""
        service = self.services.get(vs.endpoint)
        if service is None:
            return ""
        lines = [f"TCP  {vs.endpoint} {service.scheduler}"]
        lines += [f"  -> {ep}  Masq  {w}" for ep, w in sorted(service.weights.items())]
        return "\n".join(lines)


# One pretend-kernel operation per kind of change, on the services dict.
_Services = dict[Endpoint, MemoryService]


def _add_service(services: _Services, vs: VirtualServer, change: Change) -> None:
    services[vs.endpoint] = MemoryService(vs.scheduler)


def _set_scheduler(services: _Services, vs: VirtualServer, change: Change) -> None:
    services[vs.endpoint].scheduler = vs.scheduler


def _repair(services: _Services, vs: VirtualServer, change: Change) -> None:
    """Nothing to do: the pretend kernel reports no problems besides weights."""


def _remove(services: _Services, vs: VirtualServer, change: Change) -> None:
    if change.endpoint is not None:
        services[vs.endpoint].weights.pop(change.endpoint, None)


def _set_weight(services: _Services, vs: VirtualServer, change: Change) -> None:
    if change.endpoint is not None:
        services[vs.endpoint].weights[change.endpoint] = int(change.weight or 0)


_HANDLERS: dict[ChangeKind, Callable[[_Services, VirtualServer, Change], None]] = {
    ChangeKind.ADD_VIRTUAL_SERVER: _add_service,
    ChangeKind.SET_SCHEDULER: _set_scheduler,
    ChangeKind.REPAIR: _repair,
    ChangeKind.REMOVE_REAL_SERVER: _remove,
    ChangeKind.ADD_REAL_SERVER: _set_weight,
    ChangeKind.SET_WEIGHT: _set_weight,
}
