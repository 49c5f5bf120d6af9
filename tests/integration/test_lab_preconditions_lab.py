"""The stand-in kubeadm's preflight and the stand-in kubelet, run by hand on a real lab host
(Debian's containerd running on cgroupfs, conntrack, iptables) with one precondition broken at a
time: the wording and exit code are kubeadm's and the kubelet's. Independent observers:
systemctl, `containerd config dump`."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealos_lab.lab import Lab
from sealos_lab.package import build
from sealos_lab.testing import lab_session

VERSION = "v1.28.15"
HOST = "h1"
DRY_INIT = "kubeadm init --dry-run --kubernetes-version " + VERSION


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    package = build(VERSION, tmp_path_factory.mktemp("precond") / "kube.tar.gz")
    with lab_session("pre-cond", hosts=1) as lab:
        data = base64.b64encode(Path(package).read_bytes()).decode()
        sh(lab, "base64 -d > /root/kube.tar.gz && tar -C /root -xzf /root/kube.tar.gz", data)
        prepared = sh(lab, "cd /root/kube/shell && sh init.sh")
        assert "imported into containerd" in prepared.stdout, prepared.stdout + prepared.stderr
        yield lab


def sh(lab: Lab, script: str, stdin: str | None = None, check: bool = True):
    result = lab.exec(HOST, ["sh", "-c", script], input=stdin, timeout=120)
    if check:
        assert result.returncode == 0, f"{script}: {result.stdout}{result.stderr}"
    return result


def test_a_prepared_host_passes_preflight(lab: Lab) -> None:
    assert sh(lab, "systemctl is-active containerd").stdout.strip() == "active"
    passed = sh(lab, DRY_INIT, check=False)
    assert passed.returncode == 0, passed.stderr
    assert "[ERROR" not in passed.stderr


def test_preflight_without_conntrack(lab: Lab) -> None:
    sh(lab, "mv /usr/sbin/conntrack /root/conntrack.away")
    try:
        failed = sh(lab, DRY_INIT, check=False)
    finally:
        sh(lab, "mv /root/conntrack.away /usr/sbin/conntrack")
    assert failed.returncode == 1
    assert "[ERROR FileExisting-conntrack]: conntrack not found in system path" in failed.stderr
    assert "[preflight] Some fatal errors occurred" in failed.stderr


KUBELET_CONFIG = """apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: {driver}
"""
KUBELET = (
    "kubelet --config=/root/kubelet-{driver}.yaml "
    "--container-runtime-endpoint=unix:///run/containerd/containerd.sock"
)


def run_kubelet(lab: Lab, driver: str):
    sh(lab, f"cat > /root/kubelet-{driver}.yaml", KUBELET_CONFIG.format(driver=driver))
    return sh(lab, f"timeout 20 {KUBELET.format(driver=driver)}", check=False)


def test_containerd_stopped(lab: Lab) -> None:
    sh(lab, "systemctl stop containerd")
    try:
        failed = sh(lab, DRY_INIT, check=False)
        kubelet = run_kubelet(lab, "cgroupfs")
    finally:
        sh(lab, "systemctl start containerd")
    assert failed.returncode == 1
    assert "[ERROR CRI]: container runtime is not running: output: " in failed.stderr
    assert "dial unix /var/run/containerd/containerd.sock: connect:" in failed.stderr
    assert kubelet.returncode == 1
    assert (
        '"command failed" err="failed to run Kubelet: validate service connection: validate CRI '
        'v1 runtime API for endpoint "unix:///run/containerd/containerd.sock"' in kubelet.stderr
    ), kubelet.stderr


def test_kubelet_on_systemd_over_a_cgroupfs_containerd(lab: Lab) -> None:
    assert "SystemdCgroup = false" in sh(lab, "containerd config dump").stdout
    refused = run_kubelet(lab, "systemd")  # what kubeadm 1.28 renders by default
    assert refused.returncode == 1
    assert (
        'misconfiguration: kubelet cgroup driver: "systemd" is different from the containerd '
        'cgroup driver: "cgroupfs"' in refused.stderr
    ), refused.stderr
    matching = run_kubelet(lab, "cgroupfs")
    assert "misconfiguration" not in matching.stderr
    # it got past its start-up checks: it now wants the kubeconfig kubeadm would write
    assert "unable to load bootstrap kubeconfig" in matching.stderr, matching.stderr
