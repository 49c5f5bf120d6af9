"""Read-only layers over the lab rootfs: what a Kubernetes host needs besides Debian's minbase.

- "tools": conntrack and iptables (kubeadm's preflight looks for them; ip, mount and nsenter are
  in the rootfs already). Every host has it.
- "containerd": Debian's containerd and runc, the unit enabled, its config as Debian ships it
  (none: containerd's defaults, cgroupfs). Hosts of a lab with runtime "containerd" (the default)
  have it; runtime "none" leaves it out, for packages that bring their own containerd.
- "sudo": Debian's sudo, for hosts where sealos logs in as a user that is not root (`HostSpec`
  sudo=True; opt-in, on top of "containerd"). The user itself is made on the running host
  (`sealos_lab.testing.make_sudo_user`).

Each layer is built once into the lab cache: the rootfs (and the layers below) mounted as an
overlay, Debian's packages (`apt-get download`) installed with dpkg chrooted into it, services
kept from starting, and the overlay's upper folder kept as the layer. A stamp of the package
list and the layers below makes a changed list rebuild it; other labs' hosts keep the old folder
until they stop: a layer is never changed or removed in place (a running host's overlay may use
it).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from sealos_lab import debs
from sealos_lab.kernel import cache_lock
from sealos_lab.paths import CACHE
from sealos_lab.rootfs import ensure_rootfs

LAYERS: dict[str, tuple[str, ...]] = {
    "tools": ("libnfnetlink0", "libnetfilter-conntrack3", "libip6tc2", "conntrack", "iptables"),
    "containerd": ("runc", "containerd"),
    "sudo": ("sudo",),
}
# Layers in the order they stack (a layer is built on the ones before it).
ORDER = ("tools", "containerd", "sudo")
RUNTIMES = ("containerd", "none")
RECIPE = "1"


def layers_for(runtime: str, sudo: bool = False) -> list[str]:
    """The layers a host with `runtime` ("containerd" or "none") boots with, lowest first;
    `sudo` adds Debian's sudo (built on the containerd layer, so only with that runtime)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if sudo and runtime != "containerd":
        raise ValueError("the sudo layer stacks on the containerd runtime")
    names = ["tools", "containerd"] if runtime == "containerd" else ["tools"]
    return [*names, "sudo"] if sudo else names


def _root() -> Path:
    return CACHE / "layers"


def _stamp(name: str) -> str:
    below = ORDER[: ORDER.index(name)]
    rootfs_stamp = (CACHE / "rootfs.stamp").read_text().strip()
    text = " ".join([RECIPE, rootfs_stamp, *(_stamp(b) for b in below), name, *LAYERS[name]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def layer_path(name: str) -> Path:
    """The folder of a built layer (may not exist yet)."""
    return _root() / f"{name}-{_stamp(name)}"


def ensure_layers(runtime: str, sudo: bool = False) -> list[Path]:
    """The rootfs and the layers of `runtime` (and sudo), lowest first, each built first if
    missing."""
    rootfs = ensure_rootfs(quiet=True)
    folders = [rootfs]
    for name in layers_for(runtime, sudo):
        folders.append(_ensure_layer(name, folders))
    return folders


def _ensure_layer(name: str, below: list[Path]) -> Path:
    final = layer_path(name)
    if final.is_dir():
        return final
    with cache_lock(f"layer-{name}"):
        if final.is_dir():
            return final
        print(f"lab: building the {name} layer (once): {' '.join(LAYERS[name])}", file=sys.stderr)
        arch = debs.native_arch()
        packages = [debs.download(p, arch) for p in LAYERS[name]]
        work = _root() / f"{name}.building"
        shutil.rmtree(work, ignore_errors=True)
        upper, scratch, merged = work / "upper", work / "work", work / "merged"
        for folder in (upper, scratch, merged):
            folder.mkdir(parents=True)
        # overlayfs lists lower folders highest first
        lower = ":".join(str(f) for f in reversed(below))
        subprocess.run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={lower},upperdir={upper},workdir={scratch}",
                str(merged),
            ],
            check=True,
        )
        try:
            _install(merged, packages)
        finally:
            subprocess.run(["umount", str(merged)], check=False)
        upper.rename(final)
        shutil.rmtree(work, ignore_errors=True)
    return final


def _install(merged: Path, packages: list[Path]) -> None:
    """dpkg -i the packages chrooted into merged; no service starts (policy-rc.d, no systemd)."""
    inside = "/var/cache/sealos-lab-debs"  # in the chroot; removed before the layer is kept
    drop = merged / inside.lstrip("/")
    drop.mkdir(parents=True)
    for deb in packages:
        shutil.copy2(deb, drop / deb.name)
    policy = merged / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        proc = subprocess.run(
            [
                "chroot",
                str(merged),
                "dpkg",
                "-i",
                *(f"{inside}/{deb.name}" for deb in packages),
            ],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"},
        )
        if proc.returncode != 0:
            detail = proc.stdout[-800:] + proc.stderr
            raise RuntimeError(f"dpkg -i in the lab layer failed: {detail}")
    finally:
        policy.unlink()
        shutil.rmtree(drop, ignore_errors=True)
