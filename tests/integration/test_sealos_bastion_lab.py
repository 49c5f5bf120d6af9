"""Issue 11 (jump hosts) on the lab: the targets accept SSH only from a bastion host (nftables on
each target drops tcp/22 from anyone else), and sealos reaches them through `--bastion`.

One 4-host lab tells one story (each test needs the ones before it): h1 is the bastion, h2 the
master, h3 and h4 nodes. Direct SSH to a target fails (the lab proves its point); a bastion
that is unreachable, refuses the login, cannot reach a target, or shows a key other than the one
~/.ssh/known_hosts lists (strict policy) each stop the run with one sentence naming it; init
1 master + 1 node through the bastion (node Ready, its VIP rule), the bastion recorded and its
key pinned; join of h4 and clean --all use the recorded bastion without the flag.

The operator's HOME is a fresh folder: ~/.ssh/known_hosts is the test's own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from sealos_lab.lab import Lab
from sealos_lab.testing import host_sh, lab_session, wait_until

pytestmark = [pytest.mark.root, pytest.mark.lab]

VERSION = "v1.20.15"
ONLY_FROM_BASTION = """table inet bhonly {{
    chain input {{
        type filter hook input priority 0; policy accept;
        tcp dport 22 ip saddr != {bastion} drop
    }}
}}
"""


@dataclass
class Story:
    lab: Lab
    home: Path  # SEALOS_HOME
    user_home: Path  # HOME: its .ssh/known_hosts is the operator's
    package: Path
    passed: set[str] = field(default_factory=set)

    @property
    def bastion(self):
        return self.lab.hosts[0]

    def need(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.passed]
        if missing:
            pytest.fail(f"needs the earlier step(s) {', '.join(missing)} of this story to pass")

    def sealos(self, *args: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.user_home),
            "SEALOS_HOME": str(self.home),
            "SEALOS_PASSWORD": self.lab.password,
            **extra,
        }
        return self.lab.run([sys.executable, "-m", "sealos", *args], env=env, timeout=timeout)

    def sh(self, host: str, script: str) -> str:
        return host_sh(self.lab, host, script, timeout=60)

    def nodes(self, master: str) -> dict[str, str]:
        out = self.sh(master, "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes")
        return {r[0]: r[1] for r in (line.split() for line in out.splitlines()[1:]) if r}

    def balanced_over(self, node: str) -> set[str]:
        ruleset = self.sh(node, "nft list table ip lvscare 2>/dev/null || true")
        return set(re.findall(r"(\d+\.\d+\.\d+\.\d+) \. 6443", ruleset))

    def state(self) -> dict:
        return yaml.safe_load((self.home / "config.yaml").read_text())


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout


def refused(proc: subprocess.CompletedProcess) -> str:
    """The output of a run that must have failed cleanly (no traceback)."""
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    return " ".join(out.split())  # the rich UI may wrap long lines


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> Iterator[Story]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    from sealos_lab.package import build

    folder = tmp_path_factory.mktemp("bastion")
    package = build(VERSION, folder / f"kube{VERSION[1:]}.tar.gz")
    user_home = folder / "operator"
    (user_home / ".ssh").mkdir(parents=True)
    with lab_session("bhjump", hosts=4) as lab:
        rules = ONLY_FROM_BASTION.format(bastion=lab.hosts[0].ip)
        for target in lab.hosts[1:]:
            proc = lab.exec(target.name, ["nft", "-f", "-"], input=rules, timeout=60)
            assert proc.returncode == 0, proc.stderr
        yield Story(lab, folder / "home", user_home, package)


def test_targets_take_ssh_only_from_the_bastion(story):
    """The lab's point: sealos cannot reach a target directly, the bastion can."""
    h = story.lab.hosts
    out = refused(
        story.sealos("init", "--master", h[1].ip, "--node", h[2].ip, "--version", VERSION,
                     "--pkg", str(story.package), "--connect-timeout", "3", "--dry-run")
    )  # fmt: skip
    assert f"{h[1].ip}: no answer on port 22 within 3 s" in out, out
    banner = story.sh(
        h[0].name,
        f'python3 -c \'import socket; print(socket.create_connection(("{h[1].ip}", 22), 5)'
        ".recv(64).decode())'",
    )
    assert banner.startswith("SSH-2.0-"), banner
    assert not (story.home / "config.yaml").exists()
    story.passed.add("lab")


def test_bastion_failures_are_one_sentence_naming_it(story):
    """A bastion that does not answer, that refuses the login, that cannot reach a target, or
    whose key is not the one known_hosts lists (strict): each stops the run, naming the bastion
    or the target, and nothing is recorded."""
    story.need("lab")
    h, lab = story.lab.hosts, story.lab
    hosts = ["--master", h[1].ip, "--version", VERSION, "--pkg", str(story.package), "--dry-run"]
    base = h[0].ip.rsplit(".", 1)[0]
    nobody = f"{base}.250"  # in the lab's subnet, no host there

    out = refused(story.sealos("init", *hosts, "--bastion", nobody, "--connect-timeout", "3"))
    assert re.search(rf"bastion {re.escape(nobody)}: (no answer on port 22|cannot connect)", out)

    out = refused(
        story.sealos("init", *hosts, "--bastion", h[0].ip, SEALOS_BASTION_PASSWORD="not-it")
    )
    assert (
        f"bastion {h[0].ip}: the password for 'root' was refused; set SEALOS_BASTION_PASSWORD"
        in out
    ), out

    out = refused(
        story.sealos("init", "--master", h[1].ip, "--node", nobody, "--version", VERSION,
                     "--pkg", str(story.package), "--dry-run", "--bastion", h[0].ip,
                     "--connect-timeout", "3")
    )  # fmt: skip
    assert re.search(
        rf"{re.escape(nobody)}: the bastion {re.escape(h[0].ip)} (got no answer from port 22|"
        "cannot reach port 22)",
        out,
    ), out
    assert f"{h[1].ip}: ok - connected ({h[1].ip})" in out, out  # the master was reached

    # Strict: known_hosts lists another key (h2's) for the bastion's address.
    listed = lab.known_hosts_path.read_text().splitlines()
    other = [line.split(None, 1)[1] for line in listed if line.startswith(f"{h[1].ip} ")]
    known = story.user_home / ".ssh/known_hosts"
    known.write_text("".join(f"{h[0].ip} {k}\n" for k in other))
    try:
        out = refused(
            story.sealos("init", *hosts, "--bastion", h[0].ip, "--host-key-policy", "strict")
        )
    finally:
        known.unlink()
    assert f"bastion {h[0].ip}: its SSH host key SHA256:" in out, out
    assert "is not the one ~/.ssh/known_hosts" in out, out
    assert "nothing was sent" in out
    assert not (story.home / "config.yaml").exists()
    story.passed.add("failures")


def test_init_through_the_bastion(story):
    """1 master + 1 node through --bastion: node Ready, its VIP rule over the master; the state
    records the bastion and pins its key (the one the bastion has)."""
    story.need("lab")
    h = story.lab.hosts
    ok(story.sealos("init", "--master", h[1].ip, "--node", h[2].ip, "--version", VERSION,
                    "--pkg", str(story.package), "--bastion", f"root@{h[0].ip}"))  # fmt: skip
    table = wait_until(
        lambda: (t := story.nodes(h[1].name)) and set(t.values()) == {"Ready"} and t, 30
    )
    assert table and sorted(table) == sorted(x.hostname for x in h[1:3]), story.nodes(h[1].name)
    assert wait_until(lambda: story.balanced_over(h[2].name) == {h[1].ip}, 15)
    state = story.state()
    assert state["settings"]["bastion"] == f"root@{h[0].ip}"
    pinned = state["hostKeys"][f"{h[0].ip}:22"].split()[1]
    assert pinned in story.sh(h[0].name, "cat /etc/ssh/ssh_host_*_key.pub")
    assert story.lab.password not in (story.home / "config.yaml").read_text()
    story.passed.add("init")


def test_join_uses_the_recorded_bastion(story):
    story.need("init")
    h = story.lab.hosts
    ok(story.sealos("join", "--node", h[3].ip))
    table = wait_until(
        lambda: (t := story.nodes(h[1].name)) and len(t) == 3 and set(t.values()) == {"Ready"}, 30
    )
    assert table, story.nodes(h[1].name)
    assert wait_until(lambda: story.balanced_over(h[3].name) == {h[1].ip}, 15)
    assert story.state()["settings"]["bastion"] == f"root@{h[0].ip}"
    story.passed.add("join")


def test_clean_uses_the_recorded_bastion(story):
    story.need("join")
    h = story.lab.hosts
    ok(story.sealos("clean", "--all", "-y"))
    for target in h[1:]:
        left = story.sh(
            target.name,
            "ls /etc/kubernetes /usr/bin/kubeadm 2>/dev/null; nft list table ip lvscare 2>&1 "
            "| grep -c 6443 || true",
        )
        assert left.strip() == "0", (target.name, left)
    assert not (story.home / "config.yaml").exists()
    # Our own firewall on the targets is not sealos's: it is still there.
    assert "bhonly" in story.sh(h[1].name, "nft list tables")
