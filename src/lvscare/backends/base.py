"""The interface every backend implements: read the kernel's state, apply a difference, clean."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from lvscare.model import Change, Endpoint, Observed, VirtualServer


class BackendError(Exception):
    """The kernel refused or failed a read or a change; the loop logs it and retries next tick."""


class Backend(ABC):
    """Makes the kernel hold one virtual server with the desired real servers and weights."""

    name = "base"

    @abstractmethod
    def read(self, vs: VirtualServer) -> Observed:
        """What the kernel holds for `vs` now (also what someone else changed)."""

    @abstractmethod
    def apply(
        self,
        vs: VirtualServer,
        desired: Mapping[Endpoint, int],
        observed: Observed,
        changes: Sequence[Change],
    ) -> None:
        """Make the kernel match `desired`; `changes` is the planned difference from `observed`."""

    @abstractmethod
    def clean(self, vs: VirtualServer) -> bool:
        """Remove everything this backend made for `vs`; True when something was removed."""

    @abstractmethod
    def describe(self, vs: VirtualServer) -> str:
        """The kernel's rules for `vs` as a human reads them (for demos and debugging)."""

    def pinned_clients(self, vs: VirtualServer, rs: Endpoint) -> list[Endpoint]:
        """The clients whose established connections through `vs` still go to `rs`."""
        return []

    def close(self) -> None:  # noqa: B027 (most backends hold nothing to release)
        """Release sockets and handles."""
