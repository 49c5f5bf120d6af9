"""`sealos init` on VM hosts with Debian's kernel and real IPVS (issue 4, acceptance 2): 2 masters
+ 1 node; `ipvsadm -Ln` on the node shows VIP:6443 rr with every master as Masq 1."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealos_lab.lab import Lab
from sealos_lab.testing import lab_session

pytestmark = [pytest.mark.root, pytest.mark.lab, pytest.mark.vm]

VERSION = "v1.20.15"
VIP = "10.103.97.2"


@pytest.fixture(scope="module")
def vmlab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    with lab_session("slvm", hosts=3, vm=True, timeout=900) as lab:
        yield lab


def test_nodes_balance_the_apiservers_with_real_ipvs(vmlab: Lab, tmp_path: Path):
    from sealos_lab.package import build

    lab = vmlab
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
    nodes = lab.exec(
        m1.name, ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "get", "nodes"]
    )
    assert nodes.stdout.count(" Ready ") == 3, nodes.stdout
