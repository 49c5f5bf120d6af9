"""The offline package on the operator's side: its SHA-256, size and CPU architecture.

Hashing and scanning a 500 MB tarball takes seconds, so results are cached by path, size and mtime
under $SEALOS_HOME/cache/packages.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Optional

from sealos.errors import SpecError
from sealos.state import make_private_dir

KUBEADM_MEMBER = "kube/bin/kubeadm"
RUNTIME_MEMBER = "kube/bin/containerd"

# ELF e_machine values of the architectures Kubernetes ships, as Go/Kubernetes names them.
_ELF_MACHINES = {
    0x3E: "amd64",
    0xB7: "arm64",
    0x28: "arm",
    0x15: "ppc64le",
    0x16: "s390x",
    0x03: "386",
}
# `uname -m` spellings, as Go/Kubernetes names them.
_UNAME_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "i686": "386",
    "i386": "386",
}


@dataclass(frozen=True)
class PackageInfo:
    """What sealos knows about a local offline package."""

    path: str
    size: int
    sha256: str
    arch: Optional[str]  # None when kubeadm inside is not an ELF binary (e.g. a script)
    brings_runtime: Optional[bool] = None  # it installs a container runtime; None: not read


def host_arch(uname_m: str) -> str:
    """`uname -m` as a Kubernetes architecture name (amd64, arm64, ...)."""
    return _UNAME_ARCH.get(uname_m, uname_m)


def elf_arch(head: bytes) -> Optional[str]:
    """The architecture of an ELF binary from its first 20 bytes, or None if it is not ELF."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    little = head[5] == 1
    machine = int.from_bytes(head[18:20], "little" if little else "big")
    return _ELF_MACHINES.get(machine, f"elf-machine-{machine:#x}")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a local file, hex."""
    with path.open("rb") as f:
        return sha256_stream(f, chunk)


def sha256_stream(f: IO[bytes], chunk: int = 1 << 20) -> str:
    """SHA-256 of what is left to read in a binary stream (a file, a tar member), hex."""
    h = hashlib.sha256()
    while block := f.read(chunk):
        h.update(block)
    return h.hexdigest()


def scan(path: Path) -> tuple[Optional[str], bool]:
    """Read the tarball as a stream: the ELF architecture of kube/bin/kubeadm, and whether the
    package brings a container runtime (kube/bin/containerd, as `sealos package build` lays out)."""
    arch: Optional[str] = None
    found_kubeadm = brings_runtime = False
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if name == KUBEADM_MEMBER and member.isfile():
                    f = tar.extractfile(member)
                    arch = elf_arch(f.read(20)) if f else None
                    found_kubeadm = True
                elif name == RUNTIME_MEMBER and member.isfile():
                    brings_runtime = True
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SpecError(
            f"the package {path} is not a readable tar.gz ({e}); check --pkg."
        ) from None
    if not found_kubeadm:
        raise SpecError(
            f"the package {path} has no {KUBEADM_MEMBER}; it is not a sealos offline package."
        )
    return arch, brings_runtime


def inspect(path: Path, cache_dir: Optional[Path] = None) -> PackageInfo:
    """Size, SHA-256 and architecture of the package (cached by path, size and mtime)."""
    try:
        st = path.stat()
    except OSError:
        raise SpecError(f"the package file {path} does not exist; check --pkg.") from None
    if not path.is_file():
        raise SpecError(f"the package {path} is not a file; check --pkg.")
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:2"  # :2 = entries with brings_runtime
    cache = _load_cache(cache_dir)
    if key in cache:
        try:
            return PackageInfo(**cache[key])
        except TypeError:
            pass
    arch, brings_runtime = scan(path)
    info = PackageInfo(
        path=str(path),
        size=st.st_size,
        sha256=sha256_file(path),
        arch=arch,
        brings_runtime=brings_runtime,
    )
    if cache_dir is not None:
        cache[key] = asdict(info)
        _save_cache(cache_dir, cache)
    return info


def _load_cache(cache_dir: Optional[Path]) -> dict[str, dict]:
    if cache_dir is None:
        return {}
    try:
        data = json.loads((cache_dir / "packages.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(cache_dir: Path, cache: dict[str, dict]) -> None:
    try:
        make_private_dir(cache_dir)
        tmp = cache_dir / f"packages.json.{os.getpid()}"
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(cache_dir / "packages.json")
    except OSError:
        pass  # a cache that cannot be written only costs time
