"""A reproducible tar.gz: the same entries give byte-identical output.

Names sorted, every directory listed before its contents, mtime fixed (MTIME, the epoch), owner
root (uid/gid 0), modes set by the builder (0755 executables and folders, 0644 the rest), GNU tar
format, and a gzip header without name or time. (Byte-identical given the same zlib: another
zlib version may compress the same tar differently; the tar inside stays identical.)
The file is written beside `out` under a temporary name and renamed at the end, so a failed build
leaves no partial package.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sealos.errors import SealosError

MTIME = 0
COMPRESS_LEVEL = 6  # fixed: the level changes the bytes; 9 costs much time for little


@dataclass(frozen=True)
class Entry:
    """A file of the archive: its name (`kube/...`), its content (a file or bytes), its mode."""

    name: str
    mode: int = 0o644
    source: Optional[Path] = None
    data: Optional[bytes] = None
    sha256: str = ""  # when given, the content read must have it (a cached file changed on disk)

    def size(self) -> int:
        """Size of the content in bytes."""
        if self.data is not None:
            return len(self.data)
        assert self.source is not None
        return self.source.stat().st_size

    def open(self) -> io.BufferedIOBase:
        """The content as a binary stream."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.source is not None
        return self.source.open("rb")


class _Hashing(io.RawIOBase):
    """A reader that hashes what passes through it."""

    def __init__(self, inner: io.BufferedIOBase) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        block = self.inner.read(size)
        self.hash.update(block)
        return block


def _info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def directories(names: Iterable[str]) -> set[str]:
    """Every parent folder of the names."""
    found: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            found.add("/".join(parts[:i]))
    return found


def write(out: Path, entries: Iterable[Entry]) -> None:
    """Write the archive to `out` (atomically: a temporary file renamed at the end)."""
    files = {e.name: e for e in entries}
    members: list[tuple[str, Optional[Entry]]] = [(d, None) for d in directories(files)]
    members += list(files.items())
    members.sort(key=lambda m: m[0])
    fd, part = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=COMPRESS_LEVEL
            ) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            for name, entry in members:
                if entry is None:
                    tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
                    continue
                with entry.open() as f:
                    reader = _Hashing(f)
                    tar.addfile(_info(name, tarfile.REGTYPE, entry.mode, entry.size()), reader)
                if entry.sha256 and reader.hash.hexdigest() != entry.sha256:
                    raise SealosError(
                        f"{entry.source} (for {name}) no longer has SHA-256 {entry.sha256}: "
                        "the download cache was changed; delete that file and build again."
                    )
        os.chmod(part, 0o644)
        os.replace(part, out)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
