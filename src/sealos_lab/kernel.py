"""Debian's cloud kernel (IPVS and virtio as modules, ext4 built in), cached for the lab's VMs.

The package is resolved through apt (`linux-image-cloud-amd64` depends on the current
`linux-image-<version>-cloud-amd64`), downloaded once into the cache, unpacked, and given the
modules.dep that the .deb does not ship (`depmod -b`). A .deb already in the cache is reused, and
without apt metadata the newest kernel already unpacked is used.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sealos_lab.paths import CACHE

META_PACKAGE = "linux-image-cloud-amd64"
_PKG_RE = re.compile(r"^linux-image-(\d[\w.+-]*-cloud-amd64)$")


@dataclass(frozen=True)
class Kernel:
    """An unpacked kernel: its release string, bootable image and modules folder."""

    version: str
    vmlinuz: Path
    modules_dir: Path

    @property
    def base(self) -> Path:
        """The folder holding `lib/modules/<version>` (what `modprobe -d` and `depmod -b` take)."""
        return self.modules_dir.parents[2]


def kernel_cache() -> Path:
    """Where unpacked kernels live, one folder per release."""
    return CACHE / "kernel"


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Serialise builds of one cached artefact between processes (tests run side by side)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f".{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _unpacked(version: str) -> Optional[Kernel]:
    root = kernel_cache() / version
    if not (root / ".complete").exists():
        return None
    return Kernel(
        version=version,
        vmlinuz=root / "boot" / f"vmlinuz-{version}",
        modules_dir=root / "lib" / "modules" / version,
    )


def _apt_lists_stamp() -> str:
    """Changes whenever `apt-get update` refreshed the package lists."""
    try:
        return str(Path("/var/lib/apt/lists").stat().st_mtime_ns)
    except OSError:
        return "none"


def _resolve_package() -> Optional[str]:
    """The versioned kernel package that the cloud meta package depends on now, if apt knows.

    Asking apt takes about a second, so the answer is remembered until the apt lists change.
    """
    memo = kernel_cache() / "resolved"
    stamp = _apt_lists_stamp()
    try:
        seen_stamp, seen_package = memo.read_text().split()
        if seen_stamp == stamp and _PKG_RE.match(seen_package):
            return seen_package
    except (OSError, ValueError):
        pass
    package = _ask_apt()
    if package is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"resolved.{os.getpid()}.tmp")
        tmp.write_text(f"{stamp} {package}\n")
        tmp.replace(memo)
    return package


def _ask_apt() -> Optional[str]:
    try:
        out = subprocess.run(
            ["apt-cache", "depends", META_PACKAGE], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        dep = line.strip().removeprefix("Depends:").strip()
        if _PKG_RE.match(dep):
            return dep
    return None


def _cached_debs() -> list[Path]:
    """Kernel packages already in the cache, newest name last."""
    return sorted(CACHE.glob("linux-image-*-cloud-amd64_*.deb"))


def _download(package: str) -> Path:
    """Fetch the package's .deb into the cache with apt (refreshing the lists once if needed)."""
    for attempt in range(2):
        proc = subprocess.run(
            ["apt-get", "download", "-q", package], cwd=CACHE, capture_output=True, text=True
        )
        found = sorted(CACHE.glob(f"{package}_*.deb"))
        if found:
            return found[-1]
        if attempt == 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
    raise RuntimeError(
        f"could not download {package} with apt-get: {proc.stderr.strip()[-500:]}; "
        f"check the apt sources or put the .deb into {CACHE}"
    )


def _unpack(deb: Path, version: str) -> Kernel:
    final = kernel_cache() / version
    tmp = kernel_cache() / f"{version}.unpacking"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    # The .deb ships no modules.dep: modprobe needs it to load ip_vs with its dependencies.
    subprocess.run(["depmod", "-b", str(tmp), version], check=True)
    (tmp / ".complete").write_text(deb.name + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    kernel = _unpacked(version)
    assert kernel is not None
    return kernel


def _version_of(package: str) -> str:
    match = _PKG_RE.match(package)
    if not match:
        raise RuntimeError(f"unexpected kernel package name {package!r}")
    return match.group(1)


def _newest_cached() -> Optional[Kernel]:
    """The newest kernel already unpacked, else one unpacked from the newest cached .deb."""
    have = sorted(p.name for p in kernel_cache().glob("*-cloud-amd64") if _unpacked(p.name))
    if have:
        return _unpacked(have[-1])
    debs = _cached_debs()
    if debs:
        return _unpack(debs[-1], _version_of(debs[-1].name.split("_")[0]))
    return None


def ensure_kernel(quiet: bool = False) -> Kernel:
    """Return Debian's current cloud kernel, unpacked in the cache (downloaded once).

    Without apt metadata, or when a newer kernel cannot be downloaded, a cached one is used.
    """
    package = _resolve_package()
    if package is not None:
        kernel = _unpacked(_version_of(package))
        if kernel is not None:
            return kernel
    with cache_lock("kernel"):
        if package is None:
            kernel = _newest_cached()
            if kernel is None:
                raise RuntimeError(
                    f"apt does not know {META_PACKAGE} and no kernel is cached in {CACHE}; "
                    "run `apt-get update` (needs the Debian archive) and retry"
                )
            return kernel
        version = _version_of(package)
        kernel = _unpacked(version)
        if kernel is not None:
            return kernel
        debs = sorted(CACHE.glob(f"{package}_*.deb"))
        if debs:
            return _unpack(debs[-1], version)
        if not quiet:
            print(f"lab: downloading {package} (once)", file=sys.stderr)
        try:
            deb = _download(package)
        except RuntimeError as e:
            # Offline with a kernel from before the archive moved on: keep using that one.
            kernel = _newest_cached()
            if kernel is None:
                raise
            if not quiet:
                print(f"lab: {e}; using the cached kernel {kernel.version}", file=sys.stderr)
            return kernel
        return _unpack(deb, version)


def module_load_order(kernel: Kernel, modules: list[str]) -> list[Path]:
    """The .ko files to insmod, dependencies first, to load `modules` (no duplicates)."""
    order: list[Path] = []
    for name in modules:
        out = subprocess.run(
            ["modprobe", "-d", str(kernel.base), "-S", kernel.version, "--show-depends", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod":
                path = Path(parts[1])
                if path not in order:
                    order.append(path)
    return order
