"""Small real images for the lab's registry, built here: one layer with Debian's busybox-static
(`/bin/busybox`, a few applet links) and a config whose entrypoint prints the image's upstream
name, for amd64 and arm64 in one OCI index per image (so `skopeo copy --override-arch arm64` or
`ctr images import --platform linux/arm64` finds its platform). They stand in for kubeadm's and
calico's images: same names, tiny, and the printed name is a marker a test can look for.

The images are written as an OCI image layout (a folder of files: no registry protocol here) and
pushed with skopeo, a maintained client of the distribution protocol, under the path a registry
mirror serves them at: `registry.k8s.io/pause:3.9` -> `HOST:PORT/pause:3.9`,
`docker.io/calico/node:v3.26.4` -> `HOST:PORT/calico/node:v3.26.4`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from sealos_lab import debs
from sealos_lab.release_mirror import tar_gz

ARCHES = ("amd64", "arm64")
CREATED = "2023-11-14T22:13:20Z"  # fixed, so that an image has the same digest every build
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


class ImageError(RuntimeError):
    """Building or pushing an image failed; str() says which image and why."""


def mirror_path(image: str) -> str:
    """The repository path and tag of an upstream image name without its registry, as a
    registry mirror serves it ("registry.k8s.io/pause:3.9" -> "pause:3.9")."""
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return rest
    return image


def _json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    """An OCI image layout folder being written: blobs by digest, and the top index."""

    def __init__(self, root: Path):
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.entries: list[dict[str, Any]] = []

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        """Store `data`; its descriptor."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / "sha256" / digest
        if not path.exists():
            path.write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def tag(self, descriptor: dict[str, Any], ref: str) -> None:
        """Name a stored manifest or index `ref` in index.json."""
        self.entries.append({**descriptor, "annotations": {REF_NAME: ref}})

    def save(self) -> None:
        """Write index.json."""
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries}
        (self.root / "index.json").write_bytes(_json(index))


def busybox_layer(arch: str) -> bytes:
    """The one layer (.tar.gz) of every image for `arch`: Debian's busybox-static binary."""
    busybox = debs.unpacked("busybox-static", arch).path("/bin/busybox").read_bytes()
    return tar_gz([("bin", None, 0o755), ("bin/busybox", busybox, 0o755)], level=9)


def build_layout(root: Path, images: Sequence[str], arches: Sequence[str] = ARCHES) -> Path:
    """Write an OCI layout at `root` holding each of `images` (upstream names) as an index of
    `arches`, tagged by its mirror path; returns `root`."""
    layout = Layout(root)
    layers = {}
    for arch in arches:
        blob = busybox_layer(arch)
        diff_id = "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()
        layers[arch] = (layout.blob(blob, OCI_LAYER), diff_id)
    for image in images:
        manifests = []
        for arch in arches:
            layer, diff_id = layers[arch]
            config = {
                "architecture": arch,
                "os": "linux",
                "created": CREATED,
                "config": {
                    "Entrypoint": ["/bin/busybox", "echo", image],
                    "Env": ["PATH=/bin"],
                    "Labels": {"io.sealos-lab.stand-in": image},
                },
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [
                    {"created": CREATED, "created_by": "sealos-lab: Debian's busybox-static"}
                ],
            }
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": layout.blob(_json(config), OCI_CONFIG),
                "layers": [layer],
            }
            desc = layout.blob(_json(manifest), OCI_MANIFEST)
            manifests.append({**desc, "platform": {"architecture": arch, "os": "linux"}})
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        layout.tag(layout.blob(_json(index), OCI_INDEX), mirror_path(image))
    layout.save()
    return root


def skopeo(
    *args: str, in_netns: Optional[str] = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run skopeo (inside `in_netns` when given); ImageError with its message on failure.
    The policy check is off: these images are our own, built a moment ago."""
    argv = ["skopeo", "--insecure-policy", *args]
    if in_netns:
        argv = ["ip", "netns", "exec", in_netns, *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ImageError("skopeo is missing; install it with `apt-get install skopeo`") from None
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(argv)}: {proc.stderr.strip()[-600:]}")
    return proc


def push(
    layout: Path, images: Sequence[str], endpoint: str, in_netns: Optional[str] = None
) -> list[str]:
    """Push each image (all its platforms) from the layout to the registry at ADDR:PORT (plain
    HTTP) under its mirror path, from inside `in_netns` when given; the references pushed."""
    pushed = []
    for image in images:
        ref = f"{endpoint}/{mirror_path(image)}"
        skopeo(
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{layout}:{mirror_path(image)}",
            f"docker://{ref}",
            in_netns=in_netns,
        )
        pushed.append(ref)
    return pushed


def publish(
    workdir: Path,
    images: Sequence[str],
    endpoint: str,
    arches: Sequence[str] = ARCHES,
    in_netns: Optional[str] = None,
) -> list[str]:
    """Build `images` for `arches` in `workdir/layout` and push them to ADDR:PORT."""
    names = sorted(set(images))
    return push(build_layout(workdir / "layout", names, arches), names, endpoint, in_netns)
