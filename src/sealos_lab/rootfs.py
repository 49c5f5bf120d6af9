"""The Debian root filesystem every lab host boots (nspawn overlay lower dir, VM disk image source).

Built once with debootstrap and cached; a stamp holding the package list makes a changed list
rebuild it. The build goes to a temporary folder and is renamed into place, so a crash never leaves
a half-built rootfs that looks finished.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from sealos_lab.kernel import cache_lock
from sealos_lab.paths import CACHE

SUITE = "bookworm"
PACKAGES = (
    "systemd-sysv,udev,dbus,python3,python3-yaml,openssh-server,iproute2,kmod,curl,nftables,"
    "ipvsadm,openssl,procps,ca-certificates,netbase"
)


def _stamp() -> str:
    return hashlib.sha256(f"{SUITE} minbase {PACKAGES}".encode()).hexdigest()[:16]


def rootfs_path() -> Path:
    """The cached rootfs folder (may not exist yet)."""
    return CACHE / "rootfs"


def ensure_rootfs(quiet: bool = False) -> Path:
    """Return the cached rootfs, building it first (about a minute) if it is missing or stale."""
    final = rootfs_path()
    stamp = CACHE / "rootfs.stamp"
    if final.is_dir() and stamp.exists() and stamp.read_text().strip() == _stamp():
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    # Labs come up at once (tests in parallel): one builds, the others wait and take its result.
    with cache_lock("rootfs"):
        if final.is_dir() and stamp.exists() and stamp.read_text().strip() == _stamp():
            return final
        return _build(final, stamp, quiet)


def _build(final: Path, stamp: Path, quiet: bool) -> Path:
    tmp = CACHE / "rootfs.building"
    shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print(
            f"lab: building the {SUITE} rootfs with debootstrap (once, about a minute)",
            file=sys.stderr,
        )
    log = CACHE / "debootstrap.log"
    with log.open("w") as out:
        rc = subprocess.call(
            ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(tmp)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if rc != 0:
        raise RuntimeError(f"debootstrap failed (exit {rc}); see {log}")
    _tidy(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    stamp.write_text(_stamp() + "\n")
    return final


def _tidy(root: Path) -> None:
    """Settings every lab host shares: root may log in by password, no first-boot questions."""
    conf = root / "etc/ssh/sshd_config.d/lab.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("PermitRootLogin yes\nPasswordAuthentication yes\nUseDNS no\n")
    # Host keys are per host (written into each host's own upper dir), never shared.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    # debootstrap copies this machine's resolver; lab hosts resolve through /etc/hosts only.
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    resolv.write_text("# sealos-lab: no DNS server; names come from /etc/hosts\n")
    for unit in ("systemd-timesyncd.service", "apt-daily.timer", "apt-daily-upgrade.timer"):
        link = root / "etc/systemd/system/multi-user.target.wants" / unit
        if link.is_symlink():
            link.unlink()
