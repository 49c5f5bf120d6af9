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
  `kube1.28.15-arm64.tar.gz` for other architectures, in the current folder (or in the folder
  --out names, when it names one).
- What goes where in the package, and on the node: layout.py.
- Images: kubeadm's list for the exact version, then the CNI manifest's images (with --cni none,
  kubeadm's only), then `extra_images` (`--lvscare-image`: static-pod lvscare's, which the
  privileged pod never pulls by tag). `images=False` (no CLI flag) builds without images: the
  unit tests use it, having no registry; the lab's integration test pulls from a real registry.
- Kubernetes before 1.24 is refused (package_versions: containerd serves 1.24 and later).
- kubeadm, kubelet, kubectl and runc must be ELF binaries of --arch, or not ELF at all (the lab's
  stand-ins are scripts): a mirror serving the other architecture's file is caught here, not on
  the node.
- A --mirror or --registry-mirror name the package does not use is refused: a typo would
  quietly send the download to the real upstream.
- --timeout (a server's silence) holds for registries too: before pulling, each registry still
  to be asked gives one manifest within it (images.probe); skopeo itself bounds only whole
  commands, and a pull may rightly take minutes.
"""

from __future__ import annotations

import concurrent.futures
import functools
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, TextIO, TypeVar

from sealos import package_versions as pv
from sealos.errors import SealosError, SpecError
from sealos.kubeversion import KubeVersion
from sealos.package import elf_arch, sha256_file
from sealos.packaging import archive, images, layout, manifest, sources
from sealos.packaging.fetch import (
    DEFAULT_TIMEOUT,
    Cache,
    ChecksumMismatch,
    Fetched,
    Fetcher,
    Progress,
    Stopped,
)
from sealos.packaging.sources import Artifact
from sealos.state import sealos_home

T = TypeVar("T")
ARCH_CHECKED = ("kubeadm", "kubelet", "kubectl", "runc")


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
    extra_images: list[str] = field(default_factory=list)  # e.g. lvscare's (--lvscare-image)


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
    default_name = (
        f"kube{str(version)[1:]}.tar.gz"
        if opts.arch == "amd64"
        else f"kube{str(version)[1:]}-{opts.arch}.tar.gz"
    )
    target = opts.out or Path(default_name)
    if target.is_dir():
        target = target / default_name
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
        _check_arch(fetched, wanted, opts)
        refs = pv.kubeadm_images(version)
        if "calico.yaml" in fetched:
            refs += images.manifest_images(fetched["calico.yaml"].path.read_text())
        refs = list(dict.fromkeys([*refs, *opts.extra_images]))
        _check_registry_mirrors(opts.registry_mirrors, refs)
        pulled: dict[str, Fetched] = {}
        if opts.images:
            _probe_registries(cache, refs, opts)
            pulled = _parallel(
                min(opts.jobs, 3),
                fetcher,
                {r: functools.partial(_pull, cache, progress, r, opts) for r in refs},
            )
        downloads = fetcher.downloads + sum(p.downloaded for p in pulled.values())
        with tempfile.TemporaryDirectory(dir=cache.tmp, prefix="stage-") as stage:
            files = layout.lay_out(
                version,
                pins,
                wanted,
                fetched,
                pulled,
                Path(stage),
                opts.mirrors,
                opts.registry_mirrors,
            )
            entries, records = files.entries, files.records
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
    """Run the jobs on `jobs` threads; the first failure stops the others and is raised.

    The failing job sets `fetcher.stop` itself, at once: a worker taking its next job then gives
    it up instead of starting a download that may wait a whole --timeout again. The jobs given up
    (Stopped) are never the error raised."""

    def guarded(fn: Callable[[], T], key: str) -> Callable[[], T]:
        def job() -> T:
            if fetcher.stop.is_set():
                raise Stopped(f"{key}: stopped (another download failed).")
            try:
                return fn()
            except BaseException:
                fetcher.stop.set()
                raise

        return job

    results: dict[str, T] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(guarded(fn, key)): key for key, fn in work.items()}
        try:
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
        except BaseException as first:
            fetcher.stop.set()
            for f in futures:
                f.cancel()
            if isinstance(first, Stopped):  # a real failure is on its way: raise that one
                concurrent.futures.wait(futures)
                for f in futures:
                    error = None if f.cancelled() else f.exception()
                    if error is not None and not isinstance(error, Stopped):
                        raise error from None
            raise
    return results


def _check_arch(fetched: dict[str, Fetched], wanted: list[Artifact], opts: BuildOptions) -> None:
    """A binary for another architecture (a mirror serving the wrong file) is refused; files that
    are not ELF (the lab's stand-in scripts) pass."""
    for artifact in wanted:
        if artifact.name not in ARCH_CHECKED:
            continue
        with fetched[artifact.name].path.open("rb") as f:
            found = elf_arch(f.read(20))
        if found is not None and found != opts.arch:
            raise SealosError(
                f"{sources.mirrored(artifact.url, opts.mirrors)} gave a linux/{found} binary, "
                f"not linux/{opts.arch}; the mirror serves the wrong file."
            )


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


def _image_key(src: str, arch: str) -> str:
    return f"{src}#linux/{arch}"


def _probe_registries(cache: Cache, refs: list[str], opts: BuildOptions) -> None:
    """Each registry an image is still to be pulled from must answer within --timeout (see
    images.probe); a build with every image cached asks no registry."""
    first: dict[str, tuple[str, str]] = {}
    for ref in refs:
        src = images.source(ref, opts.registry_mirrors)
        if cache.known(_image_key(src, opts.arch)) is None:
            first.setdefault(src.split("/", 3)[2] if "://" in src else src, (src, ref))
    for src, ref in first.values():
        images.probe(src, ref, opts.insecure_registry, opts.timeout)


def _pull(cache: Cache, progress: Progress, ref: str, opts: BuildOptions) -> Fetched:
    src = images.source(ref, opts.registry_mirrors)
    key = _image_key(src, opts.arch)
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
