"""The offline package on the operator's side: its SHA-256, size and CPU architecture, and (for a
package from `sealos package build`) every file checked against its `kube/manifest.json`.

The package is read once: the bytes of the file are hashed as the tar stream is unpacked from
them. That takes seconds for 500 MB, so results are cached by path, size and mtime under
$SEALOS_HOME/cache/packages.json.
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
MANIFEST_MEMBER = "kube/manifest.json"
RUNTIME_MEMBER = "kube/bin/containerd"  # a package that installs its own container runtime
# Bumped when PackageInfo learns something new: older cache entries are read again.
_CACHE_FORMAT = 4

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
    manifest_files: Optional[int] = None  # files checked against kube/manifest.json; None: none
    brings_runtime: Optional[bool] = None  # it installs a container runtime; None: not read
    images: Optional[list[str]] = None  # the images its kube/manifest.json lists; None: no manifest


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


class _HashingReader:
    """A binary file whose every byte read is also hashed (tarfile reads through it)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.hash.update(data)
        return data

    def rest(self, chunk: int = 1 << 20) -> str:
        """Hash what tarfile left unread (padding, the gzip trailer); the file's SHA-256."""
        while self.read(chunk):
            pass
        return self.hash.hexdigest()


@dataclass
class Scan:
    """What one read of a package gives: the file's SHA-256, kubeadm's architecture, each
    member's SHA-256 and size (or a reason it is not a regular file), the manifest's bytes."""

    sha256: str
    arch: Optional[str]
    has_kubeadm: bool
    members: dict[str, tuple[str, int]]
    manifest: Optional[bytes]


def scan(path: Path) -> Scan:
    """Read the package once: hash the file and every member, find kubeadm's ELF header and
    kube/manifest.json. A file that is not a tar.gz is a SpecError."""
    arch: Optional[str] = None
    has_kubeadm = False
    members: dict[str, tuple[str, int]] = {}
    manifest: Optional[bytes] = None
    try:
        with path.open("rb") as raw:
            reader = _HashingReader(raw)
            with tarfile.open(fileobj=reader, mode="r|*") as tar:  # type: ignore[call-overload]
                for member in tar:
                    name = member.name.removeprefix("./")
                    if not member.isfile():
                        if not member.isdir():
                            members[name] = ("not a regular file", 0)
                        continue
                    f = tar.extractfile(member)
                    if f is None:
                        continue
                    if name == MANIFEST_MEMBER:
                        manifest = f.read()
                        continue
                    if name == KUBEADM_MEMBER:
                        has_kubeadm = True
                        head = f.read(20)
                        arch = elf_arch(head)
                        h = hashlib.sha256(head)
                        while block := f.read(1 << 20):
                            h.update(block)
                        members[name] = (h.hexdigest(), member.size)
                        continue
                    members[name] = (sha256_stream(f), member.size)
            sha = reader.rest()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SpecError(f"{path} is not a readable tar.gz ({e})") from None
    return Scan(sha, arch, has_kubeadm, members, manifest)


def inspect(path: Path, cache_dir: Optional[Path] = None) -> PackageInfo:
    """Size, SHA-256 and architecture of the package, its files checked against its manifest
    when it has one (cached by path, size and mtime); a package that does not match its
    manifest is a SpecError."""
    try:
        st = path.stat()
    except OSError:
        raise SpecError(f"the package file {path} does not exist; check --pkg.") from None
    if not path.is_file():
        raise SpecError(f"the package {path} is not a file; check --pkg.")
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:v{_CACHE_FORMAT}"
    cache = _load_cache(cache_dir)
    if key in cache:
        try:
            return PackageInfo(**cache[key])
        except TypeError:
            pass
    try:
        found = scan(path)
    except SpecError as e:
        raise SpecError(f"the package {e}; check --pkg.") from None
    if not found.has_kubeadm:
        raise SpecError(
            f"the package {path} has no {KUBEADM_MEMBER}; it is not a sealos offline package."
        )
    info = PackageInfo(
        path=str(path),
        size=st.st_size,
        sha256=found.sha256,
        arch=found.arch,
        manifest_files=_check_manifest(path, found),
        brings_runtime=RUNTIME_MEMBER in found.members,
        images=_manifest_images(found.manifest),
    )
    if cache_dir is not None:
        cache[key] = asdict(info)
        _save_cache(cache_dir, cache)
    return info


def _manifest_images(raw: Optional[bytes]) -> Optional[list[str]]:
    """The images kube/manifest.json lists (None: no manifest; _check_manifest judged it)."""
    if raw is None:
        return None
    try:
        listed = json.loads(raw).get("images")
    except (ValueError, AttributeError):
        return None
    return [str(i) for i in listed] if isinstance(listed, list) else None


def _check_manifest(path: Path, found: Scan) -> Optional[int]:
    """How many files match kube/manifest.json (None: the package has none); a mismatch is a
    SpecError naming the first problem."""
    if found.manifest is None:
        return None
    # Imported here: packaging.manifest reads packages with this module's helpers.
    from sealos.packaging import manifest

    checked = manifest.check(found.manifest, dict(found.members), str(path))
    if checked.problems:
        more = len(checked.problems) - 1
        others = f" (and {more} more problem(s))" if more else ""
        raise SpecError(
            f"the package {path} does not match its {MANIFEST_MEMBER}: "
            f"{checked.problems[0]}{others}; rebuild it or fetch it again "
            f"(`sealos package inspect {path}` lists every file)."
        )
    return checked.checked


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
