"""`sealos init` on VM hosts with Debian's kernel and real IPVS (issue 4, acceptance 2): 2 masters
+ 1 node; `ipvsadm -Ln` on the node shows VIP:6443 rr with every master as Masq 1. Then the node
reboots (issue 12): the VIP rule is back, lvscare.service was active before kubelet.service
started (systemd's own timestamps), and the node is Ready again. Last, kube-proxy's IPVS leftovers
(issue 10 item 10): the stand-in kube-proxy (IPVS mode, as sealos configures it) put `kube-ipvs0`
and the kubernetes Service's virtual server on every host, `kubeadm reset` leaves them, and after
`sealos clean` `ipvsadm -Ln` lists no virtual server and `ip link` no kube-ipvs0. v1.20's kubelet
needs cgroup v1, so these VMs boot with systemd.unified_cgroup_hierarchy=0 (issue 10)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealos_lab.lab import Lab
from sealos_lab.state import HostSpec
from sealos_lab.testing import lab_session, reboot, run_sealos

pytestmark = [pytest.mark.root, pytest.mark.lab, pytest.mark.vm]

VERSION = "v1.20.15"
VIP = "10.103.97.2"
SERVICE = "TCP  10.96.0.1:443 rr"  # the kubernetes Service, as kube-proxy puts it in IPVS
HOME: dict[str, Path] = {}  # the cluster's SEALOS_HOME, for the last test's clean


@pytest.fixture(scope="module")
def vmlab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    # kubelets before 1.25 need cgroup v1: the VMs boot with systemd.unified_cgroup_hierarchy=0
    v1 = {f"h{i}": HostSpec(cgroup_v1=True) for i in (1, 2, 3)}
    with lab_session("slvm", hosts=3, vm=True, timeout=900, specs=v1) as lab:
        yield lab


@pytest.fixture(scope="module")
def cluster(vmlab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """The VM lab with `sealos init` done: 2 masters + 1 node."""
    from sealos_lab.package import build

    lab = vmlab
    tmp_path = tmp_path_factory.mktemp("init")
    HOME["path"] = tmp_path / "home"
    pkg = build(VERSION, tmp_path / f"kube{VERSION[1:]}.tar.gz")
    m1, m2, n1 = lab.hosts
    env = {
        "PATH": os.environ["PATH"],
        "SEALOS_HOME": str(tmp_path / "home"),
        "SEALOS_PASSWORD": lab.password,
    }
    argv = [
        sys.executable, "-m", "sealos", "init", "--master", m1.ip, "--master", m2.ip,
        "--node", n1.ip, "--version", VERSION, "--pkg", str(pkg),
    ]  # fmt: skip
    proc = lab.run(argv, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    return lab


def _ready_nodes(lab: Lab) -> str:
    return lab.exec(
        lab.hosts[0].name,
        ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "get", "nodes"],
        timeout=60,
    ).stdout


def test_nodes_balance_the_apiservers_with_real_ipvs(cluster: Lab):
    lab = cluster
    m1, m2, n1 = lab.hosts

    def rules() -> str:
        return lab.exec(n1.name, ["ipvsadm", "-Ln"], timeout=60).stdout

    def forward_and_weight(out: str, ip: str) -> list[str]:
        line = next((x for x in out.splitlines() if f"{ip}:6443" in x), "")
        return line.split()[2:4]  # "->  IP:PORT  Masq  1  ..."

    # The steady state is what counts: under TCG a probe of a busy master can time out once,
    # which puts it at weight 0 until the next good probe (rise 1).
    deadline = time.monotonic() + 90
    out = rules()
    while time.monotonic() < deadline and not all(
        forward_and_weight(out, m.ip) == ["Masq", "1"] for m in (m1, m2)
    ):
        time.sleep(2)
        out = rules()
    assert f"TCP  {VIP}:6443 rr" in out, out
    for m in (m1, m2):
        assert forward_and_weight(out, m.ip) == ["Masq", "1"], out
    status = lab.exec(n1.name, ["systemctl", "is-active", "lvscare.service"]).stdout.strip()
    assert status == "active"
    nodes = _ready_nodes(lab)
    assert nodes.count(" Ready ") == 3, nodes


def _monotonic_usec(lab: Lab, host: str, unit: str, prop: str) -> int:
    out = lab.exec(host, ["systemctl", "show", "-P", prop, unit], check=True).stdout.strip()
    return int(out)


def test_node_reboot_brings_the_vip_rule_back_before_kubelet_and_the_node_ready(cluster: Lab):
    lab = cluster
    n1 = lab.hosts[2]
    VIP_LINE = f"TCP  {VIP}:6443 rr"
    started = time.monotonic()
    back = reboot(lab, n1.name)
    # The VM's own disk was kept: sealos's /etc/hosts line survived the boot.
    hosts = lab.exec(n1.name, ["cat", "/etc/hosts"], check=True).stdout
    assert "apiserver.cluster.local" in hosts, hosts
    # SSH is up before the rest of the boot: wait for kubelet.service, then the VIP rule must be
    # there (lvscare is Type=notify, READY once the rule is in) and lvscare was active first.
    kubelet_deadline = time.monotonic() + 120
    state = ""
    while time.monotonic() < kubelet_deadline:
        state = lab.exec(n1.name, ["systemctl", "is-active", "kubelet.service"]).stdout.strip()
        if state == "active":
            break
        time.sleep(2)
    assert state == "active", state
    rules = lab.exec(n1.name, ["ipvsadm", "-Ln"], timeout=60).stdout
    assert VIP_LINE in rules, rules
    lvscare_active = _monotonic_usec(
        lab, n1.name, "lvscare.service", "ActiveEnterTimestampMonotonic"
    )
    kubelet_started = _monotonic_usec(
        lab, n1.name, "kubelet.service", "ExecMainStartTimestampMonotonic"
    )
    assert 0 < lvscare_active <= kubelet_started, (lvscare_active, kubelet_started)
    # The node is Ready again, as the master sees it, within a deadline.
    ready_deadline = time.monotonic() + 180
    line = ""
    while time.monotonic() < ready_deadline:
        line = next((x for x in _ready_nodes(lab).splitlines() if x.startswith(n1.hostname)), "")
        if " Ready " in f"{line} ":
            break
        time.sleep(3)
    assert " Ready " in f"{line} ", line
    print(f"node reboot: SSH back after {back:.1f} s, Ready after "
          f"{time.monotonic() - started:.1f} s")  # fmt: skip


def test_clean_removes_kube_proxys_ipvs_service_and_link(cluster: Lab):
    lab = cluster

    def kernel(host: str) -> str:
        ipvs = lab.exec(host, ["ipvsadm", "-Ln"], timeout=60).stdout
        links = lab.exec(host, ["ip", "-o", "link", "show"], timeout=60).stdout
        return ipvs + links

    m1 = lab.hosts[0]
    for h in lab.hosts:
        deadline = time.monotonic() + 180
        seen = kernel(h.name)
        while not (SERVICE in seen and f"{m1.ip}:6443" in seen and "kube-ipvs0" in seen):
            assert time.monotonic() < deadline, f"{h.name}: no kube-proxy rules: {seen}"
            time.sleep(3)
            seen = kernel(h.name)
    proc = run_sealos(lab, HOME["path"], "clean", "-y", timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    for h in lab.hosts:
        seen = kernel(h.name)
        assert "kube-ipvs0" not in seen, seen
        assert "TCP  " not in seen and "UDP  " not in seen, seen
