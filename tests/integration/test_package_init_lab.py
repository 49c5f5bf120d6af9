"""A package built by `sealos package build` installs a cluster with real containerd (issue 9,
acceptance 3): the lab's release mirror and registry serve upstream-shaped releases (Debian's real
containerd, runc and CNI plugins; the lab's stand-in kubeadm, kubelet and kubectl) and small real
images; the package is built from them as a user would (CLI, mirror flags); `sealos init` 3+2
onto nspawn hosts; containerd runs on every host and holds exactly the package's images; 5 Ready;
the nodes balance over the 3 masters. kubeadm's preflight asks containerd for its images, as
real kubeadm does: a package missing one fails there, naming it. `sealos clean --all` leaves every
host as its scan from before init found it (containerd, runc, CNI, images, config gone).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealos_lab.lab import Lab
from sealos_lab.testing import host_sh, lab_session, run_sealos

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sealos_scan import Scan

pytestmark = [pytest.mark.root, pytest.mark.lab]

VERSION = "v1.28.15"
MISSING = "registry.k8s.io/kube-scheduler:v1.28.15"


@dataclass
class Built:
    lab: Lab
    home: Path
    package: Path
    images: list[str]
    scans: dict[str, Scan]

    def sealos(self, *args: str, timeout: float = 900):
        return run_sealos(self.lab, self.home, *args, timeout=timeout)

    def sh(self, host: str, script: str) -> str:
        return host_sh(self.lab, host, script, timeout=120)


def ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[Built]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    from sealos_lab import releases

    folder = tmp_path_factory.mktemp("pkginit")
    # runtime none: the package brings its own containerd (init.sh refuses a foreign config.toml)
    with lab_session("pkinit", hosts=5, runtime="none") as lab:
        served = releases.for_lab(lab.name, [VERSION])
        try:
            b = Built(lab, folder / "home", folder / f"kube{VERSION[1:]}.tar.gz", [], {})
            out = ok(
                b.sealos(
                    "package", "build", "--version", VERSION, "-o", str(b.package),
                    *served.mirror_args(),
                )
            )  # fmt: skip
            assert "10 images" in out, out
            b.images = sorted(releases.images_for(VERSION))
            b.scans = {h.name: Scan.take(lab, h.name) for h in lab.hosts}
            yield b
        finally:
            releases.stop_for_lab(lab.name)


def test_init_three_masters_two_nodes_on_real_containerd(built):
    h = built.lab.hosts
    ips = [x.ip for x in h]
    started = time.monotonic()
    out = ok(
        built.sealos(
            "init", "--master", ips[0], "--master", ips[1], "--master", ips[2],
            "--node", ips[3], "--node", ips[4], "--version", VERSION, "--pkg", str(built.package),
        )
    )  # fmt: skip
    seconds = time.monotonic() - started
    print(f"init 3+2 with real containerd: {seconds:.1f} s")
    for x in h:
        assert built.sh(x.name, "systemctl is-active containerd.service").strip() == "active"
        names = built.sh(x.name, "ctr -n k8s.io images ls -q").split()
        assert sorted(n for n in names if not n.startswith("sha256:")) == built.images, x.name
        config = built.sh(x.name, "cat /etc/containerd/config.toml")
        assert (
            "SystemdCgroup = true" in config
            and 'sandbox_image = "registry.k8s.io/pause:3.9"' in (config)
        )
    table = built.sh(h[0].name, "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide")
    rows = {r[0]: r[1] for r in (line.split() for line in table.splitlines()[1:]) if r}
    assert rows == {x.hostname: "Ready" for x in h}, table
    assert "containerd://" in table  # the kubelet found the runtime it was given
    for node in h[3:]:
        rules = built.sh(node.name, "nft list table ip lvscare")
        assert set(re.findall(r"(\d+\.\d+\.\d+\.\d+) \. 6443", rules)) == set(ips[:3]), rules
    assert "kubeadm init done" in out


def test_clean_all_removes_the_runtime_and_images(built):
    ok(built.sealos("clean", "--all", "-y"))
    for x in built.lab.hosts:
        assert built.scans[x.name].leftovers() == [], x.name


def test_a_package_without_an_image_fails_kubeadm_preflight_naming_it(built, tmp_path):
    """kubeadm's preflight asks containerd for every image (pulling what is missing, which an
    offline site cannot): a package built without one (its manifest agreeing) fails there; one
    that lost the image after it was built is refused by sealos's manifest check before any
    change; the right package then finishes the same init."""
    # Same file name as the good package: the user fixes the package in place and runs again.
    broken = tmp_path / built.package.name
    from sealos.packaging.images import archive_name

    archive = f"kube/images/{archive_name(MISSING)}"

    def without_the_image(edit_manifest: bool) -> None:
        dropped = []
        with tarfile.open(built.package) as src, tarfile.open(broken, "w:gz") as dst:
            for member in src.getmembers():
                if member.name == archive:
                    dropped.append(member.name)
                    continue
                data = src.extractfile(member).read() if member.isfile() else None
                if member.name == "kube/manifest.json" and edit_manifest and data:
                    manifest = json.loads(data)
                    manifest["files"] = [f for f in manifest["files"] if f["path"] != archive]
                    manifest["images"] = [i for i in manifest["images"] if i != MISSING]
                    data = json.dumps(manifest).encode()
                    member.size = len(data)
                dst.addfile(member, io.BytesIO(data) if data is not None else None)
        assert dropped, f"no archive of {MISSING} in the package"

    m0 = built.lab.hosts[0]
    args = ("init", "--master", m0.ip, "--version", VERSION)
    without_the_image(edit_manifest=False)
    scan = Scan.take(built.lab, m0.name)
    proc = built.sealos(*args, "--pkg", str(broken))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert archive in proc.stdout and "nothing was changed" in proc.stdout, proc.stdout[-3000:]
    assert scan.changes() == []
    without_the_image(edit_manifest=True)
    proc = built.sealos(*args, "--pkg", str(broken))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"[ERROR ImagePull]: failed to pull image {MISSING}" in proc.stdout, proc.stdout[-3000:]
    ok(built.sealos(*args, "--pkg", str(built.package)))
    ok(built.sealos("clean", "--all", "-y"))
    assert built.scans[m0.name].leftovers() == []
