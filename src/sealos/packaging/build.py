"""`sealos package build`: an offline package from upstream releases (issue 9).

Steps: the version's pins (package_versions), the artifacts (sources), their downloads in
parallel, each verified against upstream's checksum (fetch), the images (images, skopeo), the
package's files laid out as sealos packages have them, the manifest, one reproducible tar.gz.

Why not the runner (`sealos/runner.py`): the runner is built around hosts (a cluster spec, SSH
connections, facts, phases that run on hosts, a summary per host, the state store); building a
package touches no host and no cluster state. So this command is one function that the CLI calls
under its usual error handling (`cli._run`), with its own small progress output.

Choices where the issue is silent:
- Default output name: `kube1.28.15.tar.gz` (amd64, the name sealos packages always had),
  `kube1.28.15-arm64.tar.gz` for other architectures, in the current folder.
- Layout on the node (what init.sh does with it): kubeadm, kubelet and kubectl to /usr/bin (the
  kubelet unit's ExecStart); containerd, ctr, its shims and crictl to /usr/local/bin and runc to
  /usr/local/sbin, as containerd's getting-started says (and clear of distribution packages);
  the units in /etc/systemd/system, beside the kubelet's.
- Every regular file under the containerd tarball's `bin/` goes to kube/bin (containerd, ctr and
  containerd-shim-runc-v2 must be there); every file of the CNI tarball to kube/cni/bin.
- Images: kubeadm's list for the exact version, then the CNI manifest's images (with --cni none,
  kubeadm's only). `images=False` (no CLI flag) builds without images: the unit tests use it,
  having no registry; the lab's integration test pulls from a real registry.
- Kubernetes before 1.24 is refused (package_versions: containerd serves 1.24 and later).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Optional, TextIO, TypeVar

from sealos import __version__
from sealos import package_versions as pv
from sealos.errors import SealosError, SpecError
from sealos.kubeversion import KubeVersion
from sealos.package import sha256_file
from sealos.packaging import archive, containerd_config, images, manifest, sources
from sealos.packaging.fetch import (
    DEFAULT_TIMEOUT,
    Cache,
    ChecksumMismatch,
    Fetched,
    Fetcher,
    Progress,
)
from sealos.packaging.sources import Artifact
from sealos.state import sealos_home

T = TypeVar("T")
CONTAINERD_REQUIRED = ("containerd", "ctr", "containerd-shim-runc-v2")
EXECUTABLE = 0o755


@dataclass
class BuildOptions:
    """What `sealos package build` was asked for."""

    version: str
    arch: str = "amd64"
    cni: str = "calico"
    out: Optional[Path] = None
    mirrors: dict[str, str] = field(default_factory=dict)  # upstream host -> base URL
    registry_mirrors: dict[str, str] = field(default_factory=dict)  # registry -> host[:port]
    cache: Optional[Path] = None
    insecure_registry: bool = False
    images: bool = True  # False: no images (tests without a registry; see the docstring)
    timeout: float = DEFAULT_TIMEOUT
    jobs: int = 4


@dataclass
class BuildResult:
    """The package written, and what it took."""

    path: Path
    size: int
    files: int
    images: int
    downloaded: int  # files and images fetched from a server (0: all from the cache)
    seconds: float


def default_cache() -> Path:
    """Where downloads are kept between builds."""
    return sealos_home() / "cache" / "package-build"


def parse_version(text: str) -> KubeVersion:
    """The Kubernetes version to package; SpecError with the supported range otherwise."""
    try:
        version = KubeVersion.parse(text)
    except SpecError:
        if not re.match(r"^v?\d+\.\d+\.\d+$", text.strip()):
            raise
        raise SpecError(
            f"a package for Kubernetes {text} cannot be built: supported are "
            f"{pv.supported_range()}."
        ) from None
    pv.runtime(version)
    return version


def build(opts: BuildOptions, out: Optional[TextIO] = None) -> BuildResult:
    """Build the package; SealosError (one sentence) for anything the user can fix."""
    started = time.monotonic()
    version = parse_version(opts.version)
    pins = pv.runtime(version)
    wanted = sources.artifacts(version, opts.arch, opts.cni)
    target = opts.out or Path(
        f"kube{str(version)[1:]}.tar.gz"
        if opts.arch == "amd64"
        else f"kube{str(version)[1:]}-{opts.arch}.tar.gz"
    )
    if not target.parent.is_dir():
        raise SpecError(f"--out {target}: the folder {target.parent} does not exist.")
    if opts.images:
        images.require_skopeo()
    cache = Cache(opts.cache or default_cache())
    with Progress(out) as progress:
        fetcher = Fetcher(cache, progress, opts.timeout)
        fetched = _parallel(
            opts.jobs,
            fetcher,
            {a.name: functools.partial(_fetch, fetcher, a, opts) for a in wanted},
        )
        refs = pv.kubeadm_images(version)
        if "calico.yaml" in fetched:
            refs += images.manifest_images(fetched["calico.yaml"].path.read_text())
        refs = list(dict.fromkeys(refs))
        _check_registry_mirrors(opts.registry_mirrors, refs)
        pulled: dict[str, Fetched] = {}
        if opts.images:
            pulled = _parallel(
                min(opts.jobs, 3),
                fetcher,
                {r: functools.partial(_pull, cache, progress, r, opts) for r in refs},
            )
        downloads = fetcher.downloads + sum(p.downloaded for p in pulled.values())
        with tempfile.TemporaryDirectory(dir=cache.tmp, prefix="stage-") as stage:
            entries, records = _layout(version, pins, opts, wanted, fetched, pulled, Path(stage))
            components = {a.name: a.version for a in wanted}
            listed = refs if opts.images else []
            data = manifest.render(str(version), opts.arch, opts.cni, components, listed, records)
            entries.append(archive.Entry(manifest.MANIFEST, data=data))
            archive.write(target, entries)
    size = target.stat().st_size
    seconds = time.monotonic() - started
    progress.line(
        f"wrote {target} ({size} bytes, {len(records)} files, {len(pulled)} images) in "
        f"{seconds:.1f} s; {downloads} downloaded, the rest from the cache {cache.root}"
    )
    return BuildResult(target, size, len(records), len(pulled), downloads, seconds)


def _parallel(jobs: int, fetcher: Fetcher, work: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run the jobs on `jobs` threads; the first failure stops the others and is raised."""
    results: dict[str, T] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(fn): key for key, fn in work.items()}
        try:
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
        except BaseException:
            fetcher.stop.set()
            for f in futures:
                f.cancel()
            raise
    return results


def _check_registry_mirrors(mirrors: dict[str, str], refs: list[str]) -> None:
    """A --registry-mirror for no registry of the package is a typo that would quietly send the
    pulls to the real registry: refuse it."""
    registries = sorted({r.split("/", 1)[0] for r in refs})
    unused = [m for m in mirrors if m not in registries]
    if unused:
        raise SpecError(
            f"--registry-mirror {unused[0]}=...: no image of this package comes from "
            f"{unused[0]}; its registries are {', '.join(registries)}."
        )


def _fetch(fetcher: Fetcher, artifact: Artifact, opts: BuildOptions) -> Fetched:
    url = sources.mirrored(artifact.url, opts.mirrors)
    if artifact.checksum_url is None:
        return fetcher.get(url, artifact.name)
    sum_url = sources.mirrored(artifact.checksum_url, opts.mirrors)
    sums = fetcher.get(sum_url, f"{artifact.name} checksum")
    expected = sources.expected_sha256(
        Artifact(artifact.name, url, artifact.version, artifact.checksum, sum_url),
        sums.path.read_text(errors="replace"),
    )
    try:
        return fetcher.get(url, artifact.name, expected, checksum_source=sum_url)
    except ChecksumMismatch:
        fetcher.cache.forget(sum_url)  # the checksum file may be the wrong one: ask again next time
        raise


def _pull(cache: Cache, progress: Progress, ref: str, opts: BuildOptions) -> Fetched:
    src = images.source(ref, opts.registry_mirrors)
    key = f"{src}#linux/{opts.arch}"
    known = cache.known(key)
    if known is not None:
        return Fetched(known[0], known[1], False)
    tmp = cache.temp_file()
    try:
        images.pull(src, tmp, ref, opts.arch, opts.insecure_registry)
        sha = sha256_file(tmp)
        path = cache.add(key, tmp, sha)
    finally:
        tmp.unlink(missing_ok=True)
    progress.line(f"pulled {ref} for linux/{opts.arch} ({path.stat().st_size} bytes) from {src}")
    return Fetched(path, sha, True)


def _layout(
    version: KubeVersion,
    pins: pv.Runtime,
    opts: BuildOptions,
    wanted: list[Artifact],
    fetched: dict[str, Fetched],
    pulled: dict[str, Fetched],
    stage: Path,
) -> tuple[list[archive.Entry], list[manifest.FileRecord]]:
    """The package's files (kube/...) and their manifest records."""
    by_name = {a.name: a for a in wanted}
    entries: list[archive.Entry] = []
    records: list[manifest.FileRecord] = []

    def add(name: str, path: Path, mode: int, artifact: Artifact, member: str = "") -> None:
        known = "" if member else fetched[artifact.name].sha256
        entries.append(archive.Entry(name, mode, source=path, sha256=known))
        via = sources.mirrored(artifact.url, opts.mirrors)
        records.append(
            manifest.FileRecord(
                name,
                known or sha256_file(path),
                path.stat().st_size,
                artifact.url,
                artifact.version,
                member,
                via if via != artifact.url else "",
            )
        )

    def generated(name: str, data: bytes, mode: int = 0o644) -> None:
        entries.append(archive.Entry(name, mode, data=data))
        records.append(
            manifest.FileRecord(
                name,
                hashlib.sha256(data).hexdigest(),
                len(data),
                manifest.GENERATED,
                f"sealos {__version__}",
            )
        )

    for b in ("kubeadm", "kubelet", "kubectl"):
        add(f"kube/bin/{b}", fetched[b].path, EXECUTABLE, by_name[b])
    add("kube/bin/runc", fetched["runc"].path, EXECUTABLE, by_name["runc"])
    ctd = _members(fetched["containerd"].path, by_name["containerd"], stage / "containerd", "bin/")
    missing = [b for b in CONTAINERD_REQUIRED if b not in {p.name for p, _ in ctd}]
    if missing:
        raise SealosError(
            f"{by_name['containerd'].url} has no bin/{', bin/'.join(missing)}; "
            "it is not a containerd release tarball."
        )
    for path, member in ctd:
        add(f"kube/bin/{path.name}", path, EXECUTABLE, by_name["containerd"], member)
    crictl = [
        (p, m)
        for p, m in _members(fetched["crictl"].path, by_name["crictl"], stage / "crictl", "")
        if p.name == "crictl"
    ]
    if not crictl:
        raise SealosError(
            f"{by_name['crictl'].url} holds no crictl; it is not a cri-tools tarball."
        )
    add("kube/bin/crictl", crictl[0][0], EXECUTABLE, by_name["crictl"], crictl[0][1])
    for path, member in _members(
        fetched["cni-plugins"].path, by_name["cni-plugins"], stage / "cni", ""
    ):
        add(f"kube/cni/bin/{path.name}", path, EXECUTABLE, by_name["cni-plugins"], member)
    for name in ("containerd.service", "kubelet.service", "10-kubeadm.conf"):
        add(f"kube/conf/{name}", fetched[name].path, 0o644, by_name[name])
    if "calico.yaml" in fetched:
        add("kube/conf/net/calico.yaml", fetched["calico.yaml"].path, 0o644, by_name["calico.yaml"])
    config = containerd_config.render(pins.containerd, pv.pause_image(version))
    generated("kube/conf/config.toml", config.encode())
    generated("kube/version", f"{version}\n".encode())
    script = resources.files("sealos.packaging").joinpath("files/init.sh").read_bytes()
    generated("kube/shell/init.sh", script, EXECUTABLE)
    for ref, image in pulled.items():
        name = f"kube/images/{images.archive_name(ref)}"
        entries.append(archive.Entry(name, 0o644, source=image.path, sha256=image.sha256))
        src = images.source(ref, opts.registry_mirrors)
        records.append(
            manifest.FileRecord(
                name,
                image.sha256,
                image.path.stat().st_size,
                f"docker://{ref}",
                ref.rsplit(":", 1)[-1],
                via=src if src != f"docker://{ref}" else "",
            )
        )
    return entries, records


def _members(tarball: Path, artifact: Artifact, dest: Path, prefix: str) -> list[tuple[Path, str]]:
    """Extract the regular files under `prefix` of an upstream tarball into `dest`, by base name
    (never by the name in the tar); [(file, member name)] sorted by name."""
    dest.mkdir(parents=True, exist_ok=True)
    found: list[tuple[Path, str]] = []
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if not member.isfile() or not name.startswith(prefix):
                    continue
                base = os.path.basename(name)
                f = tar.extractfile(member)
                if f is None or not base or base.startswith("."):
                    continue
                path = dest / base
                with path.open("wb") as out:
                    while block := f.read(1 << 20):
                        out.write(block)
                found.append((path, name))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SealosError(f"{artifact.url} is not a readable tarball ({e}).") from None
    return sorted(found, key=lambda item: item[1])
