"""`sealos init` end to end on the lab (issue 4, acceptance 1, 3 and 5): real SSH hosts, the lab's
offline package whose stand-ins keep kubeadm's contract strictly, lvscare with the nftables
backend on the nodes (the lab's kernel has no IPVS).

The CLI runs on the lab's operator side, like a user would run it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sealos.remote_paths import MARK_JOIN
from sealos_lab.lab import Lab
from sealos_lab.package.standin.hostenv import APISERVER_UNIT
from sealos_lab.testing import lab_session, running, unfinished_at, wait_for_output, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sealos_scan import Scan

pytestmark = [pytest.mark.root, pytest.mark.lab]

VERSION = "v1.20.15"
VIP = "10.103.97.2"
NAME = "apiserver.cluster.local"
MARKER = "# managed by sealos"


def build_package(version: str, folder: Path) -> Path:
    from sealos_lab.package import build

    return build(version, folder / f"kube{version[1:]}.tar.gz")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return build_package(VERSION, tmp_path_factory.mktemp("pkg"))


def sealos(
    lab: Lab, home: Path, args: list[str], timeout: float = 600
) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "SEALOS_HOME": str(home), "SEALOS_PASSWORD": lab.password}
    return lab.run([sys.executable, "-m", "sealos", "init", *args], env=env, timeout=timeout)


def init_args(
    masters: list[str], nodes: list[str], package: Path, version: str = VERSION
) -> list[str]:
    args = []
    for m in masters:
        args += ["--master", m]
    for n in nodes:
        args += ["--node", n]
    return [*args, "--version", version, "--pkg", str(package)]


def sh(lab: Lab, host: str, script: str, timeout: float = 60) -> str:
    proc = lab.exec(host, ["sh", "-c", script], timeout=timeout)
    assert proc.returncode == 0, f"{host}: {script}: {proc.stderr}"
    return proc.stdout


def node_table(lab: Lab, host: str) -> dict[str, str]:
    """`kubectl get nodes` on a master: node name -> STATUS."""
    out = sh(lab, host, "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes")
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    return {r[0]: r[1] for r in rows}


def hosts_entries(lab: Lab, host: str) -> list[str]:
    return [line for line in sh(lab, host, "cat /etc/hosts").splitlines() if NAME in line]


def fingerprint(lab: Lab, host: str) -> str:
    """What a second init must not change: hosts file, admin kubeconfig, CA, our markers, lvscare
    (kubelet.conf is left out: the kubelet itself rewrites it when it rotates its certificate)."""
    return sh(
        lab,
        host,
        "sha256sum /etc/hosts /etc/kubernetes/admin.conf /etc/kubernetes/pki/ca.crt "
        "/usr/local/bin/lvscare /etc/systemd/system/lvscare.service 2>/dev/null; "
        "ls -l --time-style=+%s /var/lib/sealos; "
        "systemctl show -p ActiveEnterTimestamp lvscare.service; true",
    )


@pytest.fixture(scope="module")
def cluster(package, tmp_path_factory) -> Iterator[tuple[Lab, Path, subprocess.CompletedProcess]]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    home = tmp_path_factory.mktemp("home")
    with lab_session("slha", hosts=5) as lab:
        ips = [h.ip for h in lab.hosts]
        proc = sealos(lab, home, init_args(ips[:3], ips[3:], package))
        yield lab, home, proc


def test_three_masters_two_nodes_come_up(cluster):
    lab, home, proc = cluster
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    masters, nodes = lab.hosts[:3], lab.hosts[3:]
    table = wait_until(
        lambda: (
            (t := node_table(lab, masters[0].name)) and all(v == "Ready" for v in t.values()) and t
        ),
        timeout=30,
    )
    assert table and sorted(table) == sorted(h.hostname for h in lab.hosts), table
    assert set(table.values()) == {"Ready"}
    for h in masters:
        assert hosts_entries(lab, h.name) == [f"{h.ip} {NAME} {MARKER}"]
    for h in nodes:
        assert hosts_entries(lab, h.name) == [f"{VIP} {NAME} {MARKER}"]
        assert sh(lab, h.name, "systemctl is-active lvscare.service").strip() == "active"
        ruleset = sh(lab, h.name, "nft list table ip lvscare")
        assert VIP in ruleset and all(m.ip in ruleset for m in masters), ruleset
        # The unit started before the join and said ready once the rule was in place.
        assert sh(lab, h.name, "systemctl show -p Type --value lvscare").strip() == "notify"
        journal = sh(lab, h.name, "journalctl -u lvscare.service --no-pager -o cat")
        assert "told systemd: ready (the rules are in place)" in journal, journal
    assert "kubectl get nodes" in proc.stdout and "Summary" in proc.stdout
    state = home / "config.yaml"
    assert state.stat().st_mode & 0o777 == 0o600
    text = state.read_text() + "".join(p.read_text() for p in (home / "logs").glob("*.log"))
    assert lab.password not in text
    assert not re.search(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b", text), "a bootstrap token leaked"
    assert "status: ready" in state.read_text()


def test_running_the_same_init_again_changes_nothing(cluster, package):
    lab, home, first = cluster
    assert first.returncode == 0
    m0 = lab.hosts[0].name
    before = {h.name: fingerprint(lab, h.name) for h in lab.hosts}
    ips = [h.ip for h in lab.hosts]
    proc = sealos(lab, home, init_args(ips[:3], ips[3:], package))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    for title in ("Init the first master", "Join the other masters", "Join the nodes"):
        assert f"==> {title}: nothing to do" in proc.stdout, proc.stdout
    assert "every host has it already" in proc.stdout
    after = {h.name: fingerprint(lab, h.name) for h in lab.hosts}
    assert after == before
    assert len(node_table(lab, m0)) == 5


def test_nodes_stay_ready_without_the_first_master(cluster):
    lab, _home, proc = cluster
    assert proc.returncode == 0
    m0, m1 = lab.hosts[0], lab.hosts[1]
    nodes = lab.hosts[3:]
    sh(lab, m0.name, f"systemctl stop {APISERVER_UNIT}")
    try:

        def dropped() -> bool:
            return all(m0.ip not in sh(lab, n.name, "nft list table ip lvscare") for n in nodes)

        assert wait_until(dropped, timeout=20), "lvscare kept the dead master"
        for n in nodes:
            ruleset = sh(lab, n.name, "nft list table ip lvscare")
            assert lab.hosts[1].ip in ruleset and lab.hosts[2].ip in ruleset
        time.sleep(15)  # longer than the stand-in apiserver's Ready window (10 s)
        table = node_table(lab, m1.name)
        for n in nodes:
            assert table[n.hostname] == "Ready", table
    finally:
        sh(lab, m0.name, f"systemctl start {APISERVER_UNIT}")

    def back() -> bool:
        return all(m0.ip in sh(lab, n.name, "nft list table ip lvscare") for n in nodes)

    assert wait_until(back, timeout=30), "lvscare did not take the master back"


def test_a_join_interrupted_after_the_node_registered_is_redone(cluster, package):
    """The window a kill can hit: `kubeadm join` finished (the Node is registered and Ready) but
    sealos's join marker was not written. The re-run resets the host, and must delete that Node
    first: kubeadm join refuses a name that is Ready ("a Node with name X and status Ready
    already exists")."""
    lab, home, first = cluster
    assert first.returncode == 0
    n5 = lab.hosts[4]
    sh(lab, n5.name, "rm /var/lib/sealos/join.done")
    assert node_table(lab, lab.hosts[1].name).get(n5.hostname) == "Ready"
    ips = [h.ip for h in lab.hosts]
    proc = sealos(lab, home, init_args(ips[:3], ips[3:], package))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert f"{n5.ip}: kubeadm reset -f (an earlier join stopped halfway)" in proc.stdout
    assert sh(lab, n5.name, "cat /var/lib/sealos/join.done").strip() == "done"
    table = wait_until(
        lambda: (t := node_table(lab, lab.hosts[1].name)) and all_ready(t, 5) and t, timeout=30
    )
    assert table, node_table(lab, lab.hosts[1].name)


def all_ready(table: dict[str, str], count: int) -> bool:
    return len(table) == count and set(table.values()) == {"Ready"}


# The kill lab's cluster also runs what no other test does end to end: settings from a
# cluster.yaml (-f), a VIP and an apiserver name other than the defaults, upper-case hostnames.
KILL_VIP = "10.103.97.9"
KILL_NAME = "api.kill-lab.internal"
KILL_HOSTNAMES = {"h1": "Kill-Master", "h2": "Kill-Node1", "h3": "KILL-NODE2", "h4": "kill-Node3"}


def test_killed_while_joining_nodes_then_rerun_completes(package, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    with lab_session("slkill", hosts=4, hostnames=KILL_HOSTNAMES) as lab:
        ips = [h.ip for h in lab.hosts]
        spec = {"masters": ips[:1], "nodes": ips[1:], "version": VERSION, "pkg": str(package),
                "vip": KILL_VIP, "apiserver": KILL_NAME}  # fmt: skip
        cluster_yaml = tmp_path / "cluster.yaml"
        cluster_yaml.write_text(yaml.safe_dump(spec))
        args = ["-f", str(cluster_yaml)]
        home = tmp_path / "home"
        env = {
            "PATH": os.environ["PATH"],
            "SEALOS_HOME": str(home),
            "SEALOS_PASSWORD": lab.password,
        }
        argv = lab.run_argv([sys.executable, "-m", "sealos", "init", *args])
        runner = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        seen = []
        joining: list[str] = []
        try:
            assert runner.stdout is not None
            for line in runner.stdout:
                seen.append(line)
                if f"kubeadm join {KILL_VIP}:6443" in line:  # a node has started joining
                    break
            assert any("Join the nodes" in line for line in seen), "".join(seen)
            # The kill point, from the nodes' /proc: a node's `kubeadm join` is running.
            joining = wait_until(
                lambda: [h.name for h in lab.hosts[1:] if running(lab, h.name, "kubeadm", "join")],
                timeout=120,
                interval=0.05,
            )
        finally:
            killed_at = time.time()
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait(10)
        if not joining:
            pytest.fail("kill point missed: no node's `kubeadm join` was seen running")
        # ... and had not finished there: its join marker is absent or newer than the kill.
        late = [why for n in joining if (why := unfinished_at(lab, n, MARK_JOIN, killed_at))]
        if late:
            pytest.fail(f"kill point missed, the join had finished: {late}")
        proc = sealos(lab, home, args)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
        assert "==> Init the first master: nothing to do" in proc.stdout
        m0 = lab.hosts[0]
        table = wait_until(
            lambda: (
                (t := node_table(lab, m0.name))
                and len(t) == 4
                and set(t.values()) == {"Ready"}
                and t
            ),
            timeout=30,
        )
        assert table, node_table(lab, m0.name)
        # Kubernetes names a node by its hostname in lower case (as the kubelet does).
        assert sorted(table) == sorted(n.lower() for n in KILL_HOSTNAMES.values()), table
        entry = [x for x in sh(lab, m0.name, "cat /etc/hosts").splitlines() if KILL_NAME in x]
        assert entry == [f"{m0.ip} {KILL_NAME} {MARKER}"], entry
        san = sh(lab, m0.name, "openssl x509 -noout -ext subjectAltName "
                 "-in /etc/kubernetes/pki/apiserver.crt")  # fmt: skip
        assert f"DNS:{KILL_NAME}" in san and f"IP Address:{KILL_VIP}" in san, san
        for h in lab.hosts[1:]:
            entry = [x for x in sh(lab, h.name, "cat /etc/hosts").splitlines() if KILL_NAME in x]
            assert entry == [f"{KILL_VIP} {KILL_NAME} {MARKER}"], (h.name, entry)
            assert NAME not in sh(lab, h.name, "cat /etc/hosts")  # the default name is not used
            assert sh(lab, h.name, "systemctl is-active lvscare.service").strip() == "active"
            ruleset = sh(lab, h.name, "nft list table ip lvscare")
            assert KILL_VIP in ruleset and m0.ip in ruleset and VIP not in ruleset, ruleset
            kubelet = sh(lab, h.name, "cat /etc/kubernetes/kubelet.conf")
            assert f"server: https://{KILL_NAME}:6443" in kubelet, kubelet
            assert sh(lab, h.name, "cat /var/lib/sealos/join.done").strip() == "done"


@pytest.mark.parametrize("version", ["v1.14.1", "v1.20.15", "v1.24.17", "v1.28.15", "v1.31.4"])
def test_each_supported_version_installs(version, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    package = build_package(version, tmp_path)
    with lab_session(f"slv{version.split('.')[1]}", hosts=3) as lab:
        ips = [h.ip for h in lab.hosts]
        proc = sealos(lab, tmp_path / "home", init_args(ips[:2], ips[2:], package, version))
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
        table = wait_until(
            lambda: (
                (t := node_table(lab, lab.hosts[0].name)) and set(t.values()) == {"Ready"} and t
            ),
            timeout=30,
        )
        assert table and len(table) == 3, node_table(lab, lab.hosts[0].name)
        config = sh(lab, lab.hosts[0].name, "cat /root/kubeadm-config.yaml")
        api = {"14": "v1beta1", "20": "v1beta2", "24": "v1beta3", "28": "v1beta3", "31": "v1beta4"}
        assert f"apiVersion: kubeadm.k8s.io/{api[version.split('.')[1]]}" in config


USER_CONFIG = """apiVersion: kubeadm.k8s.io/v1beta2
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {m0}
  bindPort: 6443
---
apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
kubernetesVersion: v1.20.15
controlPlaneEndpoint: apiserver.cluster.local:6443
apiServer:
  certSANs: [127.0.0.1, apiserver.cluster.local, {m0}, 10.103.97.2, given.example.com]
networking:
  podSubnet: 100.80.0.0/12
  serviceSubnet: 10.96.0.0/16
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
ipvs:
  excludeCIDRs: [10.103.97.2/32]
"""


def test_pkg_url_static_pod_mode_and_a_given_kubeadm_config(package, tmp_path):
    """Hosts download the package (plain http, so its checksum is given: --pkg-sha256), lvscare
    runs as a static pod, the user's kubeadm config is used as given (plus the runtime's cgroup
    driver for the kubelets), and the CNI pool follows --podcidr."""
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    import hashlib

    www = tmp_path / "www"
    www.mkdir()
    (www / package.name).write_bytes(package.read_bytes())
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    (www / f"{package.name}.sha256").write_text(f"{digest}  {package.name}\n")
    with lab_session("slfeat", hosts=2) as lab:
        m0, n1 = lab.hosts
        config = tmp_path / "kubeadm.yaml"
        config.write_text(USER_CONFIG.format(m0=m0.ip))
        port = 18081
        server = subprocess.Popen(
            lab.run_argv([sys.executable, "-u", "-m", "http.server", str(port), "--bind",
                          lab.operator_ip, "--directory", str(www)]),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_output(server, "Serving HTTP on")  # printed once it listens
            # A URL that answers 404: one sentence per host naming it, exit 1, no host changed.
            scans = {h.name: Scan.take(lab, h.name) for h in lab.hosts}
            missing = f"http://{lab.operator_ip}:{port}/gone/{package.name}"
            bad = sealos(lab, tmp_path / "home404", [
                "--master", m0.ip, "--node", n1.ip, "--version", VERSION, "--pkg-url", missing,
                "--pkg-sha256", digest,
            ])  # fmt: skip
            assert bad.returncode == 1 and "Traceback" not in bad.stdout + bad.stderr, bad.stdout
            for h in lab.hosts:
                said = [x for x in bad.stdout.splitlines() if f"could not download {missing}" in x]
                assert any(h.ip in x and "404" in x and "check the URL" in x for x in said), said
                assert scans[h.name].changes() == [], h.name
            url = f"http://{lab.operator_ip}:{port}/{package.name}"
            args = [
                "--master", m0.ip, "--node", n1.ip, "--version", VERSION, "--pkg-url", url,
                "--pkg-sha256", digest, "--lvscare-mode", "static-pod",
                "--kubeadm-config", str(config), "--podcidr", "100.80.0.0/12",
            ]  # fmt: skip
            proc = sealos(lab, tmp_path / "home", args)
        finally:
            server.terminate()
            server.wait(10)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
        assert "package downloaded" in proc.stdout
        for h in lab.hosts:
            got = sh(lab, h.name, f"sha256sum /root/{package.name}").split()[0]
            assert got == digest
        # as given, plus the kubelets' cgroup driver of the hosts' runtime (Debian's containerd:
        # cgroupfs), since the user's config sets none
        written = sh(lab, m0.name, "cat /root/kubeadm-config.yaml")
        assert written.startswith(config.read_text()), written
        added = list(yaml.safe_load_all(written[len(config.read_text()) :]))
        assert added == [
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "cgroupDriver": "cgroupfs",
            }
        ], written
        # the config's certSANs reached the apiserver's certificate
        san = sh(lab, m0.name, "openssl x509 -noout -ext subjectAltName "
                 "-in /etc/kubernetes/pki/apiserver.crt")  # fmt: skip
        assert "DNS:given.example.com" in san, san
        manifest = sh(lab, n1.name, "cat /etc/kubernetes/manifests/kube-sealyun-lvscare.yaml")
        assert "hostNetwork: true" in manifest and f"{m0.ip}:6443" in manifest
        assert (
            lab.exec(n1.name, ["test", "-e", "/etc/systemd/system/lvscare.service"]).returncode == 1
        )
        assert "100.80.0.0/12" in sh(lab, m0.name, "cat /root/kube/conf/net/calico.sealos.yaml")
        table = wait_until(
            lambda: (t := node_table(lab, m0.name)) and set(t.values()) == {"Ready"} and t,
            timeout=30,
        )
        assert table and len(table) == 2
