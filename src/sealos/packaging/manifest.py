"""`kube/manifest.json`: every file of the package with its SHA-256, size, source URL and version;
and `inspect`, which reads a package once and checks every file against it.

A file cut out of an upstream tarball names the tarball as its source and its `member`; a file
fetched through a --mirror records the upstream URL as `source` and the mirror's URL as `via`;
files the builder writes (init.sh, config.toml, version) have the source `generated`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sealos import package
from sealos.errors import SealosError, SpecError

MANIFEST = package.MANIFEST_MEMBER
FORMAT = 1
GENERATED = "generated"


@dataclass(frozen=True)
class FileRecord:
    """One file of the package as the manifest lists it."""

    path: str
    sha256: str
    size: int
    source: str
    version: str
    member: str = ""  # the file's name inside `source` when it was cut out of a tarball
    via: str = ""  # the mirror URL it was fetched from, when not from `source` itself

    def as_json(self) -> dict[str, Any]:
        """The record without its empty fields."""
        return {k: v for k, v in asdict(self).items() if v != ""}


def render(
    kubernetes: str,
    arch: str,
    cni: str,
    components: dict[str, str],
    images: list[str],
    files: list[FileRecord],
) -> bytes:
    """The manifest's bytes (sorted keys and files: the same package gives the same bytes)."""
    data = {
        "format": FORMAT,
        "builder": "sealos package build",
        "kubernetes": kubernetes,
        "arch": arch,
        "cni": cni,
        "components": components,
        "images": images,
        "files": [f.as_json() for f in sorted(files, key=lambda f: f.path)],
    }
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


@dataclass
class Inspection:
    """What `inspect` found: the manifest, its files, and every problem (empty when sound)."""

    manifest: dict[str, Any]
    files: list[FileRecord]
    problems: list[str] = field(default_factory=list)
    checked: int = 0


def inspect(path: Path) -> Inspection:
    """Read the package once, hashing every file, and check each against the manifest; an old
    package without a manifest, or one that is not a tar.gz, is a SealosError."""
    if not path.exists():
        raise SealosError(f"{path} does not exist.")
    try:
        found = package.scan(path)
    except SpecError as e:
        raise SealosError(f"{e}.") from None
    if found.manifest is None:
        raise SealosError(
            f"{path} has no {MANIFEST}: it is a package of the old shape (or not a sealos "
            "package), so there are no checksums to verify."
        )
    return check(found.manifest, dict(found.members), str(path))


def check(raw: bytes, actual: dict[str, tuple[str, int]], label: str) -> Inspection:
    """Check the package's files (`actual`: path -> SHA-256 and size) against the manifest's
    bytes `raw`; a manifest that cannot be read is a SealosError naming `label`."""
    try:
        manifest = json.loads(raw)
        files = [FileRecord(**f) for f in manifest["files"]]
    except (ValueError, KeyError, TypeError) as e:
        raise SealosError(f"{label}: {MANIFEST} is not a valid manifest ({e}).") from None
    found = Inspection(manifest, files)
    for record in files:
        got = actual.pop(record.path, None)
        if got is None:
            found.problems.append(f"{record.path} is listed in the manifest but missing")
        elif got != (record.sha256, record.size):
            found.problems.append(
                f"{record.path} has SHA-256 {got[0]} ({got[1]} bytes), "
                f"the manifest says {record.sha256} ({record.size} bytes)"
            )
        else:
            found.checked += 1
    for name in sorted(actual):
        found.problems.append(f"{name} is in the package but not in the manifest")
    return found
