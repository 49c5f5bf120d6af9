"""Host lists as users type them: `IP`, `IP:sshport`, ranges `10.0.0.2-10.0.0.9`, host names.

Several values may share one flag, separated by commas: `--node 10.0.0.5,10.0.0.7-10.0.0.9`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sealos.errors import SpecError

DEFAULT_SSH_PORT = 22
# A typo such as 10.0.0.2-10.9.0.2 would expand to half a million hosts: refuse big ranges.
MAX_RANGE = 1024

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True, order=True)
class HostAddress:
    """Where to reach one host over SSH: an IP address or a host name, and the SSH port."""

    host: str
    port: int = DEFAULT_SSH_PORT

    @property
    def key(self) -> str:
        """A stable identity, `host:port`, used in the state file and for duplicate checks."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_ip(self) -> bool:
        """True when `host` is an IP address rather than a name."""
        return _ip(self.host) is not None

    def __str__(self) -> str:
        if self.port == DEFAULT_SSH_PORT:
            return self.host
        return self.key


_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class Bastion:
    """The jump host every host is reached through: its address and, when given as USER@, the
    user to log in to it as (else the targets' user)."""

    address: HostAddress
    user: str | None = None

    def __str__(self) -> str:
        return f"{self.user}@{self.address}" if self.user else str(self.address)


def parse_bastion(text: str, flag: str = "--bastion") -> Bastion:
    """`[USER@]HOST[:PORT]` (HOST an IP, [IPv6] or a name; PORT 22 by default) as one host."""
    text = str(text).strip()
    if not text:
        raise SpecError(f"{flag} is empty; give the jump host as [USER@]HOST[:PORT].")
    user: str | None = None
    host_text = text
    if "@" in text:
        user, host_text = text.split("@", 1)
        if "@" in host_text:
            raise SpecError(f"{flag} {text!r} holds more than one '@'; write USER@HOST[:PORT].")
        if not _USER.match(user):
            raise SpecError(
                f"{flag} {text!r}: {user!r} is not a user name (letters, digits, _ . -); "
                "write USER@HOST[:PORT]."
            )
    if "," in host_text:
        raise SpecError(f"{flag} {text!r} names several hosts; give one jump host.")
    hosts = parse_host(host_text, DEFAULT_SSH_PORT, flag)
    if len(hosts) != 1:
        raise SpecError(f"{flag} {text!r} is a range; give one jump host.")
    return Bastion(hosts[0], user)


def parse_hosts(
    values: Iterable[str], default_port: int = DEFAULT_SSH_PORT, flag: str = "--node"
) -> list[HostAddress]:
    """Expand every value (commas, ranges, ports) into host addresses, in the order given."""
    result: list[HostAddress] = []
    for value in values:
        for item in str(value).split(","):
            item = item.strip()
            if item:
                result.extend(parse_host(item, default_port, flag))
    return result


def parse_host(
    text: str, default_port: int = DEFAULT_SSH_PORT, flag: str = "--node"
) -> list[HostAddress]:
    """Parse one entry: an address, a name, or a range; each optionally followed by `:port`."""
    host, port = _split_port(text, default_port, flag)
    if "%" in host:
        raise SpecError(
            f"{flag} {text!r} is a scoped IPv6 address (with %zone), which kubeadm, nft and "
            "lvscare cannot use; give the host's global address."
        )
    if "-" in host and _looks_like_ip_range(host):
        return [HostAddress(ip, port) for ip in _expand_range(host, text, flag)]
    ip = _ip(host)
    if ip is not None:
        return [HostAddress(str(ip), port)]
    if _HOSTNAME.match(host) and not _all_digits_and_dots(host):
        return [HostAddress(host.lower(), port)]
    raise SpecError(
        f"{flag} {text!r} is neither an IP address, a range like 10.0.0.2-10.0.0.9, "
        "nor a host name; "
        "check the spelling."
    )


def _split_port(text: str, default_port: int, flag: str) -> tuple[str, int]:
    if text.startswith("["):
        # [IPv6]:port
        end = text.find("]")
        if end < 0:
            raise SpecError(f"{flag} {text!r} opens a '[' but never closes it; write [fd00::2]:22.")
        host, rest = text[1:end], text[end + 1 :]
        if not rest:
            return host, default_port
        if not rest.startswith(":"):
            raise SpecError(f"{flag} {text!r}: after ']' only ':PORT' may follow.")
        return host, _port(rest[1:], text, flag)
    if text.count(":") == 1:
        host, port_text = text.split(":")
        return host, _port(port_text, text, flag)
    # Zero colons: plain host; more than one: a bare IPv6 address without a port.
    return text, default_port


def _port(port_text: str, text: str, flag: str) -> int:
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SpecError(
            f"{flag} {text!r} has SSH port {port_text!r}; give a number from 1 to 65535."
        )
    return int(port_text)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _all_digits_and_dots(text: str) -> bool:
    return all(c.isdigit() or c == "." for c in text)


def _looks_like_ip_range(host: str) -> bool:
    start = host.split("-", 1)[0]
    return _ip(start) is not None


def _expand_range(host: str, text: str, flag: str) -> list[str]:
    start_text, end_text = host.split("-", 1)
    start = _ip(start_text)
    end = _ip(end_text)
    if end is None and end_text.isdigit() and isinstance(start, ipaddress.IPv4Address):
        # Short form 10.0.0.2-9: the end replaces the last octet.
        end = _ip(start_text.rsplit(".", 1)[0] + "." + end_text)
    if start is None or end is None or start.version != end.version:
        raise SpecError(f"{flag} {text!r} is not a valid range; write it as 10.0.0.2-10.0.0.9.")
    first, last = int(start), int(end)
    if last < first:
        raise SpecError(
            f"{flag} {text!r}: the range ends before it starts; write the lower address first."
        )
    if last - first + 1 > MAX_RANGE:
        raise SpecError(
            f"{flag} {text!r} spans {last - first + 1} addresses (at most {MAX_RANGE}); "
            "check the range for a typo."
        )
    cls = type(start)
    return [str(cls(i)) for i in range(first, last + 1)]


def find_duplicates(hosts: Iterable[HostAddress]) -> list[HostAddress]:
    """Hosts that appear more than once (same host and port), each reported once."""
    seen: set[str] = set()
    dups: list[HostAddress] = []
    for h in hosts:
        if h.key in seen and h not in dups:
            dups.append(h)
        seen.add(h.key)
    return dups
