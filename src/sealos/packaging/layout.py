"""What goes where in a package (`kube/...`), each file with its manifest record.

- kube/bin: kubeadm, kubelet, kubectl, runc, crictl, and every regular file under the containerd
  tarball's `bin/` (containerd, ctr and containerd-shim-runc-v2 must be there).
- kube/cni/bin: every file of the CNI plugins tarball.
- kube/conf: containerd.service, config.toml (rendered), kubelet.service, 10-kubeadm.conf, and
  net/calico.yaml where `sealos init` reads the CNI manifest.
- kube/images/<reference>.tar, kube/version, kube/shell/init.sh (files/init.sh).
On the node (init.sh): kubeadm, kubelet and kubectl to /usr/bin (the kubelet unit's ExecStart);
containerd, ctr, its shims and crictl to /usr/local/bin and runc to /usr/local/sbin, as
containerd's getting-started says (clear of distribution packages); the units in
/etc/systemd/system, beside the kubelet's.

Files are cut out of upstream tarballs by base name, never by the name in the tar.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sealos import __version__
from sealos import package_versions as pv
from sealos.errors import SealosError
from sealos.kubeversion import KubeVersion
from sealos.package import sha256_file
from sealos.packaging import archive, containerd_config, images, manifest, sources
from sealos.packaging.fetch import Fetched
from sealos.packaging.sources import Artifact

CONTAINERD_REQUIRED = ("containerd", "ctr", "containerd-shim-runc-v2")
EXECUTABLE = 0o755


@dataclass
class Layout:
    """The package's files and their manifest records, as they are added."""

    mirrors: dict[str, str]
    registry_mirrors: dict[str, str]
    entries: list[archive.Entry] = field(default_factory=list)
    records: list[manifest.FileRecord] = field(default_factory=list)

    def upstream(
        self,
        name: str,
        path: Path,
        mode: int,
        artifact: Artifact,
        sha256: str = "",
        member: str = "",
    ) -> None:
        """A file from upstream: the artifact (its verified `sha256`) or a `member` of it."""
        self.entries.append(archive.Entry(name, mode, source=path, sha256=sha256))
        via = sources.mirrored(artifact.url, self.mirrors)
        self.records.append(
            manifest.FileRecord(
                name,
                sha256 or sha256_file(path),
                path.stat().st_size,
                artifact.url,
                artifact.version,
                member,
                via if via != artifact.url else "",
            )
        )

    def generated(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """A file the builder writes."""
        self.entries.append(archive.Entry(name, mode, data=data))
        self.records.append(
            manifest.FileRecord(
                name,
                hashlib.sha256(data).hexdigest(),
                len(data),
                manifest.GENERATED,
                f"sealos {__version__}",
            )
        )

    def image(self, ref: str, image: Fetched) -> None:
        """An image's docker-archive."""
        name = f"kube/images/{images.archive_name(ref)}"
        self.entries.append(archive.Entry(name, 0o644, source=image.path, sha256=image.sha256))
        src = images.source(ref, self.registry_mirrors)
        self.records.append(
            manifest.FileRecord(
                name,
                image.sha256,
                image.path.stat().st_size,
                f"docker://{ref}",
                ref.rsplit(":", 1)[-1],
                via=src if src != f"docker://{ref}" else "",
            )
        )


def lay_out(
    version: KubeVersion,
    pins: pv.Runtime,
    wanted: list[Artifact],
    fetched: dict[str, Fetched],
    pulled: dict[str, Fetched],
    stage: Path,
    mirrors: dict[str, str],
    registry_mirrors: dict[str, str],
) -> Layout:
    """Every file of the package but the manifest (tarball members are extracted to `stage`)."""
    by_name = {a.name: a for a in wanted}
    files = Layout(mirrors, registry_mirrors)

    def whole(name: str, artifact: str, mode: int) -> None:
        got = fetched[artifact]
        files.upstream(name, got.path, mode, by_name[artifact], sha256=got.sha256)

    def cut(artifact: str, prefix: str) -> list[tuple[Path, str]]:
        return members(fetched[artifact].path, by_name[artifact], stage / artifact, prefix)

    for b in ("kubeadm", "kubelet", "kubectl", "runc"):
        whole(f"kube/bin/{b}", b, EXECUTABLE)
    ctd = cut("containerd", "bin/")
    missing = [b for b in CONTAINERD_REQUIRED if b not in {p.name for p, _ in ctd}]
    if missing:
        raise SealosError(
            f"{by_name['containerd'].url} has no bin/{', bin/'.join(missing)}; "
            "it is not a containerd release tarball."
        )
    for path, member in ctd:
        files.upstream(
            f"kube/bin/{path.name}", path, EXECUTABLE, by_name["containerd"], member=member
        )
    crictl = [(p, m) for p, m in cut("crictl", "") if p.name == "crictl"]
    if not crictl:
        raise SealosError(
            f"{by_name['crictl'].url} holds no crictl; it is not a cri-tools tarball."
        )
    path, member = crictl[0]
    files.upstream("kube/bin/crictl", path, EXECUTABLE, by_name["crictl"], member=member)
    for path, member in cut("cni-plugins", ""):
        files.upstream(
            f"kube/cni/bin/{path.name}", path, EXECUTABLE, by_name["cni-plugins"], member=member
        )
    for name in ("containerd.service", "kubelet.service", "10-kubeadm.conf"):
        whole(f"kube/conf/{name}", name, 0o644)
    if "calico.yaml" in fetched:
        whole("kube/conf/net/calico.yaml", "calico.yaml", 0o644)
    config = containerd_config.render(pins.containerd, pv.pause_image(version))
    files.generated("kube/conf/config.toml", config.encode())
    files.generated("kube/version", f"{version}\n".encode())
    script = resources.files("sealos.packaging").joinpath("files/init.sh").read_bytes()
    files.generated("kube/shell/init.sh", script, EXECUTABLE)
    for ref, image in pulled.items():
        files.image(ref, image)
    return files


def members(tarball: Path, artifact: Artifact, dest: Path, prefix: str) -> list[tuple[Path, str]]:
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
