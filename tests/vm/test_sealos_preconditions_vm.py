"""Issue 10, items 3, 5 and 7 on VM hosts (Debian's kernel and systemd: cgroup v2, real swap):
- v1.20 on cgroup v2 hosts, with a 1-CPU, 1 GB host as a master, is refused before any change,
  every problem at once (its kubelet can't run on cgroup v2; kubeadm wants 2 CPUs and 1700 MB on
  a control-plane host);
- v1.28 installs on the same hosts with the small one as a node whose swap was on: the package's
  init.sh turns swap off for good (its /etc/fstab line commented out), the node is Ready, and
  after a reboot swap is still off, br_netfilter and the sysctls are back, and the node is Ready
  again (the kubelet refuses swap on every version).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealos_lab.lab import Lab
from sealos_lab.state import HostSpec
from sealos_lab.testing import host_sh, lab_session, reboot, run_sealos

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sealos_scan import Scan

pytestmark = [pytest.mark.root, pytest.mark.lab, pytest.mark.vm]

OLD, NEW = "v1.20.15", "v1.28.15"
KUBECTL = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]
SWAP = (
    "fallocate -l 64M /swapfile && chmod 600 /swapfile && mkswap /swapfile >/dev/null && "
    "swapon /swapfile && echo '/swapfile none swap sw 0 0' >> /etc/fstab"
)


@pytest.fixture(scope="module")
def vmlab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    small = HostSpec(memory_mb=1024, cpus=1)
    with lab_session("pcvm", hosts=2, vm=True, timeout=900, specs={"h2": small}) as lab:
        yield lab


def sealos(lab: Lab, home: Path, *args: str):
    return run_sealos(lab, home, *args, timeout=1800)


def sh(lab: Lab, host: str, script: str) -> str:
    return host_sh(lab, host, script)


def ready(lab: Lab, hostname: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        out = lab.exec(lab.hosts[0].name, [*KUBECTL, "get", "nodes"], timeout=60).stdout
        line = next((x for x in out.splitlines() if x.startswith(hostname)), "")
        if " Ready " in f"{line} ":
            break
        time.sleep(3)
    return line


def test_old_kubelets_on_cgroup_v2_and_a_small_master_are_refused_then_new_installs(
    vmlab: Lab, tmp_path: Path
):
    from sealos_lab.package import build

    lab = vmlab
    m1, small = lab.hosts
    sh(lab, small.name, SWAP)
    assert "/swapfile" in sh(lab, small.name, "cat /proc/swaps")
    old = build(OLD, tmp_path / f"kube{OLD[1:]}.tar.gz")
    scans = {h.name: Scan.take(lab, h.name) for h in lab.hosts}
    proc = sealos(lab, tmp_path / "home", "init", "--master", m1.ip, "--master", small.ip,
                  "--version", OLD, "--pkg", str(old))  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, out + proc.stderr
    for host in (m1, small):
        assert (
            f"{host.ip}: the kubelet of Kubernetes {OLD} cannot run on cgroup v2, which this host "
            "runs (support came in v1.25); boot it with systemd.unified_cgroup_hierarchy=0"
        ) in out, out
    assert (
        f"{small.ip}: kubeadm needs 2 CPUs on a control-plane host and this one has 1; "
    ) in out, out
    assert f"{small.ip}: kubeadm needs 1700 MB of memory on a control-plane host and this one " in (
        out
    )
    assert f"{m1.ip}: kubeadm needs" not in out
    assert "4 problem(s); nothing was changed" in out, out
    for name, scan in scans.items():
        assert scan.changes() == [], name

    # The same hosts meet v1.28's preconditions with the small one as a node; its swap is
    # turned off by the package's init.sh, now and for the next boot.
    new = build(NEW, tmp_path / f"kube{NEW[1:]}.tar.gz")
    proc = sealos(lab, tmp_path / "home", "init", "--master", m1.ip, "--node", small.ip,
                  "--version", NEW, "--pkg", str(new))  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert sh(lab, small.name, "tail -n +2 /proc/swaps") == ""
    fstab = sh(lab, small.name, "grep swapfile /etc/fstab")
    assert fstab.lstrip().startswith("#"), fstab
    assert " Ready " in f"{ready(lab, small.hostname)} "
    reboot(lab, small.name)
    assert sh(lab, small.name, "tail -n +2 /proc/swaps") == ""
    # br_netfilter and the sysctls 1.28's preflight wants came back with the boot (persisted).
    assert sh(lab, small.name, "cat /proc/sys/net/bridge/bridge-nf-call-iptables").strip() == "1"
    assert sh(lab, small.name, "cat /proc/sys/net/ipv4/ip_forward").strip() == "1"
    line = ready(lab, small.hostname)
    assert " Ready " in f"{line} ", line
    status = lab.exec(small.name, ["systemctl", "is-active", "kubelet.service"]).stdout.strip()
    assert status == "active"
