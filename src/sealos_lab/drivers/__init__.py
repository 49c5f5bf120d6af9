"""The kinds of lab host behind one interface (`HostDriver`): nspawn containers and QEMU VMs."""

from __future__ import annotations

from sealos_lab.drivers.base import HostDriver
from sealos_lab.drivers.nspawn import NspawnDriver
from sealos_lab.drivers.vm import VMDriver
from sealos_lab.names import LabError

__all__ = ["DRIVERS", "HostDriver", "NspawnDriver", "VMDriver", "driver_for"]

DRIVERS: dict[str, HostDriver] = {d.kind: d for d in (NspawnDriver(), VMDriver())}


def driver_for(kind: str) -> HostDriver:
    """The driver of hosts of `kind` ("nspawn" or "vm"), as a lab records it."""
    try:
        return DRIVERS[kind]
    except KeyError:
        raise LabError(
            f"{kind!r} is not a kind of lab host (nspawn or vm); the lab's state is damaged: "
            "remove the lab with `sealos-lab down`"
        ) from None
