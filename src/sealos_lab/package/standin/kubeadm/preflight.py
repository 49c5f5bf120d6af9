"""Preflight: the host checks before init or join, and the refusal of unmanageable hosts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..hostenv import host_path, port_in_use, standin_root, systemd_usable, without_systemd
from .common import KubeadmFailure


def require_manageable_host() -> None:
    """Refuse to change a host whose services the stand-ins can't manage.

    Lab hosts run systemd; tests set SEALOS_STANDIN_ROOT and SEALOS_STANDIN_NO_SYSTEMD=1 together.
    Anything else (a developer machine without systemd, or a half-set test mode) is refused
    before a single file is written.
    """
    if standin_root() and not without_systemd():
        raise KubeadmFailure(
            "SEALOS_STANDIN_ROOT is set but SEALOS_STANDIN_NO_SYSTEMD is not: test mode needs both "
            "(set SEALOS_STANDIN_NO_SYSTEMD=1)"
        )
    if not systemd_usable():
        raise KubeadmFailure(
            "this host does not run systemd, which the sealos-lab stand-ins use for the kubelet "
            "and "
            "the apiserver: run them on a lab host, or set SEALOS_STANDIN_ROOT=DIR and "
            "SEALOS_STANDIN_NO_SYSTEMD=1 for test mode"
        )


def run_preflight(checks: list[tuple[str, str, bool]], ignored: list[str]) -> None:
    """Print warnings, fail on errors not ignored (kubeadm's preflight output)."""
    ignore = {i.lower() for i in ignored}
    fatal = []
    for name, message, is_error in checks:
        if is_error and "all" not in ignore and name.lower() not in ignore:
            fatal.append(f"\t[ERROR {name}]: {message}")
        else:
            sys.stderr.write(f"\t[WARNING {name}]: {message}\n")
    if fatal:
        raise KubeadmFailure(
            "error execution phase preflight: [preflight] Some fatal errors occurred:\n"
            + "\n".join(fatal)
            + "\n[preflight] If you know what you are doing, you can make a check non-fatal with "
            "`--ignore-preflight-errors=...`"
        )


def file_check(path: str) -> list[tuple[str, str, bool]]:
    if host_path(path).exists():
        name = "FileAvailable-" + path.replace("/", "-")
        return [(name, f"{path} already exists", True)]
    return []


def dir_check(path: str) -> list[tuple[str, str, bool]]:
    target = host_path(path)
    if target.is_dir() and any(target.iterdir()):
        return [("DirAvailable-" + path.replace("/", "-"), f"{path} is not empty", True)]
    return []


def port_check(port: int) -> list[tuple[str, str, bool]]:
    return [(f"Port-{port}", f"Port {port} is in use", True)] if port_in_use(port) else []


def common_checks() -> list[tuple[str, str, bool]]:
    checks: list[tuple[str, str, bool]] = []
    if os.geteuid() != 0:
        checks.append(("IsPrivilegedUser", "user is not running as root", True))
    unit = host_path("/etc/systemd/system/kubelet.service")
    if not unit.exists() and not Path("/lib/systemd/system/kubelet.service").exists():
        checks.append(
            (
                "Service-Kubelet",
                "kubelet service is not enabled, please run 'systemctl enable kubelet.service'",
                False,
            )
        )
    return checks
