"""Acceptance 1 of the lab: `sealos-lab up --hosts 4` gives four real, isolated SSH hosts, and
`sealos-lab down` leaves nothing behind. Driven through the CLI in subprocesses, like a user."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from sealos_lab import lab as labmod
from sealos_lab.paths import lab_dir
from sealos_lab.testing import lab_session, leftovers, recorded_pids, run_cli

pytestmark = [pytest.mark.root, pytest.mark.lab]

NAME = "it-hosts"
HOSTS = ["h1", "h2", "h3", "h4"]


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_cli(*args, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def lab4():
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    cli("down", "--name", NAME)
    try:
        proc = cli("up", "--hosts", "4", "--name", NAME)
        assert proc.returncode == 0, proc.stderr
        yield labmod.Lab.load(NAME), proc.stdout
    finally:
        cli("down", "--name", NAME)


def test_up_prints_every_host_and_how_to_reach_it(lab4):
    lab, out = lab4
    for h in lab.hosts:
        assert h.ip in out and h.hostname in out
    assert "sealos-lab password --name it-hosts" in out
    assert lab.password not in out


def test_ssh_by_password_and_by_key_to_every_host(lab4):
    lab, _ = lab4
    assert [h.name for h in lab.hosts] == HOSTS
    # The password travels in the environment (sshpass -e), never on a command line.
    env = {**os.environ, "SSHPASS": lab.password}
    common = ["-o", f"UserKnownHostsFile={lab.known_hosts_path}", "-o", "StrictHostKeyChecking=yes"]
    for h in lab.hosts:
        by_pw = cli(
            "run", "--name", NAME, "--", "sshpass", "-e", "ssh", *common,
            "-o", "PubkeyAuthentication=no", f"root@{h.ip}", "hostname",
            env=env,
        )  # fmt: skip
        assert by_pw.returncode == 0, by_pw.stderr
        assert by_pw.stdout.strip() == h.hostname
        by_key = cli(
            "run", "--name", NAME, "--", "ssh", *common, "-o", "BatchMode=yes",
            "-o", "PasswordAuthentication=no", "-i", str(lab.key_path), f"root@{h.ip}", "id -u",
        )  # fmt: skip
        assert by_key.returncode == 0, by_key.stderr
        assert by_key.stdout.strip() == "0"


def test_wrong_password_is_refused(lab4):
    lab, _ = lab4
    env = {**os.environ, "SSHPASS": lab.password + "x"}
    proc = cli(
        "run", "--name", NAME, "--", "sshpass", "-e", "ssh",
        "-o", f"UserKnownHostsFile={lab.known_hosts_path}", "-o", "PubkeyAuthentication=no",
        f"root@{lab.hosts[0].ip}", "true",
        env=env,
    )  # fmt: skip
    assert proc.returncode != 0


def test_hosts_have_their_own_files_hostnames_and_host_keys(lab4):
    lab, _ = lab4
    marker = "10.250.250.250 lab-isolation-marker"
    w = cli("exec", "--name", NAME, "h1", "--", "sh", "-c", f"echo '{marker}' >> /etc/hosts")
    assert w.returncode == 0, w.stderr
    assert marker in lab.exec("h1", ["cat", "/etc/hosts"]).stdout
    for other in HOSTS[1:]:
        assert marker not in lab.exec(other, ["cat", "/etc/hosts"]).stdout
    assert marker not in (Path("/var/cache/sealos-lab/rootfs/etc/hosts").read_text())

    hostnames = [lab.exec(h, ["hostname"]).stdout.strip() for h in HOSTS]
    assert len(set(hostnames)) == 4, hostnames
    keys = [
        lab.exec(h, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()[1] for h in HOSTS
    ]
    assert len(set(keys)) == 4


def test_hosts_run_real_systemd(lab4):
    lab, _ = lab4
    for h in HOSTS:
        # Every boot unit started: hosts sharing one cgroup used to fail some (219/CGROUP).
        failed = lab.exec(h, ["systemctl", "--failed", "--no-legend", "--plain"]).stdout
        state = lab.exec(h, ["systemctl", "is-system-running"]).stdout.strip()
        assert state == "running" and failed == "", (h, state, failed)
        assert lab.exec(h, ["systemctl", "is-active", "ssh"]).stdout.strip() == "active"
        # Each host's systemd keeps its units in a cgroup of its own.
        init = labmod.nspawn.init_pid(lab.host(h).pid)
        own = f"/sealos-lab/{lab.host(h).machine}/payload/init.scope"
        assert f"name=systemd:{own}" in Path(f"/proc/{init}/cgroup").read_text(), h
    # A user's own service starts like on a real host.
    unit = "[Service]\nExecStart=/bin/sleep 300\n"
    written = lab.exec("h2", ["sh", "-c", "cat > /etc/systemd/system/labprobe.service"], input=unit)
    assert written.returncode == 0, written.stderr
    assert lab.exec("h2", ["cat", "/etc/systemd/system/labprobe.service"]).stdout == unit
    on = lab.exec("h2", ["systemctl", "start", "labprobe"])
    assert on.returncode == 0, on.stderr
    assert lab.exec("h2", ["systemctl", "is-active", "labprobe"]).stdout.strip() == "active"
    assert lab.exec("h3", ["systemctl", "is-active", "labprobe"]).stdout.strip() != "active"


def test_exec_returns_the_exit_code(lab4):
    proc = cli("exec", "--name", NAME, "h3", "--", "sh", "-c", "hostname; exit 7")
    assert proc.returncode == 7
    assert proc.stdout.strip() == f"{NAME}-h3"


def test_nothing_outside_the_lab_is_reachable(lab4):
    lab, _ = lab4
    for h in HOSTS:
        routes = lab.exec(h, ["ip", "route", "show"]).stdout
        assert "default" not in routes, (h, routes)
        # A route lookup only: no packet is sent. TEST-NET-1 is never a real address.
        get = lab.exec(h, ["ip", "route", "get", "192.0.2.1"])
        assert get.returncode != 0 and "unreachable" in get.stderr.lower(), (h, get)
    connect = lab.exec(
        "h1",
        ["python3", "-c", "import socket; socket.create_connection(('192.0.2.1', 80), timeout=2)"],
        timeout=10,
    )
    assert "Network is unreachable" in connect.stderr
    op = lab.run(["ip", "route", "get", "192.0.2.1"])
    assert op.returncode != 0 and "unreachable" in op.stderr.lower()
    # The hosts do reach each other.
    peer = lab.exec("h4", ["bash", "-c", f"exec 3<>/dev/tcp/{lab.hosts[0].ip}/22 && head -c 4 <&3"])
    assert peer.stdout == "SSH-"


def test_set_hostname_allows_duplicates(lab4):
    lab, _ = lab4
    lab.set_hostname("h3", "twin")
    lab.set_hostname("h4", "twin")
    assert lab.exec("h3", ["hostname"]).stdout.strip() == "twin"
    assert lab.exec("h4", ["cat", "/etc/hostname"]).stdout.strip() == "twin"
    assert [h.hostname for h in labmod.Lab.load(NAME).hosts][2:] == ["twin", "twin"]


def test_up_again_keeps_the_running_lab(lab4):
    before = recorded_pids(NAME)
    again = cli("up", "--hosts", "4", "--name", NAME)
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stdout
    assert recorded_pids(NAME) == before


def test_stopped_host_keeps_its_files_and_up_starts_it_again(lab4):
    lab, _ = lab4
    assert lab.exec("h2", ["sh", "-c", "echo kept > /root/kept.txt"]).returncode == 0
    lab.stop_host("h2")
    assert not labmod.Lab.load(NAME).is_running("h2")
    refused = cli("exec", "--name", NAME, "h2", "--", "true")
    assert refused.returncode != 0 and "h2" in refused.stderr and "not running" in refused.stderr
    status = cli("status", "--name", NAME).stdout
    assert any(line.split()[:1] == ["h2"] and " no " in line for line in status.splitlines())
    again = cli("up", "--hosts", "4", "--name", NAME)
    assert again.returncode == 0, again.stderr
    assert "already up" not in again.stdout
    lab = labmod.Lab.load(NAME)
    assert lab.exec("h2", ["cat", "/root/kept.txt"]).stdout.strip() == "kept"
    assert lab.exec("h2", ["systemctl", "is-active", "ssh"]).stdout.strip() == "active"


def test_down_leaves_nothing_behind():
    name = "it-down"
    cli("down", "--name", name)
    # Two hosts with the same hostname (what duplicate-hostname checks need) via `up --hostname`.
    up = cli("up", "--hosts", "2", "--name", name, "--hostname", "h1=twin", "--hostname", "h2=twin")
    assert up.returncode == 0, up.stderr
    lab = labmod.Lab.load(name)
    assert [lab.exec(h, ["hostname"]).stdout.strip() for h in ("h1", "h2")] == ["twin", "twin"]
    pids = recorded_pids(name)
    present = leftovers(name, pids)  # the check sees a lab that is up
    assert {x.split()[0] for x in present} == {"namespace", "process", "cgroup", "folder"}
    assert cli("down", "--name", name).returncode == 0
    assert leftovers(name, pids) == []


def test_down_after_a_crash_with_lost_state():
    name = "it-crash"
    labmod.down(name)
    try:
        lab = labmod.up(name, hosts=2)
        pids = recorded_pids(name)
        init = labmod.nspawn.init_pid(lab.hosts[0].pid)
        pids.append((init, labmod.nspawn.start_time(init)))
        # A crash: the nspawn process of h1 dies without shutting its container down, and the
        # state file is lost. down must still find and remove everything.
        os.kill(lab.hosts[0].pid, signal.SIGKILL)
        (lab_dir(name) / "state.json").unlink()
        proc = cli("down", "--name", name)
        assert proc.returncode == 0, proc.stderr
        # The orphaned container's systemd is gone too.
        assert leftovers(name, pids) == []
    finally:
        labmod.down(name)


def test_a_chosen_password_with_special_characters_works():
    tricky = " p@$$ w'o\"rd`!;# "
    with lab_session("it-passwd", hosts=1, password=tricky) as lab:
        assert lab.password == tricky
        env = {**os.environ, "SSHPASS": tricky}
        proc = lab.run(lab.ssh_argv("h1", ["id", "-un"], password=True), env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "root"


def test_bad_input_is_one_clear_line():
    proc = cli("exec", "--name", "no-such-lab", "h1", "--", "true")
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0
    assert "no lab named 'no-such-lab'" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("up", "--hosts", "0", "--name", "it-bad")
    assert proc.returncode != 0 and "--hosts 0" in proc.stderr
