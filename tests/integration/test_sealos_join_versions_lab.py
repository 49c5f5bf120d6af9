"""`sealos join` and `clean` at both ends of the supported kubeadm APIs (v1beta1 on 1.14 with its
flag-only control-plane join, v1beta4 on 1.31), the second with lvscare as a static pod: grow
1 master to 2 masters + 1 node, remove the first master, join it back, clean everything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sealos_lab.testing import lab_session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sealos_scan import Scan

pytestmark = [pytest.mark.root, pytest.mark.lab]

MANIFEST = "/etc/kubernetes/manifests/kube-sealyun-lvscare.yaml"


@pytest.mark.parametrize(("version", "mode"), [("v1.14.1", "systemd"), ("v1.31.4", "static-pod")])
def test_grow_shrink_and_clean(version, mode, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    from sealos_lab.package import build

    package = build(version, tmp_path / f"kube{version[1:]}.tar.gz")
    with lab_session(f"jcv{version.split('.')[1]}", hosts=3) as lab:
        m1, m2, n3 = lab.hosts
        scans = {h.name: Scan.take(lab, h.name) for h in lab.hosts}
        env = {"PATH": os.environ["PATH"], "SEALOS_HOME": str(tmp_path / "home"),
               "SEALOS_PASSWORD": lab.password}  # fmt: skip

        def sealos(*args: str) -> str:
            proc = lab.run([sys.executable, "-m", "sealos", *args], env=env, timeout=600)
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
            return proc.stdout

        def sh(host: str, script: str) -> str:
            proc = lab.exec(host, ["sh", "-c", script])
            assert proc.returncode == 0, proc.stderr
            return proc.stdout

        def keeper(host: str) -> str:
            if mode == "systemd":
                return sh(host, "cat /etc/systemd/system/lvscare.service")
            return sh(host, f"cat {MANIFEST}")

        sealos("init", "--master", m1.ip, "--version", version, "--pkg", str(package),
               "--lvscare-mode", mode)  # fmt: skip
        sealos("join", "--master", m2.ip, "--node", n3.ip)
        assert f"{m1.ip}:6443" in keeper(n3.name) and f"{m2.ip}:6443" in keeper(n3.name)
        table = sh(m2.name, "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes")
        assert all(h.hostname in table for h in lab.hosts), table

        sealos("clean", "--master", m1.ip, "-y")
        assert f"{m1.ip}:6443" not in keeper(n3.name) and f"{m2.ip}:6443" in keeper(n3.name)
        assert scans[m1.name].leftovers() == []
        out = sealos("join", "--master", m1.ip)
        assert "creating a join token" in out  # from m2: m1 is new again
        assert f"{m1.ip}:6443" in keeper(n3.name)

        sealos("clean", "-y")
        for h in lab.hosts:
            assert scans[h.name].leftovers() == [], h.name
