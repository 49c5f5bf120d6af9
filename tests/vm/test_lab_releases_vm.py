"""On a VM lab host (real kernel: overlayfs and writable cgroups), Debian's containerd installed
from the lab's release mirror runs a container from an image out of the lab's registry: the
image's entrypoint prints its name (issue 9, acceptance 4, below the package)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab_releases_host import host_sh, import_image, install_runtime
from sealos_lab import releases
from sealos_lab.testing import lab_session, leftovers

pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.lab]
VERSION = "v1.28.15"


def test_containerd_runs_a_container_from_a_lab_image(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("VM lab hosts need root")
    name = "vm-releases"
    # runtime none: the test installs containerd itself, from the release mirror
    with lab_session(name, hosts=1, vm=True, runtime="none") as lab:
        served = releases.for_lab(name, [VERSION])
        install_runtime(lab, "h1", served, VERSION)
        import_image(lab, "h1", served, "registry.k8s.io/pause:3.9", tmp_path)
        out = host_sh(lab, "h1", "ctr -n k8s.io run --rm registry.k8s.io/pause:3.9 marker-test")
        assert out == "registry.k8s.io/pause:3.9\n"
        missing = lab.exec(
            "h1", ["ctr", "-n", "k8s.io", "run", "--rm", "docker.io/calico/node:v3.26.4", "t2"]
        )
        assert missing.returncode != 0  # only what was imported is there
    assert leftovers(name) == []
