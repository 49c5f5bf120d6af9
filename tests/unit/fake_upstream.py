"""A throwaway upstream for `sealos package build` tests: a temp tree laid out like the real
release URLs (dl.k8s.io, github.com, raw.githubusercontent.com) with tiny files and checksum files
in each upstream's own format, served by http.server on 127.0.0.1, counting requests.

The paths are written out here, not taken from the code under test, so a wrong URL in
`sealos.packaging.sources` fails the tests.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# v1.28.x pins: containerd 1.7.11, runc 1.1.10, crictl 1.28.0, CNI plugins 1.3.0, calico 3.26.4
CALICO_YAML = """\
kind: DaemonSet
spec:
  template:
    spec:
      initContainers:
        - name: install-cni
          image: docker.io/calico/cni:v3.26.4
      containers:
        - name: calico-node
          image: "docker.io/calico/node:v3.26.4"
---
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: calico-kube-controllers
          image: calico/kube-controllers:v3.26.4
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def padded_elf(name: str, size: int = 0, arch: str = "amd64") -> bytes:
    """An ELF header of `arch`, then the name (`package.inspect` reads kubeadm's architecture),
    padded to `size` bytes with pseudo-random (incompressible, reproducible) bytes."""
    machine = {"amd64": b"\x3e\x00", "arm64": b"\xb7\x00"}[arch]
    head = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x02\x00" + machine + f" {name}\n".encode()
    pad = max(0, size - len(head))
    return head + random.Random(name).randbytes(pad)


def write_tree(
    root: Path,
    version: str = "v1.28.15",
    arch: str = "amd64",
    sizes: dict[str, int] | None = None,
    contents: dict[str, bytes] | None = None,
) -> dict[str, Path]:
    """Write the upstream files of one version/arch under root/<host>/...; {name: path}.
    `sizes` pads binaries to a size (benchmarks/package_build); `contents` replaces a binary
    (e.g. by a script that logs its calls); by default they are tiny ELF-headed files."""
    files: dict[str, Path] = {}
    sizes = sizes or {}
    contents = contents or {}

    def elf(name: str) -> bytes:
        return contents.get(name) or padded_elf(name, sizes.get(name, 0), arch)

    def put(rel: str, data: bytes, name: str = "") -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if name:
            files[name] = path
        return path

    kube = f"dl.k8s.io/release/{version}/bin/linux/{arch}"
    for b in ("kubeadm", "kubelet", "kubectl"):
        data = elf(b)
        put(f"{kube}/{b}", data, b)
        put(f"{kube}/{b}.sha256", sha(data).encode())  # the bare hash, no name, no newline

    gh = "github.com"
    ctd = tgz(
        {
            "bin/containerd": elf("containerd"),
            "bin/ctr": elf("ctr"),
            "bin/containerd-shim-runc-v2": elf("shim"),
            "bin/containerd-stress": elf("stress"),
        }
    )
    ctd_name = f"containerd-1.7.11-linux-{arch}.tar.gz"
    put(f"{gh}/containerd/containerd/releases/download/v1.7.11/{ctd_name}", ctd, "containerd")
    put(
        f"{gh}/containerd/containerd/releases/download/v1.7.11/{ctd_name}.sha256sum",
        f"{sha(ctd)}  {ctd_name}\n".encode(),
    )
    put(
        "raw.githubusercontent.com/containerd/containerd/v1.7.11/containerd.service",
        b"[Service]\nExecStart=/usr/local/bin/containerd\n",
        "containerd.service",
    )

    runc = {a: padded_elf(f"runc.{a}", sizes.get(f"runc.{a}", 0), a) for a in ("amd64", "arm64")}
    runc_dir = f"{gh}/opencontainers/runc/releases/download/v1.1.10"
    for a, data in runc.items():
        put(f"{runc_dir}/runc.{a}", data, "runc" if a == arch else "")
    signed = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
        + "".join(f"{sha(d)}  runc.{a}\n" for a, d in runc.items())
        + f"{'0' * 64}  runc.tar.xz\n"
        + "-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n"
    )
    put(f"{runc_dir}/runc.sha256sum", signed.encode())

    crictl = tgz({"crictl": elf("crictl")})
    crictl_dir = f"{gh}/kubernetes-sigs/cri-tools/releases/download/v1.28.0"
    crictl_path = f"{crictl_dir}/crictl-v1.28.0-linux-{arch}.tar.gz"
    put(crictl_path, crictl, "crictl")
    put(crictl_path + ".sha256", (sha(crictl) + "\n").encode())

    cni = tgz({"./bridge": elf("bridge"), "./host-local": elf("host-local"), "./loopback": b"lo"})
    cni_name = f"cni-plugins-linux-{arch}-v1.3.0.tgz"
    cni_path = f"{gh}/containernetworking/plugins/releases/download/v1.3.0/{cni_name}"
    put(cni_path, cni, "cni-plugins")
    put(cni_path + ".sha256", f"{sha(cni)}  {cni_name}\n".encode())

    templates = "raw.githubusercontent.com/kubernetes/release/v0.16.2/cmd/krel/templates/latest"
    put(
        f"{templates}/kubelet/kubelet.service",
        b"[Service]\nExecStart=/usr/bin/kubelet\n",
        "kubelet.service",
    )
    put(
        f"{templates}/kubeadm/10-kubeadm.conf",
        b"[Service]\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBEADM_ARGS\n",
        "10-kubeadm.conf",
    )
    put(
        "raw.githubusercontent.com/projectcalico/calico/v3.26.4/manifests/calico.yaml",
        CALICO_YAML.encode(),
        "calico.yaml",
    )
    return files


class Upstream:
    """The tree served on 127.0.0.1; `requests` lists every path asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        upstream = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def mirrors(self) -> dict[str, str]:
        """--mirror for every upstream host, as {host: URL}."""
        hosts = ("dl.k8s.io", "github.com", "raw.githubusercontent.com")
        return {h: f"{self.base}/{h}" for h in hosts}

    def mirror_flags(self) -> list[str]:
        return [a for h, u in self.mirrors().items() for a in ("--mirror", f"{h}={u}")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def oci_layout(root: Path, refs: list[str]) -> None:
    """An OCI layout folder (what `skopeo copy ... oci:DIR:REF` reads) holding, under each of
    `refs`, one multi-arch image: an index of a linux/amd64 and a linux/arm64 manifest, each with
    one layer whose file `marker` holds the architecture's name. Made here because no registry
    is at hand; skopeo reads it like any OCI image."""
    blobs = root / "blobs/sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> dict[str, object]:
        (blobs / sha(data)).write_bytes(data)
        return {"digest": f"sha256:{sha(data)}", "size": len(data)}

    manifests = []
    for arch in ("amd64", "arm64"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
            data = f"{arch}\n".encode()
            info = tarfile.TarInfo("marker")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        layer = put(buf.getvalue())
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                **put(json.dumps(config).encode()),
            },
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
        }
        manifests.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **put(json.dumps(manifest).encode()),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }
    described = put(json.dumps(index).encode())
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    top = [
        {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            **described,
            "annotations": {"org.opencontainers.image.ref.name": ref},
        }
        for ref in refs
    ]
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": top}))
