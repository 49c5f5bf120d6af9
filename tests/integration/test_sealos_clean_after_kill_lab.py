"""`sealos clean --all` after an `init` killed in the middle (issue 5, acceptance 4): whatever
point init reached, clean brings every host back to its inventory from before init.

The sealos process is killed (SIGKILL, by PID) when its output shows the step; the remote
command it was running is left to end or die on its own, as after a lost operator session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealos import remote_paths as rp
from sealos_lab.lab import Lab
from sealos_lab.testing import lab_session, mtime, running, unfinished_at, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sealos_scan import Scan

pytestmark = [pytest.mark.root, pytest.mark.lab]

VERSION = "v1.20.15"

PACKAGE = "package"  # KillPoint.program for "the package file is on the host", not a process


@dataclass(frozen=True)
class KillPoint:
    """Where init is killed, proven from the hosts: once `trigger` shows in init's output, wait
    until the step runs on `hosts` (a process `program` in the host's /proc, or for PACKAGE the
    package file in place), then SIGKILL; the step had not finished there at the kill: `marker`,
    which the step's remote command writes at its end, is absent or newer than the kill."""

    name: str
    trigger: str
    program: tuple[str, ...]
    marker: str
    hosts: tuple[int, ...] = ()  # lab host indexes; () = the host named on the trigger line


KILL_POINTS = [
    KillPoint("after-distribute", "==> Unpack the package and run init.sh", (PACKAGE,),
              rp.MARK_PACKAGE, (0, 1, 2)),
    KillPoint("during-init-sh", ": running init.sh", ("sh", "init.sh"), rp.MARK_PACKAGE),
    KillPoint("during-kubeadm-init", ": kubeadm init (takes a while)", ("kubeadm", "init"),
              rp.MARK_INIT, (0,)),
    KillPoint("during-master-join", ": kubeadm join as a control plane", ("kubeadm", "join"),
              rp.MARK_JOIN, (1,)),
    KillPoint("during-node-join", ": kubeadm join 10.103.97.2:6443", ("kubeadm", "join"),
              rp.MARK_JOIN, (2,)),
]  # fmt: skip


@dataclass
class KillLab:
    lab: Lab
    package: Path
    scans: dict[str, Scan]


@pytest.fixture(scope="module")
def kill_lab(tmp_path_factory) -> Iterator[KillLab]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    from sealos_lab.package import build

    folder = tmp_path_factory.mktemp("killpkg")
    package = build(VERSION, folder / f"kube{VERSION[1:]}.tar.gz")
    with lab_session("jckill", hosts=3) as lab:
        yield KillLab(lab, package, {h.name: Scan.take(lab, h.name) for h in lab.hosts})


def _env(lab: Lab, home: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "SEALOS_HOME": str(home), "SEALOS_PASSWORD": lab.password}


def init_killed_at(kill_lab: KillLab, home: Path, point: KillPoint) -> list[str]:
    """Start init on the lab (2 masters + 1 node), SIGKILL it at `point` (see KillPoint); fail
    saying so when the point was missed."""
    lab, h = kill_lab.lab, kill_lab.lab.hosts
    args = ["--master", h[0].ip, "--master", h[1].ip, "--node", h[2].ip,
            "--version", VERSION, "--pkg", str(kill_lab.package)]  # fmt: skip
    runner = subprocess.Popen(
        lab.run_argv([sys.executable, "-m", "sealos", "init", *args]),
        env=_env(lab, home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    started: list[str] = []
    try:
        assert runner.stdout is not None
        for line in runner.stdout:
            seen.append(line)
            if point.trigger in line:
                break
        assert any(point.trigger in line for line in seen), "".join(seen)
        by_ip = {x.ip: x.name for x in h}
        named = seen[-1].split(":")[0].strip()
        hosts = [h[i].name for i in point.hosts] or [by_ip[named]]
        started = wait_until(lambda: step_started(kill_lab, hosts, point, runner), 120, 0.05)
    finally:
        killed_at = time.time()
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(10)
    if not started:
        pytest.fail(f"kill point {point.name} missed: {point.program} never seen on {hosts}")
    late = [why for x in hosts if (why := unfinished_at(lab, x, point.marker, killed_at))]
    if late:
        pytest.fail(f"kill point {point.name} missed, the step had finished: {late}")
    assert (home / "config.yaml").exists(), "init saves the state before changing hosts"
    return seen


def step_started(kill_lab: KillLab, hosts: list[str], point: KillPoint, runner) -> list[str]:
    """What shows the step running on every host of `hosts` (empty while one has not started)."""
    assert runner.poll() is None, f"init ended (rc {runner.returncode}) before {point.name}"
    lab, found = kill_lab.lab, []
    for x in hosts:
        if point.program == (PACKAGE,):
            # distribute renames the file into place once it is whole
            if mtime(lab, x, rp.package_file(kill_lab.package.name)) is None:
                return []
            found.append(f"{x}: {rp.package_file(kill_lab.package.name)}")
        else:
            pids = running(lab, x, *point.program)
            if not pids:
                return []
            found.append(f"{x}: pid {pids[0]} {' '.join(point.program)}")
    return found


def clean_all(kill_lab: KillLab, home: Path) -> str:
    lab = kill_lab.lab
    proc = lab.run([sys.executable, "-m", "sealos", "clean", "--all", "-y"],
                   env=_env(lab, home), timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.parametrize("point", KILL_POINTS, ids=[p.name for p in KILL_POINTS])
def test_clean_after_init_killed(kill_lab, tmp_path, point):
    h = kill_lab.lab.hosts
    home = tmp_path / "home"
    init_killed_at(kill_lab, home, point)
    time.sleep(1.0)  # the operator notices; remote commands see their session gone
    left = {x.name: kill_lab.scans[x.name].leftovers() for x in h}
    assert any(left.values()), f"the kill at {point} left nothing to clean: a test of nothing"
    clean_all(kill_lab, home)
    for x in h:
        assert kill_lab.scans[x.name].leftovers() == [], (point, x.name)
    assert not (home / "config.yaml").exists()


def test_clean_stops_what_an_interrupted_run_left_running(kill_lab, tmp_path):
    """A kubeadm whose operator is gone may hold the host's kubeadm lock for minutes (discovery
    retries): clean gives it a moment, then stops it. An init.sh or a package unpacking still
    running (no lock) is stopped with its whole command at once."""
    lab, h = kill_lab.lab, kill_lab.lab.hosts
    home = tmp_path / "home"
    init_killed_at(kill_lab, home, KILL_POINTS[0])
    lock = "/var/lib/sealos/kubeadm.lock"
    detached = "</dev/null >/dev/null 2>&1 &"
    hold = f"mkdir -p /var/lib/sealos && (flock {lock} sleep 600 {detached})"
    assert lab.exec(h[2].name, ["sh", "-c", hold]).returncode == 0
    assert wait_held(lab, h[2].name, lock)
    # As SSH runs them: a session of their own; init.sh's child and tar's gzip go with them.
    slow_init = (
        "mkdir -p /root/kube/shell && printf 'sleep 601\\n' > /root/kube/shell/init.sh && "
        f"setsid sh -c 'cd /root/kube/shell && sh init.sh' {detached}"
    )
    # tar stays busy on its first member (its helper sleeps), as if the package were huge
    slow_tar = (
        f"setsid tar -C /root -xzf /root/{kill_lab.package.name} "
        f"'--to-command=sleep 602' {detached}"
    )
    for script in (slow_init, slow_tar):
        assert lab.exec(h[1].name, ["sh", "-c", script]).returncode == 0
    # Until both sleeps run (whole command lines: tar's own names `sleep 602` too): the test is
    # about stopping them.
    running: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        running = lab.exec(h[1].name, ["ps", "-eo", "args="]).stdout.splitlines()
        if "sleep 601" in running and "sleep 602" in running:
            break
        time.sleep(0.1)
    assert "sleep 601" in running and "sleep 602" in running, running

    out = clean_all(kill_lab, home)
    assert "an interrupted run's kubeadm, holding the lock" in out, out
    assert "sh init.sh, left by an interrupted run" in out, out
    assert f"tar -C /root -xzf /root/{kill_lab.package.name}" in out, out
    for x in h:
        assert kill_lab.scans[x.name].leftovers() == [], x.name  # the processes are gone too


def wait_held(lab: Lab, host: str, lock: str) -> bool:
    for _ in range(20):
        if lab.exec(host, ["flock", "-n", lock, "true"]).returncode != 0:
            return True
        time.sleep(0.1)
    return False


def test_a_failing_kubeadm_reset_stops_clean_unless_forced(kill_lab, tmp_path):
    """Without a recorded cluster, on a named host: a kubeadm whose reset fails stops the clean
    there (removing its files would hide what it left running); --force goes on. The host holds
    no marker of sealos (the files are made by hand), so clean resets it only when asked with
    --not-a-member (issue 11), and --force needs -y to skip the question."""
    lab, host = kill_lab.lab, kill_lab.lab.hosts[2]
    home = tmp_path / "home"
    broken = "/usr/local/sbin/kubeadm"  # first in the clean script's PATH
    setup = (
        f"printf '#!/bin/sh\\necho cannot reach the cluster >&2\\nexit 1\\n' > {broken} && "
        f"chmod +x {broken} && mkdir -p /etc/kubernetes/pki && touch /etc/kubernetes/admin.conf"
    )
    assert lab.exec(host.name, ["sh", "-c", setup]).returncode == 0
    try:
        argv = [sys.executable, "-m", "sealos", "clean", "--node", host.ip, "--not-a-member", "-y"]
        proc = lab.run(argv, env=_env(lab, home), timeout=300)
        assert proc.returncode == 1, proc.stdout
        assert "kubeadm reset -f failed (cannot reach the cluster" in proc.stdout, proc.stdout
        assert "add --force" in proc.stdout
        assert lab.exec(host.name, ["test", "-e", "/etc/kubernetes/admin.conf"]).returncode == 0

        proc = lab.run([*argv, "--force"], env=_env(lab, home), timeout=300)
        assert proc.returncode == 0, proc.stdout
        assert "its files go anyway (--force)" in proc.stdout, proc.stdout
        assert lab.exec(host.name, ["test", "-e", "/etc/kubernetes"]).returncode == 1
    finally:
        lab.exec(host.name, ["rm", "-rf", broken, "/etc/kubernetes"])
    assert kill_lab.scans[host.name].leftovers() == []
