"""A lab's addresses: its /24 subnet (one per lab on this machine), each host's address and the
MAC of a VM host's network card."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection
from typing import Optional

FIRST_HOST_INDEX = 11
# Third octets of 10.250.N.0/24 a lab may take; 99-130 belong to other parts' tests.
SUBNET_OCTETS = [n for n in range(1, 255) if not 99 <= n <= 130]


def pick_subnet(name: str, taken: Collection[str]) -> Optional[str]:
    """A 10.250.N.0/24 chosen from the name, not among `taken`; None when all are taken."""
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(SUBNET_OCTETS)
    for k in range(len(SUBNET_OCTETS)):
        subnet = f"10.250.{SUBNET_OCTETS[(start + k) % len(SUBNET_OCTETS)]}.0/24"
        if subnet not in taken:
            return subnet
    return None


def host_index(number: int) -> int:
    """The host part of host `h<number>`'s address (h1 is .11)."""
    return FIRST_HOST_INDEX + number - 1


def host_ip(subnet: str, number: int) -> str:
    """The address of host `h<number>` in `subnet`."""
    return str(ipaddress.ip_network(subnet).network_address + host_index(number))


def operator_ip(subnet: str) -> str:
    """The operator side's address (the bridge, .1) in `subnet`."""
    return str(ipaddress.ip_network(subnet).network_address + 1)


def host_cidr(subnet: str, ip: str) -> str:
    """`ip` with the subnet's prefix length, as a VM's kernel command line takes it."""
    return f"{ip}/{ipaddress.ip_network(subnet).prefixlen}"


def vm_mac(subnet: str, number: int) -> str:
    """The MAC of VM host `h<number>`: unique per lab subnet and host on this machine."""
    octet = ipaddress.ip_network(subnet).network_address.packed[2]
    return f"52:54:00:fa:{octet:02x}:{number:02x}"
