"""Debian packages as files, for the lab's release mirror and images: `apt-get download` once into
the lab cache, then `dpkg-deb -x` into a folder. Nothing is installed and no service starts on
this machine.

Packages of another architecture (arm64 on an amd64 machine) need that architecture known to
dpkg: `ensure_arch` adds it (`dpkg --add-architecture`, then `apt-get update`) and says so once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sealos_lab.kernel import cache_lock
from sealos_lab.paths import CACHE

# apt's download sandbox user cannot write into root's cache: download as root, quietly.
_APT_OPTS = ["-q", "-o", "APT::Sandbox::User=root"]


class DebError(RuntimeError):
    """A Debian package could not be had; str() says which and what to do."""


@dataclass(frozen=True)
class Unpacked:
    """A package's files unpacked under `root` (as they would land under `/`)."""

    package: str
    arch: str
    version: str
    root: Path

    def path(self, inside: str) -> Path:
        """The unpacked file that the package installs at `inside` (e.g. "/usr/bin/ctr")."""
        return self.root / inside.lstrip("/")


def deb_dir() -> Path:
    """Where downloaded .deb files and their unpacked folders live."""
    return CACHE / "debs"


def native_arch() -> str:
    """This machine's Debian architecture (amd64, arm64)."""
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def ensure_arch(arch: str) -> None:
    """Make `arch` a dpkg architecture here (a foreign one is added and apt's lists refreshed)."""
    if arch == native_arch():
        return
    foreign = subprocess.run(
        ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True, check=True
    ).stdout.split()
    if arch in foreign:
        return
    print(
        f"lab: adding the {arch} architecture to dpkg (dpkg --add-architecture {arch}; "
        f"apt-get update) to download Debian's {arch} binaries; nothing gets installed",
        file=sys.stderr,
    )
    subprocess.run(["dpkg", "--add-architecture", arch], check=True)
    _apt_update()


def _apt_update() -> None:
    proc = subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DebError(f"apt-get update failed: {proc.stderr.strip()[-500:]}")


def _cached(package: str, arch: str) -> list[Path]:
    return sorted(deb_dir().glob(f"{package}_*_{arch}.deb"))


def download(package: str, arch: str) -> Path:
    """The package's .deb for `arch` in the cache, fetched with `apt-get download` when missing."""
    found = _cached(package, arch)
    if found:
        return found[-1]
    ensure_arch(arch)
    deb_dir().mkdir(parents=True, exist_ok=True)
    print(f"lab: downloading Debian's {package} ({arch}) once", file=sys.stderr)
    proc = None
    for attempt in range(2):
        proc = subprocess.run(
            ["apt-get", "download", *_APT_OPTS, f"{package}:{arch}"],
            cwd=deb_dir(),
            capture_output=True,
            text=True,
        )
        found = _cached(package, arch)
        if found:
            return found[-1]
        if attempt == 0:
            _apt_update()
    detail = proc.stderr.strip()[-500:] if proc else ""
    raise DebError(
        f"could not download Debian's {package} for {arch} with apt-get: {detail}; "
        f"check the apt sources or put the .deb into {deb_dir()}"
    )


def unpacked(package: str, arch: str) -> Unpacked:
    """Debian's `package` for `arch`, unpacked once into the cache (`dpkg-deb -x`)."""
    with cache_lock(f"deb-{package}-{arch}"):
        deb = download(package, arch)
        version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        root = deb_dir() / "unpacked" / deb.stem
        if not (root / ".complete").exists():
            tmp = root.with_name(root.name + ".unpacking")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
            (tmp / ".complete").write_text(deb.name + "\n")
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
        return Unpacked(package, arch, version, root)


# ELF e_machine values of the architectures the lab builds for.
ELF_MACHINE = {"amd64": 62, "arm64": 183}


def elf_machine(data: bytes) -> int:
    """The e_machine field of an ELF file's header; ValueError when `data` is not ELF."""
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    if data[5] == 1:
        return int.from_bytes(data[18:20], "little")
    return int.from_bytes(data[18:20], "big")
