"""VM lab hosts made for kubeadm's preconditions: by default 2 CPUs, memory enough for a control
plane (MemTotal >= 1700 MB, as kubeadm's Mem check counts it), cgroup v2, Debian's containerd
running and conntrack/iptables installed; per host, 1 CPU, less memory and cgroup v1
(systemd.unified_cgroup_hierarchy=0, for kubelets before 1.25). Observed inside each VM."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sealos_lab.lab import Lab
from sealos_lab.state import HostSpec
from sealos_lab.testing import lab_session

pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.lab]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    small = HostSpec(memory_mb=1024, cpus=1, cgroup_v1=True)
    with lab_session("pre-vmopt", hosts=2, vm=True, specs={"h2": small}, timeout=600) as lab:
        yield lab


def facts(lab: Lab, host: str) -> dict[str, str]:
    script = (
        "echo cpus=$(nproc); "
        "echo mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 )); "
        "echo cgroup=$(stat -fc %T /sys/fs/cgroup); "
        "echo containerd=$(systemctl is-active containerd); "
        "echo tools=$(for t in conntrack iptables; do command -v $t; done | wc -l)"
    )
    out = lab.exec(host, ["sh", "-c", script], timeout=120, check=True).stdout
    return dict(line.split("=", 1) for line in out.split())


def test_default_vm_host_meets_control_plane_preconditions(lab: Lab) -> None:
    got = facts(lab, "h1")
    smp = lab.exec("h1", ["sh", "-c", "dmesg | grep -i smp"], timeout=60).stdout
    assert got["cpus"] == "2", smp
    assert int(got["mem_mb"]) >= 1700
    assert got["cgroup"] == "cgroup2fs"
    assert got["containerd"] == "active"
    assert got["tools"] == "2"


def test_vm_host_with_one_cpu_less_memory_and_cgroup_v1(lab: Lab) -> None:
    got = facts(lab, "h2")
    assert got["cpus"] == "1"
    assert int(got["mem_mb"]) < 1700
    assert got["cgroup"] == "tmpfs"  # the legacy hierarchy: cgroup v1 controllers under tmpfs
    assert got["containerd"] == "active"
