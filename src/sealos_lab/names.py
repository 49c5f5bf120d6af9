"""What a lab, its hosts and their network namespaces may be called, and the lab's one error."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")
HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")


class LabError(Exception):
    """Something the user can fix; the message is one sentence that says how."""


def check_name(name: str) -> None:
    """LabError unless `name` is a usable lab name."""
    if not NAME_RE.match(name):
        raise LabError(
            f"{name!r} is not a usable lab name; use 1-20 lowercase letters, digits or dashes "
            "(not at either end), e.g. 'demo'"
        )


def check_hostname(hostname: str) -> None:
    """LabError unless `hostname` is a valid single-label hostname."""
    if not HOSTNAME_RE.match(hostname):
        raise LabError(
            f"{hostname!r} is not a valid hostname; use letters, digits and dashes, e.g. 'node-1'"
        )


def namespace_prefix(name: str) -> str:
    """Every network namespace of lab `name` is `<prefix>-sw` or `<prefix>-h<N>`."""
    return f"sl-{name}"


def owns_namespace(name: str, ns: str) -> bool:
    """True when network namespace `ns` belongs to lab `name` (and not to lab `name-x`)."""
    return re.match(rf"^{re.escape(namespace_prefix(name))}-(sw|h\d+)$", ns) is not None


def machine_name(name: str, host_name: str) -> str:
    """The machine name of host `host_name` ("h1") of lab `name`: `sl-<name>-h1`."""
    return f"sl-{name}-{host_name}"


def owns_machine(name: str, machine: str) -> bool:
    """True when machine `machine` is a host of lab `name` (and not of lab `name-x`)."""
    return re.fullmatch(rf"sl-{re.escape(name)}-h\d+", machine) is not None
