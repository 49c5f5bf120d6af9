"""Downloads for `sealos package build`: in parallel, each verified against upstream's published
checksum before it is used, kept in a cache keyed by SHA-256 so a second build downloads nothing.

Cache layout (default `$SEALOS_HOME/cache/package-build`, or --cache DIR):
- `sha256/<hex>`: a verified file, named by its SHA-256 (what the package's manifest records).
- `urls.json`: which file each URL gave. Every URL the builder fetches is versioned (a release
  asset, or a file at a tag), so its answer is taken as fixed: a second build asks no server,
  checksum files included. Delete the cache, or point --cache elsewhere, to fetch again.
- `tmp/`: files being downloaded; moved into `sha256/` only once verified.
- `urls.lock`: builds sharing the cache (amd64 and arm64 at once) update `urls.json` under this
  lock, each re-reading it first, so neither loses what the other recorded.

A file whose SHA-256 differs from the published one is refused, naming the URL and both sums; it
never enters the cache. The user sees a rich progress bar on a terminal, plain lines otherwise.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TextIO

from sealos.errors import SealosError

CHUNK = 1 << 16
DEFAULT_TIMEOUT = 30.0  # seconds to connect, and between two reads of one download
USER_AGENT = "sealos-package-build"
STALE_SECONDS = 24 * 3600
HINT = "check --mirror and the network (a mirror must be up and reachable from here)."


class ChecksumMismatch(SealosError):
    """A download's SHA-256 is not the one upstream published."""


class FetchError(SealosError):
    """A URL could not be downloaded (refused, timed out, HTTP error)."""


class Stopped(FetchError):
    """A download given up because another one failed (never the error the user sees)."""


class Cache:
    """Verified files by SHA-256, and the SHA-256 each URL gave (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "sha256"
        self.tmp = root / "tmp"
        self._index_path = root / "urls.json"
        self._lock = threading.Lock()
        for d in (self.blobs, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._sweep()
        self._index: dict[str, str] = self._read()

    def _read(self) -> dict[str, str]:
        try:
            loaded = json.loads(self._index_path.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _update(self, key: str, sha256: Optional[str]) -> None:
        """Record (or, with None, drop) one URL in urls.json, merged with what other builds
        wrote meanwhile (under `urls.lock`)."""
        with self._lock, (self.root / "urls.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index = self._read()
            if sha256 is None:
                index.pop(key, None)
            else:
                index[key] = sha256
            part = self._index_path.with_suffix(f".{os.getpid()}.{threading.get_ident()}")
            part.write_text(json.dumps(index, indent=1, sort_keys=True))
            part.replace(self._index_path)
            self._index = index

    def _sweep(self, age: float = STALE_SECONDS) -> None:
        """Remove what interrupted builds left in tmp/ (old enough not to be another build's)."""
        now = time.time()
        for path in self.tmp.iterdir():
            try:
                if now - path.lstat().st_mtime <= age:
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError:
                pass

    def blob(self, sha256: str) -> Optional[Path]:
        """The cached file with this SHA-256, if any."""
        path = self.blobs / sha256
        return path if path.is_file() else None

    def known(self, key: str) -> Optional[tuple[Path, str]]:
        """(file, SHA-256) that `key` (a URL) gave before, if it is still cached."""
        sha = self._index.get(key)
        path = self.blob(sha) if sha else None
        return (path, sha) if path and sha else None

    def forget(self, key: str) -> None:
        """Ask the server again for `key` next time (its answer led to a refused file)."""
        self._update(key, None)

    def temp_file(self) -> Path:
        """A fresh path in the cache's tmp folder (same file system as the blobs)."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="part-")
        os.close(fd)
        return Path(name)

    def add(self, key: str, tmp: Path, sha256: str) -> Path:
        """Move the verified file `tmp` into the cache and remember that `key` gave it."""
        path = self.blobs / sha256
        os.chmod(tmp, 0o644)
        tmp.replace(path)
        self._update(key, sha256)
        return path


class Progress:
    """Download progress: plain lines (not a terminal) or a rich bar per file."""

    def __init__(self, out: Optional[TextIO] = None) -> None:
        self.out = out or sys.stdout
        self._rich = None
        self._lock = threading.Lock()
        if self.out.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(file=self.out),
            )

    def __enter__(self) -> Progress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def line(self, text: str) -> None:
        """One line of information."""
        with self._lock:
            if self._rich is not None:
                self._rich.console.print(text, markup=False, highlight=False)
            else:
                self.out.write(text + "\n")
                self.out.flush()

    @contextmanager
    def download(self, label: str, total: Optional[int]) -> Iterator[Callable[[int], None]]:
        """Track one download; yields a callable taking the bytes read since the last call."""
        bar = self._rich
        if bar is None:
            yield lambda n: None
            return
        task = bar.add_task(label, total=total)
        try:
            yield lambda n: bar.advance(task, n)
        finally:
            bar.remove_task(task)


@dataclass
class Fetched:
    """A file the build uses: where it is in the cache, its SHA-256, whether it was downloaded."""

    path: Path
    sha256: str
    downloaded: bool


class Fetcher:
    """Gets URLs through the cache; one instance is shared by the build's worker threads."""

    def __init__(self, cache: Cache, progress: Progress, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.cache = cache
        self.progress = progress
        self.timeout = timeout
        self.stop = threading.Event()  # set when one download failed: the others give up
        self.downloads = 0
        self._count = threading.Lock()

    def get(
        self, url: str, label: str, expected: Optional[str] = None, checksum_source: str = ""
    ) -> Fetched:
        """The file at `url`, from the cache when it holds it. With `expected`, a file whose
        SHA-256 differs is refused (ChecksumMismatch naming `checksum_source`)."""
        if expected is not None:
            blob = self.cache.blob(expected)
            if blob is not None:
                return Fetched(blob, expected, False)
        else:
            known = self.cache.known(url)
            if known is not None:
                return Fetched(known[0], known[1], False)
        tmp = self.cache.temp_file()
        try:
            sha = self._download(url, label, tmp)
            if expected is not None and sha != expected:
                raise ChecksumMismatch(
                    f"{url} has SHA-256 {sha}, but {checksum_source or 'upstream'} says "
                    f"{expected}; the file was refused (a tampered or broken download, "
                    "or a wrong --mirror)."
                )
            path = self.cache.add(url, tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)
        with self._count:
            self.downloads += 1
        return Fetched(path, sha, True)

    def _download(self, url: str, label: str, dest: Path) -> str:
        if not url.startswith(("http://", "https://")):
            raise FetchError(f"{url} is not an http(s) URL; check --mirror.")
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})  # noqa: S310
        h = hashlib.sha256()
        size = 0
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                total = response.headers.get("Content-Length")
                length = int(total) if total and total.isdigit() else None
                with dest.open("wb") as f, self.progress.download(label, length) as advance:
                    while True:
                        if self.stop.is_set():
                            raise Stopped(f"{url}: stopped (another download failed).")
                        block = response.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        h.update(block)
                        size += len(block)
                        advance(len(block))
        except urllib.error.HTTPError as e:
            raise FetchError(
                f"{url} answered HTTP {e.code} {e.reason}; check the version and --mirror."
            ) from None
        except urllib.error.URLError as e:
            raise FetchError(f"cannot reach {url}: {_reason(e.reason)}; {HINT}") from None
        except (socket.timeout, TimeoutError):
            raise FetchError(f"{url} sent nothing for {self.timeout:g} s; {HINT}") from None
        except OSError as e:
            raise FetchError(f"cannot download {url}: {_reason(e)}; {HINT}") from None
        self.progress.line(f"downloaded {label} ({size} bytes) from {url}")
        return h.hexdigest()


def _reason(reason: object) -> str:
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)
