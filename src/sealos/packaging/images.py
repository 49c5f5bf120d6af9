"""Container images for the package, pulled with skopeo and stored so that
`ctr -n k8s.io images import` loads and names them.

Why skopeo (Debian's package): it is a maintained client of the OCI distribution protocol
(containers/image underneath: registries, auth, redirects, manifest lists, retries), so nothing
here speaks the registry protocol by hand; it needs no daemon; it picks one platform from a
multi-arch image with `--override-arch`; and it writes docker-archives. Debian ships it, so it
is `apt-get install skopeo` on the operator's machine.

One docker-archive per image (`kube/images/<reference>.tar`), with the image's full upstream
reference as its RepoTag: a docker-archive holds one image when skopeo writes it, and ctr names
an imported image by its RepoTag (fact sheet §5). The layers are stored uncompressed, as
docker-archive does; the package's gzip compresses them.

Choices: references in a CNI manifest without a registry (`calico/node:v3.8.2`) are completed
as containerd and the kubelet do (`docker.io/calico/node:v3.8.2`); `--registry-mirror
REGISTRY=HOST[:PORT]` pulls `REGISTRY/PATH:TAG` from `HOST[:PORT]/PATH:TAG` while the archive keeps
the upstream name; like files, a pulled image is cached by (source, architecture): its tag is a
version, so a second build asks no registry.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from sealos.errors import SealosError, SpecError

SKOPEO = "skopeo"
DEFAULT_TIMEOUT = 600.0  # seconds for one image (kube-apiserver is ~30 MB compressed)
DOCKER_HUB = "docker.io"


class ImageError(SealosError):
    """An image could not be pulled."""


def require_skopeo() -> str:
    """The path of skopeo; SealosError saying how to install it when it is missing."""
    found = shutil.which(SKOPEO)
    if found is None:
        raise SealosError(
            "skopeo is not installed; it pulls the package's images: "
            "apt-get install skopeo (Debian/Ubuntu) or dnf install skopeo (Fedora/RHEL)."
        )
    return found


def normalize(reference: str) -> str:
    """A full reference (registry/path:tag) as containerd names an image."""
    first, slash, _ = reference.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        path = reference if slash else f"library/{reference}"
        reference = f"{DOCKER_HUB}/{path}"
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        reference += ":latest"
    return reference


_IMAGE_LINE = re.compile(r"^\s*-?\s*image:\s*['\"]?([^'\"\s#]+)")


def manifest_images(text: str) -> list[str]:
    """The images a Kubernetes manifest names (its `image:` lines), full references, in order."""
    found = [normalize(m.group(1)) for m in map(_IMAGE_LINE.match, text.splitlines()) if m]
    return list(dict.fromkeys(found))


def parse_registry_mirrors(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--registry-mirror REGISTRY=HOST[:PORT]` values as {registry: host[:port]}."""
    mirrors: dict[str, str] = {}
    for value in values:
        registry, sep, host = value.partition("=")
        if not sep or not registry or not host or "/" in registry or "://" in host:
            raise SpecError(
                f"--registry-mirror {value!r} is not REGISTRY=HOST[:PORT]; e.g. "
                "--registry-mirror registry.k8s.io=10.250.3.1:5000"
            )
        mirrors[registry] = host.rstrip("/")
    return mirrors


def source(reference: str, mirrors: dict[str, str]) -> str:
    """Where skopeo pulls `reference` from (`docker://...`), through its registry's mirror."""
    registry, _, path = reference.partition("/")
    host = mirrors.get(registry)
    return f"docker://{host}/{path}" if host else f"docker://{reference}"


def archive_name(reference: str) -> str:
    """The file name of an image's archive in kube/images."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", reference) + ".tar"


def copy_command(
    src: str, dest: Path, reference: str, arch: str, insecure: bool = False
) -> list[str]:
    """The skopeo command writing `src` for linux/`arch` as a docker-archive named `reference`."""
    command = [SKOPEO, "--override-os", "linux", "--override-arch", arch, "copy"]
    if insecure:
        command.append("--src-tls-verify=false")
    return [*command, "--retry-times", "2", src, f"docker-archive:{dest}:{reference}"]


def pull(
    src: str,
    dest: Path,
    reference: str,
    arch: str,
    insecure: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Copy one image into the docker-archive `dest`; ImageError with skopeo's reason."""
    dest.unlink(missing_ok=True)  # skopeo refuses to write over an existing archive
    command = copy_command(src, dest, reference, arch, insecure)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ImageError(
            f"pulling {reference} from {src} took longer than {timeout:g} s; "
            "check --registry-mirror and the network."
        ) from None
    if done.returncode != 0:
        raise _failed(reference, arch, src, done)


def _failed(
    reference: str, arch: str, src: str, done: subprocess.CompletedProcess[str]
) -> ImageError:
    reason = _reason(done.stderr) or f"exit {done.returncode}"
    hint = "" if src.endswith(reference) else " (through --registry-mirror)"
    return ImageError(
        f"cannot pull {reference} for linux/{arch} from {src}{hint}: {reason}; "
        "check the registry or --registry-mirror (add --insecure-registry for plain http)."
    )


def probe(src: str, reference: str, insecure: bool, timeout: float) -> None:
    """Ask the registry of `src` for its manifest (`skopeo inspect --raw`: one small request)
    within `timeout` seconds. skopeo has no limit on a server's silence, only on a whole command,
    and a pull may rightly take minutes; so a registry that accepts connections and never answers
    is found here, in `timeout` seconds, instead of after DEFAULT_TIMEOUT per image. (Docker
    Hub counts a manifest GET as a pull: one more per registry per build that pulls.)"""
    if not src.startswith("docker://"):
        return
    command = [SKOPEO, "--command-timeout", f"{timeout:g}s", "inspect", "--raw"]
    if insecure:
        command.append("--tls-verify=false")
    silent = ImageError(
        f"the registry at {src.removeprefix('docker://').split('/', 1)[0]} did not answer within "
        f"{timeout:g} s (asked for {reference}); check --registry-mirror and the network "
        "(a registry must be up and reachable from here)."
    )
    try:
        done = subprocess.run([*command, src], capture_output=True, text=True, timeout=timeout + 10)
    except subprocess.TimeoutExpired:
        raise silent from None
    if done.returncode != 0 and "context deadline exceeded" in done.stderr:
        raise silent
    # any other answer, even a refusal, is left to the pull: it is the authority, and says why


_LOG_MSG = re.compile(r'level=(?:fatal|error) msg="(.*)"\s*$')


def _reason(stderr: str) -> str:
    """skopeo's last error, without its log prefix (`time=... level=fatal msg="..."`)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    m = _LOG_MSG.search(lines[-1])
    return m.group(1).replace('\\"', '"') if m else lines[-1].strip()
