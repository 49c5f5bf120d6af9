"""Acceptance 2 of the lab (CLI part): `sealos-lab up --vm --hosts 2` gives two QEMU VM hosts with
Debian's kernel: SSH by password and key works, IPVS works inside, and `down` removes it all."""

from __future__ import annotations

import os

import pytest

from sealos_lab import lab as labmod
from sealos_lab.testing import leftovers, recorded_pids
from sealos_lab.testing import run_cli as cli

pytestmark = [pytest.mark.root, pytest.mark.lab, pytest.mark.vm]

NAME = "it-vmhosts"


@pytest.fixture(scope="module")
def vmlab():
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    cli("down", "--name", NAME, timeout=120)
    try:
        proc = cli("up", "--vm", "--hosts", "2", "--name", NAME, timeout=900)
        assert proc.returncode == 0, proc.stderr
        yield labmod.Lab.load(NAME)
    finally:
        cli("down", "--name", NAME, timeout=120)


def test_ssh_by_password_and_key(vmlab):
    env = {**os.environ, "SSHPASS": vmlab.password}
    known = [
        "-o",
        f"UserKnownHostsFile={vmlab.known_hosts_path}",
        "-o",
        "StrictHostKeyChecking=yes",
    ]
    for h in vmlab.hosts:
        assert h.kind == "vm"
        by_pw = cli(
            "run", "--name", NAME, "--", "sshpass", "-e", "ssh", *known,
            "-o", "PubkeyAuthentication=no", f"root@{h.ip}", "hostname",
            env=env,
        )  # fmt: skip
        assert by_pw.returncode == 0, by_pw.stderr
        assert by_pw.stdout.strip() == h.hostname
        by_key = cli(
            "run", "--name", NAME, "--", "ssh", "-F", str(vmlab.ssh_config_path), h.name, "id -u"
        )
        assert by_key.returncode == 0, by_key.stderr
        assert by_key.stdout.strip() == "0"


def test_ipvs_works_inside(vmlab):
    for h in vmlab.hosts:
        proc = cli(
            "exec", "--name", NAME, h.name, "--", "sh", "-c",
            "modprobe ip_vs && ipvsadm -A -t 10.0.0.1:80 -s rr && ipvsadm -Ln",
            timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "IP Virtual Server version" in proc.stdout
        assert "10.0.0.1:80 rr" in proc.stdout


def test_hosts_are_isolated(vmlab):
    for h in vmlab.hosts:
        routes = vmlab.exec(h.name, ["ip", "route", "show"]).stdout
        assert "default" not in routes and "10.250." in routes
        get = vmlab.exec(h.name, ["ip", "route", "get", "192.0.2.1"])
        assert get.returncode != 0 and "unreachable" in get.stderr.lower()


def test_down_removes_the_vms(vmlab):
    pids = recorded_pids(NAME)
    assert len(pids) == 2
    proc = cli("down", "--name", NAME, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert leftovers(NAME, pids) == []


def test_vm_run_returns_output_and_exit_code_of_an_ipvs_command(tmp_path):
    (tmp_path / "note.txt").write_text("from the host\n")
    script = "cat /mnt/share/note.txt; ipvsadm -A -t 10.0.0.2:443 -s rr && ipvsadm -Ln; exit 5"
    proc = cli("vm-run", str(tmp_path), "--", "sh", "-c", script, timeout=300)
    assert proc.returncode == 5, proc.stderr
    assert "from the host" in proc.stdout
    assert "10.0.0.2:443 rr" in proc.stdout
