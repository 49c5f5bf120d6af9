"""The lab's stand-in for the upstream release sites, brought up as one thing: the release mirror
tree (`release_mirror`) served over HTTP by Python's `http.server`, and a real registry
(`registry`) holding the lab's small images (`images`) under the names kubeadm and calico ask for.
`LabReleases.mirror_args()` gives the flags that point `sealos package build` at them.

For tests it runs on 127.0.0.1 (`start(...)`, also a context manager); for a lab it runs on the
operator side of the lab's network (`for_lab(name, ...)`, `sealos-lab releases up`), where the
lab's hosts and the operator reach it, and `sealos-lab down` stops it with the lab. Both server
processes are started and stopped by PID; nothing here reaches outside this machine.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from sealos import package_versions
from sealos.kubeversion import KubeVersion
from sealos_lab import images, registry, release_mirror, servers
from sealos_lab.paths import releases_dir

STATE_FILE = "state.json"  # in the workdir; `sealos-lab down` reads it (teardown)
LAB_HTTP_PORT = 8080
LAB_REGISTRY_PORT = 5000
_REQUEST = re.compile(r'"(GET|HEAD) (\S+) HTTP/[\d.]+" (\d{3})')


def images_for(version: str) -> list[str]:
    """Every image a package of `version` needs: kubeadm's list and the calico manifest's."""
    v = KubeVersion.parse(version)
    return package_versions.kubeadm_images(v) + release_mirror.calico_images(version)


def _registry_of(image: str) -> str:
    return image.split("/", 1)[0]


@dataclass
class LabReleases:
    """A running release mirror and registry: where they are, and what they hold."""

    workdir: Path
    address: str
    versions: list[str]
    arches: list[str]
    http: servers.Server
    registry: servers.Server
    netns: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def tree(self) -> Path:
        """The mirror's files: `tree/<upstream host>/<upstream path>`."""
        return self.workdir / "tree"

    @property
    def base_url(self) -> str:
        """http://ADDR:PORT of the mirror's HTTP server."""
        return f"http://{self.http.endpoint}"

    def url(self, upstream_url: str) -> str:
        """Where the mirror serves an upstream URL ("https://dl.k8s.io/release/..." -> ...)."""
        return f"{self.base_url}/{upstream_url.split('://', 1)[-1]}"

    def images(self) -> list[str]:
        """The upstream names of every image the registry holds."""
        return sorted({i for v in self.versions for i in images_for(v)})

    def mirror_args(self) -> list[str]:
        """The flags that point `sealos package build` at this mirror and registry."""
        args: list[str] = []
        for host in release_mirror.HOSTS:
            args += ["--mirror", f"{host}={self.base_url}/{host}"]
        for name in sorted({_registry_of(i) for i in self.images()}):
            args += ["--registry-mirror", f"{name}={self.registry.endpoint}"]
        return [*args, "--insecure-registry"]

    def requests(self) -> list[tuple[str, int]]:
        """(path, status) of every request the HTTP server answered so far, oldest first."""
        try:
            text = Path(self.http.log).read_text(errors="replace")
        except OSError:
            return []
        return [(m.group(2), int(m.group(3))) for m in _REQUEST.finditer(text)]

    def running(self) -> bool:
        """True while both servers run."""
        return self.http.alive() and self.registry.alive()

    def save(self) -> None:
        """Record the servers and contents in `workdir/state.json` (`stop_recorded` reads it)."""
        servers.save(
            self.workdir / STATE_FILE,
            [self.http, self.registry],
            address=self.address,
            netns=self.netns,
            versions=self.versions,
            arches=self.arches,
        )

    @classmethod
    def load(cls, workdir: Path) -> LabReleases:
        """The releases recorded in `workdir`; FileNotFoundError when none are."""
        data = json.loads((workdir / STATE_FILE).read_text())
        http, reg = (servers.Server.from_dict(s) for s in data["servers"])
        return cls(
            workdir, data["address"], data["versions"], data["arches"], http, reg, data["netns"]
        )

    def add(self, versions: Sequence[str], arches: Sequence[str]) -> None:
        """Serve more versions or arches: their files into the tree, their images pushed."""
        new_versions = [v for v in versions if v not in self.versions]
        new_arches = [a for a in arches if a not in self.arches]
        self.versions += new_versions
        self.arches += new_arches
        todo = [(v, a) for v in self.versions for a in self.arches]
        todo = [(v, a) for v, a in todo if v in new_versions or a in new_arches]
        t = time.monotonic()
        for v, a in todo:
            release_mirror.build_tree(self.tree, v, a)
        self.timings["tree"] = time.monotonic() - t
        t = time.monotonic()
        names = sorted({i for v in self.versions for i in images_for(v)})
        images.publish(
            self.workdir / "images", names, self.registry.endpoint, self.arches, self.netns
        )
        self.timings["images"] = time.monotonic() - t
        self.save()

    def stop(self) -> None:
        """Stop both servers by PID; the files stay in `workdir`."""
        servers.stop(self.http)
        servers.stop(self.registry)

    def __enter__(self) -> LabReleases:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start(
    workdir: Path,
    versions: Sequence[str],
    arches: Sequence[str] = ("amd64",),
    address: str = "127.0.0.1",
    in_netns: Optional[str] = None,
    http_port: int = 0,
    registry_port: int = 0,
) -> LabReleases:
    """Build the tree for every version and arch, start the HTTP server and the registry on
    `address` (inside `in_netns` when given), push the images; stop what started if any of it
    fails. Port 0 picks a free one (on this machine's loopback only)."""
    for v in versions:
        release_mirror.artifacts(v, arches[0])  # refuse a bad version or arch before starting
    workdir.mkdir(parents=True, exist_ok=True)
    tree = workdir / "tree"
    tree.mkdir(exist_ok=True)
    if not http_port:
        if in_netns:
            raise ValueError("give the ports for servers inside a namespace")
        http_port = servers.free_port(address)
    t = time.monotonic()
    http = servers.start(
        "release mirror",
        [
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            address,
            "--directory",
            str(tree),
            str(http_port),
        ],
        address,
        http_port,
        workdir / "http.log",
        in_netns=in_netns,
    )
    try:
        reg = registry.start(workdir / "registry", address, registry_port, in_netns)
    except BaseException:
        servers.stop(http)
        raise
    up = LabReleases(workdir, address, [], [], http, reg, in_netns)
    up.timings["servers"] = time.monotonic() - t
    up.save()
    try:
        up.add(versions, arches)
    except BaseException:
        up.stop()
        raise
    return up


def lab_workdir(name: str) -> Path:
    """Where a lab keeps its releases (inside the lab's folder, removed by `down`)."""
    return releases_dir(name)


def for_lab(name: str, versions: Sequence[str], arches: Sequence[str] = ("amd64",)) -> LabReleases:
    """The releases of lab `name` on its operator side (address .1, ports 8080 and 5000), started
    now or, when already running, given these versions and arches too."""
    from sealos_lab.lab import Lab

    lab = Lab.load(name)
    workdir = lab_workdir(name)
    current = running_for_lab(name)
    if current is not None:
        current.add(versions, arches)
        return current
    servers.stop_recorded(workdir / STATE_FILE)  # half of it may still run
    return start(
        workdir,
        versions,
        arches,
        lab.operator_ip,
        lab.operator_netns,
        LAB_HTTP_PORT,
        LAB_REGISTRY_PORT,
    )


def stop_for_lab(name: str) -> bool:
    """Stop lab `name`'s releases by their recorded PIDs; False when none were recorded."""
    return bool(servers.stop_recorded(lab_workdir(name) / STATE_FILE))


def running_for_lab(name: str) -> Optional[LabReleases]:
    """The running releases of lab `name`, or None."""
    try:
        current = LabReleases.load(lab_workdir(name))
    except (OSError, ValueError, KeyError):
        return None
    return current if current.running() else None
