"""Issue 11 (sudo users) on the lab: hosts whose sshd refuses root (PermitRootLogin no) and a
user with password sudo (Debian's sudo, its `sudo` group). `sealos --user admin` inits 2 masters
+ 2 nodes, joins a fifth host, cleans it, cleans all; every command ran as root through
`sudo -S`, and the password never showed in any host's /proc/*/cmdline meanwhile. A wrong sudo
password is refused in one sentence naming the host, before any change.

Observers: sshd -T (root login off), kubectl on the master, nftables on the nodes, files owned by
root on the hosts, the hosts' inventories from before init (tests/sealos_scan.py).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from sealos_lab.lab import Lab
from sealos_lab.state import HostSpec
from sealos_lab.testing import CmdlineWatch, host_sh, lab_session, make_sudo_user, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sealos_scan import Scan

pytestmark = [pytest.mark.root, pytest.mark.lab]

VERSION = "v1.20.15"
USER = "admin"
PASSWORD = "Su-do-pa55-8k"  # the user's SSH and sudo password
VIP = "10.103.97.2"


def sealos(lab: Lab, home: Path, *args: str, sudo_password: str | None = None):
    """`sealos ARGS` on the operator side with the user's password (SSH and sudo) in
    SEALOS_PASSWORD; init names --user, join and clean take it from the state."""
    env = {"PATH": os.environ["PATH"], "SEALOS_HOME": str(home), "SEALOS_PASSWORD": PASSWORD}
    if sudo_password is not None:
        env["SEALOS_SUDO_PASSWORD"] = sudo_password
    return lab.run([sys.executable, "-m", "sealos", *args], env=env, timeout=900)


def ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout


def nodes(lab: Lab, master: str) -> dict[str, str]:
    out = host_sh(lab, master, "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes")
    return {r[0]: r[1] for r in (line.split() for line in out.splitlines()[1:]) if r}


# What the user's logins and sudo leave, whoever logs in (not sealos's, not for clean to remove):
# journald's per-user journal and the marker Debian's sudo writes after the first successful use.
LOGIN_TRACES = re.compile(
    rf"/var/log/journal/.*/user-\d+(@.*)?\.journal|/home/{USER}/\.sudo_as_admin_successful$"
)


def outside_login_traces(changes: list[str]) -> list[str]:
    """Changes on a host, but the user's login traces (LOGIN_TRACES)."""
    return [c for c in changes if not LOGIN_TRACES.search(c)]


def all_ready(table: dict[str, str]) -> dict[str, str]:
    return table if table and set(table.values()) == {"Ready"} else {}


def test_sudo_user_inits_joins_and_cleans_without_root_login(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    from sealos_lab.package import build

    package = build(VERSION, tmp_path / f"kube{VERSION[1:]}.tar.gz")
    home = tmp_path / "home"
    specs = {f"h{i}": HostSpec(sudo=True) for i in range(1, 6)}
    with lab_session("susudo", hosts=5, specs=specs) as lab:
        h = lab.hosts
        for x in h:
            make_sudo_user(lab, x.name, USER, PASSWORD)
            assert "permitrootlogin no" in host_sh(lab, x.name, "sshd -T"), x.name
        scans = {x.name: Scan.take(lab, x.name) for x in h[:4]}
        init = ["init", "--master", h[0].ip, "--master", h[1].ip, "--node", h[2].ip,
                "--node", h[3].ip, "--version", VERSION, "--pkg", str(package),
                "--vip", VIP, "--user", USER]  # fmt: skip

        # A wrong sudo password: one sentence naming the host and the fix, nothing changed.
        proc = sealos(lab, home, *init, sudo_password="not-the-password")
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        out = proc.stdout + proc.stderr
        assert f"{h[0].ip}: sudo refused the password for 'admin'" in out, out[-3000:]
        assert "SEALOS_SUDO_PASSWORD" in out and "not-the-password" not in out
        for x in h[:4]:
            assert outside_login_traces(scans[x.name].changes()) == [], x.name

        with CmdlineWatch(lab, [PASSWORD], r"^sudo -k -S ") as watch:
            ok(sealos(lab, home, *init))
            state = (home / "config.yaml").read_text()
            assert PASSWORD not in state and f"user: {USER}" in state, state
            assert wait_until(lambda: all_ready(nodes(lab, h[0].name)), 60), nodes(lab, h[0].name)
            assert set(nodes(lab, h[0].name)) == {x.hostname for x in h[:4]}
            for node in h[2:4]:
                ruleset = host_sh(lab, node.name, "nft list table ip lvscare")
                assert VIP in ruleset, ruleset
                assert set(re.findall(r"(\d+\.\d+\.\d+\.\d+) \. 6443", ruleset)) == {
                    x.ip for x in h[:2]
                }, ruleset
            # files sealos put there are root's, written through sudo (not the login user's)
            paths = f"/usr/bin/kubelet /root/{package.name} /etc/systemd/system/lvscare.service"
            owners = host_sh(lab, h[2].name, f"stat -c '%U %a %n' {paths}")
            assert [line.split()[0] for line in owners.splitlines()] == ["root"] * 3, owners
            assert not host_sh(
                lab, h[2].name, f"ls -A /home/{USER}/.sealos-staging 2>/dev/null || true"
            )

            ok(sealos(lab, home, "join", "--node", h[4].ip))
            assert wait_until(lambda: all_ready(nodes(lab, h[0].name)), 60)
            assert h[4].hostname in nodes(lab, h[0].name)
            ok(sealos(lab, home, "clean", "--node", h[4].ip, "-y"))
            assert h[4].hostname not in nodes(lab, h[0].name)
            assert "kubelet" not in host_sh(lab, h[4].name, "ls /usr/bin")

            ok(sealos(lab, home, "clean", "--all", "-y"))
        assert watch.seen > 0, "no sudo'd command was seen: the watch proves nothing"
        assert watch.leaks == [], watch.leaks[:3]
        for x in h[:4]:
            left = outside_login_traces(scans[x.name].leftovers())
            assert left == [], (x.name, left)
        logs = "".join(p.read_text() for p in (home / "logs").glob("*.log"))
        assert PASSWORD not in logs and "sudo" in logs

        # Passwordless sudo (NOPASSWD) is detected and gets no password: a wrong one, given,
        # is never used (the dry run connects, checks sudo and gathers facts through it).
        for x in h[:4]:
            rule = f"{USER} ALL=(ALL:ALL) NOPASSWD: ALL"
            host_sh(
                lab, x.name, f"echo '{rule}' > /etc/sudoers.d/su && chmod 440 /etc/sudoers.d/su"
            )
        ok(sealos(lab, home, *init, "--dry-run", sudo_password="not-the-password"))
        dry = max((home / "logs").glob("init-*.log"), key=lambda p: p.stat().st_mtime).read_text()
        assert "passwordless sudo" in dry and "sudo -k -S" not in dry, dry[-2000:]
