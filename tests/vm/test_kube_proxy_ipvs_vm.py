"""kube-proxy's IPVS leftovers on VM hosts (real IPVS; issue 10 item 10): after `sealos init` the
stand-in kube-proxy (IPVS mode, as sealos configures it) has put `kube-ipvs0` and the kubernetes
Service's virtual server in the kernel of every host, as kube-proxy does; `kubeadm reset` leaves
them; after `sealos clean` `ipvsadm -Ln` lists no virtual server and `ip link` no kube-ipvs0.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from sealos_lab.state import HostSpec
from sealos_lab.testing import lab_session

pytestmark = [pytest.mark.root, pytest.mark.lab, pytest.mark.vm]

VERSION = "v1.20.15"
SERVICE = "TCP  10.96.0.1:443 rr"


def test_clean_removes_kube_proxys_ipvs_service_and_link(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    from sealos_lab.package import build

    package = build(VERSION, tmp_path / f"kube{VERSION[1:]}.tar.gz")
    # kubelets before 1.25 need cgroup v1: the VMs boot with systemd.unified_cgroup_hierarchy=0
    v1 = {f"h{i}": HostSpec(cgroup_v1=True) for i in (1, 2)}
    with lab_session("kp8vm", hosts=2, vm=True, timeout=900, specs=v1) as lab:
        m1, n1 = lab.hosts
        env = {
            "PATH": os.environ["PATH"],
            "SEALOS_HOME": str(tmp_path / "home"),
            "SEALOS_PASSWORD": lab.password,
        }

        def sealos(*args: str) -> None:
            proc = lab.run([sys.executable, "-m", "sealos", *args], env=env, timeout=1800)
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

        def kernel(host: str) -> str:
            ipvs = lab.exec(host, ["ipvsadm", "-Ln"], timeout=60).stdout
            links = lab.exec(host, ["ip", "-o", "link", "show"], timeout=60).stdout
            return ipvs + links

        sealos("init", "--master", m1.ip, "--node", n1.ip, "--version", VERSION,
               "--pkg", str(package))  # fmt: skip
        for h in (m1, n1):
            deadline = time.monotonic() + 180
            seen = kernel(h.name)
            while not (SERVICE in seen and f"{m1.ip}:6443" in seen and "kube-ipvs0" in seen):
                assert time.monotonic() < deadline, f"{h.name}: no kube-proxy rules: {seen}"
                time.sleep(3)
                seen = kernel(h.name)

        sealos("clean", "-y")
        for h in (m1, n1):
            seen = kernel(h.name)
            assert "kube-ipvs0" not in seen, seen
            assert "TCP  " not in seen and "UDP  " not in seen, seen
