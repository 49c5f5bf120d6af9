"""`sealos-lab` commands that need no root: the package builder behind `sealos-lab package`,
and help that lists every command."""

from __future__ import annotations

import tarfile

from sealos_lab.testing import run_cli


def test_package_builds_the_offline_package(tmp_path):
    out = tmp_path / "kube1.14.1.tar.gz"
    proc = run_cli("package", "--version", "v1.14.1", "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"kube/bin/kubeadm", "kube/bin/kubelet", "kube/bin/kubectl"} <= names
    assert "kube/shell/init.sh" in names


def test_package_without_version_is_one_clear_error():
    proc = run_cli("package", timeout=60)
    assert proc.returncode != 0
    assert "--version" in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_every_command():
    proc = run_cli("--help", timeout=60)
    assert proc.returncode == 0
    for command in ("up", "down", "status", "exec", "shell", "run", "vm-run", "package"):
        assert f"  {command} " in proc.stdout
