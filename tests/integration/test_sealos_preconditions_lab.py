"""Issue 10, items 1, 2 and 6 on the lab: hosts below kubeadm's preconditions for the version are
refused before anything changes, all problems at once (a host whose container runtime is stopped,
a host without conntrack); once fixed, the same init installs, with the CRI socket of the runtime
that answers and a kubelet cgroup driver matching the runtime's (the lab's containerd runs on
cgroupfs as Debian ships it, while kubeadm 1.28 would default the kubelet to systemd); clean
leaves the host's own containerd running; a node whose runtime uses systemd cgroups is refused by
join before any change.

One 3-host lab, one story (each test needs the one before it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from sealos_lab.lab import Lab
from sealos_lab.testing import host_sh, lab_session, run_sealos

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sealos_scan import Scan

pytestmark = [pytest.mark.root, pytest.mark.lab]

VERSION = "v1.28.15"
KUBECTL = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]


@dataclass
class Story:
    lab: Lab
    home: Path
    package: Path
    passed: set[str] = field(default_factory=set)

    def need(self, step: str) -> None:
        if step not in self.passed:
            pytest.fail(f"needs the earlier step {step} of this story to pass")

    def sealos(self, *args: str, timeout: float = 900):
        return run_sealos(self.lab, self.home, *args, timeout=timeout)

    def sh(self, host: str, script: str) -> str:
        return host_sh(self.lab, host, script, timeout=120)

    def init_args(self) -> list[str]:
        m1, n1, n2 = self.lab.hosts
        return ["init", "--master", m1.ip, "--node", n1.ip, "--node", n2.ip,
                "--version", VERSION, "--pkg", str(self.package)]  # fmt: skip


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> Iterator[Story]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    from sealos_lab.package import build

    folder = tmp_path_factory.mktemp("preconditions")
    package = build(VERSION, folder / f"kube{VERSION[1:]}.tar.gz")
    with lab_session("pcond", hosts=3) as lab:
        yield Story(lab, folder / "home", package)


def test_hosts_below_the_preconditions_are_refused_before_any_change(story):
    lab = story.lab
    m1, n1, n2 = lab.hosts
    # The lab's hosts meet 1.28's preconditions; break two of them, one per host.
    assert "active" in story.sh(n1.name, "systemctl is-active containerd.service")
    story.sh(n1.name, "systemctl stop containerd.service")
    story.sh(n2.name, 'mv "$(command -v conntrack)" /root/conntrack.away')
    scans = {h.name: Scan.take(lab, h.name) for h in lab.hosts}
    proc = story.sealos(*story.init_args())
    out = proc.stdout
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, out + proc.stderr
    assert (
        f"{n1.ip}: no container runtime answers (containerd is installed but does not answer: "
        "systemctl enable --now containerd) (looked for "
    ) in out, out
    assert (
        f"{n2.ip}: conntrack not found, which kubeadm {VERSION} requires; install them "
        "(Debian/Ubuntu: apt-get install conntrack)."
    ) in out, out
    assert f"error: {m1.ip}" not in out, out  # m1 meets them
    assert "nothing was changed" in out
    for name, scan in scans.items():
        assert scan.changes() == [], name
    assert not (story.home / "config.yaml").exists()
    story.passed.add("refused")


def test_once_fixed_the_same_init_installs_with_the_runtimes_socket_and_cgroup_driver(story):
    story.need("refused")
    lab = story.lab
    m1, n1, n2 = lab.hosts
    story.sh(n1.name, "systemctl start containerd.service")
    story.sh(n2.name, "mv /root/conntrack.away /usr/sbin/conntrack")
    driver = story.sh(m1.name, "containerd config dump | grep -m1 SystemdCgroup")
    assert "false" in driver  # Debian's containerd: cgroupfs
    proc = story.sealos(*story.init_args())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Check the hosts for kubeadm" in proc.stdout
    config = list(yaml.safe_load_all(story.sh(m1.name, "cat /root/kubeadm-config.yaml")))
    by_kind = {d["kind"]: d for d in config}
    assert by_kind["InitConfiguration"]["nodeRegistration"]["criSocket"] == (
        "unix:///run/containerd/containerd.sock"
    )
    assert by_kind["KubeletConfiguration"]["cgroupDriver"] == "cgroupfs"
    for host in lab.hosts:
        kubelet = yaml.safe_load(story.sh(host.name, "cat /var/lib/kubelet/config.yaml"))
        assert kubelet["cgroupDriver"] == "cgroupfs", host.name
        assert story.sh(host.name, "systemctl is-active kubelet.service").strip() == "active"
    nodes = story.sh(m1.name, " ".join(KUBECTL) + " get nodes")
    assert nodes.count(" Ready") == 3, nodes
    state = yaml.safe_load((story.home / "config.yaml").read_text())
    assert state["cgroupDriver"] == "cgroupfs"
    story.passed.add("installed")


def test_a_node_whose_runtime_uses_another_cgroup_driver_cannot_join(story):
    story.need("installed")
    lab = story.lab
    n2 = lab.hosts[2]
    ok = story.sealos("clean", "--node", n2.ip, "-y")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The host's own containerd (Debian's, there before sealos) is not sealos's to remove.
    assert story.sh(n2.name, "systemctl is-active containerd.service").strip() == "active"
    assert "/var/lib/containerd" not in ok.stdout
    # The runtime on n2 now runs on systemd cgroups; the cluster's kubelets use cgroupfs.
    story.sh(
        n2.name,
        "mkdir -p /etc/containerd && containerd config default | "
        "sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml && "
        "systemctl restart containerd.service",
    )
    scan = Scan.take(lab, n2.name)
    proc = story.sealos("join", "--node", n2.ip)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert (
        f"{n2.ip}: its container runtime uses the systemd cgroup driver but the cluster's "
        "kubelets use cgroupfs (as recorded when the cluster was installed)"
    ) in proc.stdout, proc.stdout
    assert scan.changes() == []  # refused before any change: the runtime was there already
    story.sh(n2.name, "rm /etc/containerd/config.toml && systemctl restart containerd.service")
    again = story.sealos("join", "--node", n2.ip)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    done = story.sealos("clean", "--all", "-y")
    assert done.returncode == 0, done.stdout + done.stderr
