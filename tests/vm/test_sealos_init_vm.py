"""`sealos init` on VM hosts with Debian's kernel and real IPVS (issue 4, acceptance 2): 3 masters
+ 1 node; `ipvsadm -Ln` on the node shows VIP:6443 rr with every master as Masq 1. Then the node
reboots (issue 12): the VIP rule is back, lvscare.service was active before kubelet.service
started (systemd's own timestamps), and the node is Ready again. A master host goes away (issue
12), black-holed (nft inside it drops every packet but the lab's SSH) and then rebooted: the
other masters keep etcd's quorum (three masters: two of two would lose it, as etcd does), the
node's rule drops the master (`ipvsadm -Ln` on the node), the other nodes stay Ready through the
VIP, and the master is back in the node's rule once it answers again. The nodes are watched with
the package's kubectl run on the operator (through `sealos kubeconfig --server` to the first
master), so the observation costs the guests nothing. Last, kube-proxy's IPVS
leftovers (issue 10 item 10): the stand-in kube-proxy (IPVS mode, as sealos configures it) put
`kube-ipvs0` and the kubernetes Service's virtual server on every host, `kubeadm reset` leaves
them, and after `sealos clean` `ipvsadm -Ln` lists no virtual server and `ip link` no
kube-ipvs0. v1.20's kubelet needs cgroup v1, so these VMs boot with
systemd.unified_cgroup_hierarchy=0 (issue 10)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from sealos_lab.lab import Lab
from sealos_lab.package.standin.hostenv import APISERVER_UNIT
from sealos_lab.state import HostSpec
from sealos_lab.testing import lab_session, reboot, run_sealos, wait_until

pytestmark = [pytest.mark.root, pytest.mark.lab, pytest.mark.vm]

VERSION = "v1.20.15"
VIP = "10.103.97.2"
SERVICE = "TCP  10.96.0.1:443 rr"  # the kubernetes Service, as kube-proxy puts it in IPVS
HOME: dict[str, Path] = {}  # the cluster's SEALOS_HOME, for the last test's clean
KUBECTL: list[str] = []  # the package's kubectl on the operator, with the admin kubeconfig


@pytest.fixture(scope="module")
def vmlab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    # kubelets before 1.25 need cgroup v1: the VMs boot with systemd.unified_cgroup_hierarchy=0
    v1 = {f"h{i}": HostSpec(cgroup_v1=True) for i in (1, 2, 3, 4)}
    # Three masters: a master host can go away with etcd's quorum kept (two of three).
    with lab_session("slvm", hosts=4, vm=True, timeout=900, specs=v1) as lab:
        yield lab


@pytest.fixture(scope="module")
def cluster(vmlab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """The VM lab with `sealos init` done: 3 masters + 1 node."""
    from sealos_lab.package import build

    lab = vmlab
    tmp_path = tmp_path_factory.mktemp("init")
    HOME["path"] = tmp_path / "home"
    pkg = build(VERSION, tmp_path / f"kube{VERSION[1:]}.tar.gz")
    m1, m2, m3, n1 = lab.hosts
    env = {
        "PATH": os.environ["PATH"],
        "SEALOS_HOME": str(tmp_path / "home"),
        "SEALOS_PASSWORD": lab.password,
    }
    argv = [
        sys.executable, "-m", "sealos", "init", "--master", m1.ip, "--master", m2.ip,
        "--master", m3.ip, "--node", n1.ip, "--version", VERSION, "--pkg", str(pkg),
    ]  # fmt: skip
    proc = lab.run(argv, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    # The observer's kubectl runs here, on the operator, against the first master's own address:
    # in a TCG guest one kubectl run costs seconds of the CPU its apiserver answers with.
    conf = tmp_path / "admin.conf"
    argv = [sys.executable, "-m", "sealos", "kubeconfig", "-o", str(conf),
            "--server", f"https://{m1.ip}:6443"]  # fmt: skip
    proc = lab.run(argv, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    with tarfile.open(pkg) as archive:
        member = archive.extractfile("kube/bin/kubectl")
        assert member is not None
        (tmp_path / "kubectl").write_bytes(member.read())
    KUBECTL[:] = [sys.executable, str(tmp_path / "kubectl"), "--kubeconfig", str(conf)]
    return lab


def _ready_nodes(lab: Lab) -> str:
    """`kubectl get nodes` as the first master's apiserver answers it (run on the operator)."""
    return lab.run([*KUBECTL, "get", "nodes"], env={"PATH": os.environ["PATH"]}, timeout=60).stdout


def test_nodes_balance_the_apiservers_with_real_ipvs(cluster: Lab):
    lab = cluster
    *masters, n1 = lab.hosts

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
        forward_and_weight(out, m.ip) == ["Masq", "1"] for m in masters
    ):
        time.sleep(2)
        out = rules()
    assert f"TCP  {VIP}:6443 rr" in out, out
    for m in masters:
        assert forward_and_weight(out, m.ip) == ["Masq", "1"], out
    status = lab.exec(n1.name, ["systemctl", "is-active", "lvscare.service"]).stdout.strip()
    assert status == "active"
    # The node joined last: on TCG its kubelet's first Ready status can take a while.
    wait_until(lambda: _ready_nodes(lab).count(" Ready ") == 4, 180, interval=3)
    nodes = _ready_nodes(lab)
    assert nodes.count(" Ready ") == 4, nodes


def _monotonic_usec(lab: Lab, host: str, unit: str, prop: str) -> int:
    out = lab.exec(host, ["systemctl", "show", "-P", prop, unit], check=True).stdout.strip()
    return int(out)


def test_node_reboot_brings_the_vip_rule_back_before_kubelet_and_the_node_ready(cluster: Lab):
    lab = cluster
    n1 = lab.hosts[-1]
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


# lvscare's settings as sealos runs it (lvscare's defaults): a master whose probes fail `FALL`
# times leaves the node's rule; each probe takes at most the health timeout.
INTERVAL, HEALTH_TIMEOUT, FALL = 0.5, 1.0, 2
DETECTION = FALL * (INTERVAL + HEALTH_TIMEOUT)
# A TCG guest, and each look at the rule is an SSH round trip into the node: well over lvscare's
# detection time, far under "never".
SLACK = 15.0
BLACKHOLE_TABLE = "sealos_lab_blackhole"
MASQ_1 = ("Masq", "1")


def _vip_real_servers(lab: Lab, host: str) -> Optional[dict[str, tuple[str, str]]]:
    """The VIP's real servers in `ipvsadm -Ln` on `host`: IP -> (forward, weight); None when
    ipvsadm did not answer."""
    try:
        proc = lab.exec(host, ["ipvsadm", "-Ln"], timeout=30)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        return None
    found, ours = {}, False
    for line in proc.stdout.splitlines():
        if line.startswith(("TCP", "UDP", "FWM")):
            ours = line.split()[1] == f"{VIP}:6443"
        elif ours and line.strip().startswith("->") and "RemoteAddress" not in line:
            parts = line.split()
            found[parts[1].rsplit(":", 1)[0]] = (parts[2], parts[3])
    return found


def _node_states(lab: Lab) -> dict[str, str]:
    """`kubectl get nodes` from the first master's apiserver: hostname -> Ready/NotReady; empty
    when it did not answer (that is no observation of the nodes)."""
    try:
        out = _ready_nodes(lab)
    except subprocess.TimeoutExpired:
        return {}
    rows = [line.split() for line in out.splitlines()[1:]]
    return {row[0]: row[1] for row in rows if len(row) >= 2}


def _story(lab: Lab, since: str) -> str:
    """What the node's kubelet and lvscare and the first two masters' apiservers logged since the
    guest time `since` (epoch seconds): a failure's explanation, not a judgement."""
    m1, m2, _m3, n1 = lab.hosts
    parts = []
    for host, units in (
        (n1, ["kubelet", "lvscare"]),
        (m1, [APISERVER_UNIT]),
        (m2, [APISERVER_UNIT]),
    ):
        argv = ["journalctl", "--no-pager", "-o", "short-precise", "--since", f"@{since}"]
        for unit in units:
            argv += ["-u", unit]
        try:
            lines = lab.exec(host.name, argv, timeout=60).stdout.splitlines()
        except subprocess.TimeoutExpired:
            lines = ["(journalctl did not answer)"]
        parts.append(f"--- {host.name} {' '.join(units)}:\n" + "\n".join(lines[-60:]))
    return "\n".join(parts)


def _guest_now(lab: Lab) -> str:
    return lab.exec(lab.hosts[-1].name, ["date", "+%s"], timeout=60).stdout.strip()


def _wait_all_ready(lab: Lab, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    states = _node_states(lab)
    while time.monotonic() < deadline and not (
        len(states) == len(lab.hosts) and all(v == "Ready" for v in states.values())
    ):
        time.sleep(3)
        states = _node_states(lab)
    assert len(states) == len(lab.hosts), states
    assert all(v == "Ready" for v in states.values()), states


def _wait_in_rule(lab: Lab, node: str, ip: str, timeout: float) -> float:
    """Seconds until `ip` is in `node`'s VIP rule as Masq 1; AssertionError after `timeout`."""
    started = time.monotonic()
    rule = _vip_real_servers(lab, node)
    while not (rule and rule.get(ip) == ("Masq", "1")):
        assert time.monotonic() - started < timeout, f"{ip} not back in {node}'s rule: {rule}"
        time.sleep(1)
        rule = _vip_real_servers(lab, node)
    return time.monotonic() - started


def test_black_holed_master_leaves_the_node_rule_and_the_nodes_stay_ready(cluster: Lab):
    """A master host gone (every packet dropped, not only its apiserver stopped): the node's rule
    drops it within lvscare's detection time, the others stay Ready through the VIP while it is
    gone (the node's kubelet included, whose kept-alive connection may have been on it), and it
    is back in the rule once its packets flow again."""
    lab = cluster
    m1, m2, m3, n1 = lab.hosts
    _wait_all_ready(lab)
    _wait_in_rule(lab, n1.name, m2.ip, 120)
    operator = lab.operator_ip
    blackhole = (
        f"table inet {BLACKHOLE_TABLE} {{\n"
        "\tchain input {\n\t\ttype filter hook input priority -300; policy accept;\n"
        f'\t\tiif "lo" accept\n\t\tip saddr {operator} tcp dport 22 accept\n\t\tdrop\n\t}}\n'
        "\tchain output {\n\t\ttype filter hook output priority -300; policy accept;\n"
        f'\t\toif "lo" accept\n\t\tip daddr {operator} tcp sport 22 accept\n\t\tdrop\n\t}}\n'
        "}\n"
    )
    since = _guest_now(lab)
    try:
        proc = lab.exec(m2.name, ["nft", "-f", "-"], input=blackhole, timeout=60)
        assert proc.returncode == 0, proc.stderr
        holed = time.monotonic()
        # Independent of lvscare: m1 no longer reaches m2 at all.
        probe = lab.exec(m1.name, ["curl", "-sk", "-m", "3", f"https://{m2.ip}:6443/readyz"])
        assert probe.returncode != 0, probe.stdout
        gone = None
        while time.monotonic() - holed < DETECTION + SLACK:
            rule = _vip_real_servers(lab, n1.name)
            if rule is not None and m2.ip not in rule and m1.ip in rule:
                gone = time.monotonic() - holed
                break
            time.sleep(0.5)
        assert gone is not None, (
            f"{m2.ip} still in {n1.name}'s rule {DETECTION + SLACK:g} s after it was "
            f"black-holed: {_vip_real_servers(lab, n1.name)}"
        )
        # Twice the stand-in apiserver's Ready window (10 s) with the master gone: the others
        # must never be seen NotReady (a kubelet whose status stops for 10 s would be).
        seen, not_ready = 0, []
        while time.monotonic() - holed < gone + 25:
            states = _node_states(lab)
            if states:
                seen += 1
                not_ready += [(h.hostname, states.get(h.hostname)) for h in (m1, m3, n1)
                              if states.get(h.hostname) != "Ready"]  # fmt: skip
            time.sleep(2)
        assert seen >= 2, f"kubectl on {m1.name} answered {seen} times while {m2.name} was gone"
        assert not not_ready, f"{not_ready}\n{_story(lab, since)}"
        rule = _vip_real_servers(lab, n1.name)
        assert rule is not None and m2.ip not in rule, rule
    finally:
        lab.exec(m2.name, ["nft", "delete", "table", "inet", BLACKHOLE_TABLE], timeout=60)
    freed = time.monotonic()
    back = _wait_in_rule(lab, n1.name, m2.ip, 180)
    print(
        f"black-holed master: out of the node's IPVS rule after {gone:.1f} s (lvscare's detection "
        f"{DETECTION:g} s + SSH polls), back {back:.1f} s after its packets flowed again; "
        f"{seen} looks at the nodes while it was gone, none NotReady"
    )
    assert time.monotonic() - freed < 200


def test_master_reboot_nodes_stay_ready_and_it_rejoins_the_rules(cluster: Lab):
    """`systemctl reboot` of a master: while it is down the node's IPVS rule drops it and the
    other nodes stay Ready (their kubelets reach the others through the VIP); once back it is
    Ready and in the node's rule again."""
    lab = cluster
    m1, m2, m3, n1 = lab.hosts
    _wait_all_ready(lab)
    _wait_in_rule(lab, n1.name, m3.ip, 120)
    rebooted: dict[str, object] = {}

    def do_reboot() -> None:
        try:
            rebooted["ssh"] = reboot(lab, m3.name, timeout=600)
        except BaseException as exc:  # reported by the test below
            rebooted["error"] = exc

    since = _guest_now(lab)
    started = time.monotonic()
    thread = threading.Thread(target=do_reboot, daemon=True)
    thread.start()
    gone = back = ready = None
    seen, not_ready, in_rule = 0, [], True
    # Until it is Ready again from its new boot and back in the rule (or was never out of it).
    while time.monotonic() - started < 900 and not (
        ready is not None and (back is not None or (gone is None and in_rule))
    ):
        now = time.monotonic() - started
        rule = _vip_real_servers(lab, n1.name)
        if rule is not None:
            in_rule = rule.get(m3.ip) == MASQ_1
            if gone is None and m3.ip not in rule:
                gone = now
            if gone is not None and back is None and in_rule:
                back = now
        states = _node_states(lab)
        if states:
            seen += 1
            not_ready += [(round(now), h.hostname, states.get(h.hostname)) for h in (m1, m2, n1)
                          if states.get(h.hostname) != "Ready"]  # fmt: skip
            if "ssh" in rebooted and ready is None and states.get(m3.hostname) == "Ready":
                ready = time.monotonic() - started
        if "error" in rebooted:
            raise AssertionError(f"{m3.name}: {rebooted['error']}")
        time.sleep(1)
    thread.join(timeout=1)
    assert "ssh" in rebooted, f"{m3.name} did not come back from its reboot"
    assert gone is not None, f"{m3.ip} never left {n1.name}'s IPVS rule while it rebooted"
    assert seen >= 3, f"kubectl on {m1.name} answered {seen} times during the reboot"
    assert not not_ready, f"{not_ready}\n{_story(lab, since)}"
    assert ready is not None, f"{m3.hostname} not Ready after its reboot: {_node_states(lab)}"
    assert back is not None, (
        f"{m3.ip} not back in {n1.name}'s rule: {_vip_real_servers(lab, n1.name)}"
    )
    print(
        f"master reboot: SSH back after {rebooted['ssh']:.1f} s, Ready after {ready:.1f} s; the "
        f"node's IPVS rule went without it from {gone:.1f} s to {back:.1f} s "
        f"({back - gone:.1f} s); {seen} looks at the nodes, none NotReady"
    )


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
