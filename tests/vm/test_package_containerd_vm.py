"""The built package's containerd runs a container from the package's own image, on a real kernel
(issue 9, acceptance 4): `sealos package build` (the CLI, from the lab's release mirror and
registry on 127.0.0.1) writes kube1.28.15.tar.gz; its kube/bin, kube/conf and pause image go into
a throwaway VM (`vm.run`: no network, no systemd), where containerd, its shim and runc are
installed from kube/bin as init.sh places them, containerd is started with the package's
config.toml, the pause archive is imported with `ctr -n k8s.io images import`, and
`ctr run --rm` prints the marker (the lab's images print their own upstream name).

Why not the package's init.sh: it starts containerd and the kubelet through systemctl, and a
`vm.run` VM has no systemd (PID 1 is a shell script); the lab-host tests run init.sh.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sealos_lab import releases, vm

pytestmark = [pytest.mark.vm, pytest.mark.root]
VERSION = "v1.28.15"
PAUSE = "registry.k8s.io/pause:3.9"
PAUSE_TAR = "kube/images/registry.k8s.io_pause_3.9.tar"
SCRIPT = f"""
set -e
modprobe overlay
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
install -m 755 kube/bin/containerd kube/bin/ctr kube/bin/containerd-shim-runc-v2 /usr/local/bin/
install -m 755 kube/bin/runc /usr/local/sbin/runc
mkdir -p /etc/containerd
cp kube/conf/config.toml /etc/containerd/config.toml
/usr/local/bin/containerd >/tmp/containerd.log 2>&1 &
i=0
until /usr/local/bin/ctr version >/dev/null 2>&1; do
    i=$((i+1)); [ $i -lt 100 ] || {{ cat /tmp/containerd.log; exit 9; }}; sleep 0.2
done
echo "runc: $(command -v runc)"
/usr/local/bin/ctr -n k8s.io images import {PAUSE_TAR}
echo "listed: $(/usr/local/bin/ctr -n k8s.io images ls -q | tr '\\n' ' ')"
echo "--- run ---"
/usr/local/bin/ctr -n k8s.io run --rm {PAUSE} t1
echo "--- end ---"
if /usr/local/bin/ctr -n k8s.io run --rm docker.io/calico/node:v3.26.4 t2 2>/dev/null; then
    echo "calico ran without being imported"
fi
"""


def test_the_packages_containerd_runs_its_pause_image(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab cache and the VM runner need root")
    with releases.start(tmp_path / "releases", [VERSION], ("amd64",)) as served:
        built = subprocess.run(
            [
                *(sys.executable, "-m", "sealos", "package", "build", "--version", VERSION),
                *served.mirror_args(),
            ],
            cwd=tmp_path,
            env={**os.environ, "SEALOS_HOME": str(tmp_path / "home")},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert built.returncode == 0, built.stdout + built.stderr
    share = tmp_path / "share"
    share.mkdir()
    with tarfile.open(tmp_path / "kube1.28.15.tar.gz") as tar:
        wanted = [
            m
            for m in tar.getmembers()
            if m.name.startswith(("kube/bin/", "kube/conf/")) or m.name == PAUSE_TAR
        ]
        tar.extractall(share, members=wanted, filter="data")
    result = vm.run(share, SCRIPT, timeout=150, memory_mb=1024)
    assert result.returncode == 0, result.output
    out = result.output
    assert "runc: /usr/local/sbin/runc" in out, out
    assert f"listed: {PAUSE} " in out, out
    ran = out.split("--- run ---\n", 1)[1].split("--- end ---", 1)[0]
    assert ran == f"{PAUSE}\n", out
    assert "calico ran" not in out, out
