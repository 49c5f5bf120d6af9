"""Host-network pods on the lab (issue 10, items 8 and 10; issue 12, static-pod mode): the stand-in
kubelet runs them as host processes, each with a copy of /etc/hosts taken at its start, and the
stand-in kube-proxy programs the kernel as kube-proxy does.

- static-pod mode: lvscare's static pod is what keeps the node's VIP rule; after a master joins
  and after a master is cleaned, the node's nftables rules (the kernel, not the manifest) follow.
- clean: kube-proxy ran on every host (its KUBE-* chains are seen in the kernel first); after
  `sealos clean` none of them, no kube-ipvs0, nothing else new is left (the scan lists nft chains,
  links and IPVS services).
- failover: 3 masters; master 1 powered off; kube-proxy on master 2 still reaches an apiserver
  through its own /etc/hosts copy (its healthz, and a request made from its mount namespace).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from sealos_lab.lab import Lab
from sealos_lab.testing import lab_session, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sealos_scan import Scan

pytestmark = [pytest.mark.root, pytest.mark.lab]

NAME = "apiserver.cluster.local"
ADMIN = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
# lvscare's static pod restarts with a new manifest within the kubelet's 1 s sync, then reconciles
# within its tick; a generous bound on a busy 2-core machine.
RULES_DEADLINE = 60.0


class Cluster:
    def __init__(self, lab: Lab, home: Path) -> None:
        self.lab = lab
        self.env = {
            "PATH": os.environ["PATH"],
            "SEALOS_HOME": str(home),
            "SEALOS_PASSWORD": lab.password,
        }

    def sealos(self, *args: str) -> str:
        proc = self.lab.run([sys.executable, "-m", "sealos", *args], env=self.env, timeout=900)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return proc.stdout

    def sh(self, host: str, script: str, check: bool = True) -> str:
        proc = self.lab.exec(host, ["sh", "-c", script], timeout=60)
        if check:
            assert proc.returncode == 0, f"{host}: {script}: {proc.stderr}"
        return proc.stdout

    def vip_backends(self, node: str) -> set[str]:
        """The real servers of the VIP in the node's kernel (lvscare's nftables table)."""
        ruleset = self.sh(node, "nft list table ip lvscare 2>/dev/null", check=False)
        return set(re.findall(r"(\d+\.\d+\.\d+\.\d+) \. 6443", ruleset))

    def kube_proxy_chains(self, host: str) -> list[str]:
        ruleset = self.sh(host, "nft list ruleset")
        return re.findall(r"chain (KUBE-[A-Z0-9-]+)", ruleset)

    def proxy_health(self, host: str) -> dict:
        """kube-proxy's /healthz on the host (its own port 10256): status and times."""
        out = self.sh(
            host,
            "curl -s -m 3 -w ' %{http_code}' http://127.0.0.1:10256/healthz",
            check=False,
        )
        body, _, code = out.rpartition(" ")
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        return {"code": code, **data}


def test_static_pod_mode_follows_joins_and_cleans_and_clean_leaves_no_proxy_rules(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    from sealos_lab.package import build

    version = "v1.31.4"
    package = build(version, tmp_path / f"kube{version[1:]}.tar.gz")
    with lab_session("kp8static", hosts=3) as lab:
        m1, m2, n3 = lab.hosts
        scans = {h.name: Scan.take(lab, h.name) for h in lab.hosts}
        c = Cluster(lab, tmp_path / "home")
        c.sealos("init", "--master", m1.ip, "--node", n3.ip, "--version", version,
                 "--pkg", str(package), "--lvscare-mode", "static-pod")  # fmt: skip
        assert wait_until(lambda: c.vip_backends(n3.name) == {m1.ip}, RULES_DEADLINE)
        # the rule is kept by the pod's process: it runs, as the static pod's host process
        assert "lvscare care" in c.sh(n3.name, "ps -eo args")

        c.sealos("join", "--master", m2.ip)
        got = wait_until(lambda: c.vip_backends(n3.name) == {m1.ip, m2.ip}, RULES_DEADLINE)
        assert got, f"n3's kernel rules: {c.vip_backends(n3.name)}"

        # kube-proxy ran everywhere: its chains are in the kernel before clean
        for h in lab.hosts:
            assert wait_until(lambda h=h: "KUBE-SERVICES" in c.kube_proxy_chains(h.name), 60), (
                h.name
            )

        c.sealos("clean", "--master", m1.ip, "-y")
        got = wait_until(lambda: c.vip_backends(n3.name) == {m2.ip}, RULES_DEADLINE)
        assert got, f"n3's kernel rules after m1's clean: {c.vip_backends(n3.name)}"
        assert c.kube_proxy_chains(m1.name) == []
        assert "kube-ipvs0" not in c.sh(m1.name, "ip -o link show")
        assert scans[m1.name].leftovers() == []

        c.sealos("clean", "-y")
        for h in lab.hosts:
            assert c.kube_proxy_chains(h.name) == [], h.name
            assert scans[h.name].leftovers() == [], h.name


def test_kube_proxy_on_master_2_survives_master_1_power_off(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    from sealos_lab.package import build

    version = "v1.20.15"
    package = build(version, tmp_path / f"kube{version[1:]}.tar.gz")
    with lab_session("kp8fail", hosts=3) as lab:
        m1, m2, m3 = lab.hosts
        c = Cluster(lab, tmp_path / "home")
        c.sealos("init", "--master", m1.ip, "--master", m2.ip, "--master", m3.ip,
                 "--version", version, "--pkg", str(package))  # fmt: skip
        assert wait_until(lambda: c.proxy_health(m2.name)["code"] == "200", 60)
        pods = c.sh(m1.name, f"{ADMIN} -n kube-system get pods -l k8s-app=kube-proxy -o wide")
        assert m2.hostname in pods, pods

        lab.stop_host(m1.name)
        after = c.proxy_health(m2.name)["currentTime"]
        # kube-proxy on m2 syncs with an apiserver after m1 went down (it did so every 2 s before)
        got = wait_until(
            lambda: c.proxy_health(m2.name).get("lastUpdated", 0) > after + 3, 30, interval=1
        )
        assert got, f"kube-proxy on m2 stuck: {c.proxy_health(m2.name)}; " + c.sh(
            m2.name, "journalctl -u kubelet --no-pager | grep kube-proxy | tail -n 5"
        )
        # what it reaches, from its own mount namespace (its copy of /etc/hosts)
        pid = c.sh(m2.name, "pgrep -f -o 'sealos-lab-kube-proxy'").strip()
        seen = c.sh(m2.name, f"nsenter -t {pid} -m getent hosts {NAME}")
        assert seen.split()[0] == m2.ip, seen
        reach = c.sh(m2.name, f"nsenter -t {pid} -m curl -sk -m 5 https://{NAME}:6443/healthz")
        assert reach == "ok"
