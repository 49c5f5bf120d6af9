"""An in-memory backend: a dict that plays the kernel, for tests of the reconcile logic.

Tests change `services` directly to play "someone else" (kube-proxy deleting a rule, an admin
adding a real server) and read `applied` to see what lvscare did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lvscare.backends.base import Backend, BackendError
from lvscare.model import Change, Endpoint, Observed, VirtualServer


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
            if change.action == "create-service":
                self.services[vs.endpoint] = MemoryService(vs.scheduler)
                continue
            service = self.services[vs.endpoint]
            if change.action == "set-scheduler":
                service.scheduler = vs.scheduler
            elif change.action == "remove" and change.endpoint is not None:
                service.weights.pop(change.endpoint, None)
            elif change.action in ("add", "set-weight") and change.endpoint is not None:
                service.weights[change.endpoint] = int(change.weight or 0)

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
