"""One lab host as a systemd-nspawn container: real systemd on an overlay over the cached rootfs,
inside a network namespace made beforehand. Also the PID bookkeeping every lab process needs.

Flags come from measurements on this kind of machine (see lab-notes): PID 1 here is not systemd, so
`--register=no --keep-unit`; `--capability=all` so that nft works inside.

With `--keep-unit` and nobody to hand out units, systemd-nspawn makes its `payload` and `supervisor`
cgroups inside the cgroup it was started in. Started from one shared cgroup, every host's systemd
would manage the same `/payload/system.slice/*.service` cgroups, and under load one host's systemd
removing or emptying a unit's cgroup made another's fail to start it (status 219/CGROUP, "Failed to
kill control group: Input/output error"; 4 of 18 hosts in three 6-host boots had one). So each
host starts in a cgroup of its own, `sealos-lab/<machine>` in the systemd hierarchies here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional

# What a login shell inside a host would have; our own environment stays outside.
HOST_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "USER=root",
    "LOGNAME=root",
    "LANG=C.UTF-8",
    "SHELL=/bin/bash",
)


CGROUP_GROUP = "sealos-lab"


def _systemd_hierarchies() -> list[Path]:
    """Mount points of the cgroup hierarchies systemd keeps its units in: the named v1 hierarchy
    `name=systemd` and the v2 (unified) one, where mounted."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(rest) < 3:
                continue
            fstype, options = rest[0], rest[2].split(",")
            if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options):
                found.append(Path(fields[4].replace("\\040", " ")))
    return found


def cgroups(machine: str) -> list[Path]:
    """The host's own cgroup in each systemd hierarchy (they may not exist)."""
    return [root / CGROUP_GROUP / machine for root in _systemd_hierarchies()]


def cgroup_machines() -> set[str]:
    """The machines that have a cgroup here (a running host, or one a crash left)."""
    names: set[str] = set()
    for root in _systemd_hierarchies():
        with contextlib.suppress(OSError):
            names.update(p.name for p in (root / CGROUP_GROUP).iterdir() if p.is_dir())
    return names


def remove_cgroups(machine: str) -> None:
    """Remove the host's cgroups, innermost first; one that still holds a process stays."""
    for top in cgroups(machine):
        if not top.is_dir():
            continue
        for folder, _dirs, _files in os.walk(top, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(folder)


# Moves this shell into each cgroup given (paths first, then "--", then the command), then
# becomes the command: the PID Popen returns is systemd-nspawn's, in the host's cgroups.
_INTO_CGROUPS = (
    'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift; done; '
    'shift; exec "$@"'
)


def start(machine: str, lowers: Sequence[Path], upper: Path, netns: str, log: Path) -> int:
    """Boot a container on the rootfs and layers `lowers` (lowest first) with writes going to
    `upper`; return the nspawn PID.

    The process runs in its own session so that Ctrl-C on the caller leaves it alone; `stop()`
    ends it by PID. It starts in cgroups of its own (see the module's notes), fresh ones: what a
    previous boot of the host left there is removed first.
    """
    remove_cgroups(machine)
    own = cgroups(machine)
    for folder in own:
        folder.mkdir(parents=True, exist_ok=True)
    argv = [
        "sh",
        "-c",
        _INTO_CGROUPS,
        "sh",
        *(str(f) for f in own),
        "--",
        "systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "-D",
        str(lowers[0]),
        f"--overlay={':'.join(str(f) for f in lowers)}:{upper}:/",
        "--capability=all",
        f"--network-namespace-path=/run/netns/{netns}",
        f"--machine={machine}",
        "--console=read-only",
        "-b",
    ]
    # /proc/sys/net writable (the host's own network namespace's sysctls: ip_forward,
    # bridge-nf-call-iptables, which kubeadm checks); the rest of /proc/sys stays read-only.
    env = {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    return proc.pid


def start_time(pid: int) -> Optional[int]:
    """The kernel's start time of `pid` (clock ticks since boot), None when it does not exist.

    Recorded beside each PID so that a PID the kernel reused for another process is never signalled.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19])


def alive(pid: int, started: Optional[int]) -> bool:
    """True when `pid` is still the process we started (same start time) and is not a zombie."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def _reap(pid: int) -> None:
    """Collect the exit status when `pid` is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(procs: Iterable[tuple[int, Optional[int]]], timeout: float = 10.0) -> None:
    """SIGTERM every (pid, start_time) that is still ours, SIGKILL what remains after `timeout`.

    SIGTERM to systemd-nspawn powers the container off cleanly (about 1.5 s).
    """
    pending = [(pid, st) for pid, st in procs if alive(pid, st)]
    for pid, _ in pending:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [(pid, st) for pid, st in pending if alive(pid, st)]
    for pid, _ in pending:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [(pid, st) for pid, st in pending if alive(pid, st)]


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def init_pid(nspawn_pid: int, timeout: float = 10.0) -> int:
    """The PID (as seen here) of the container's PID 1: the child systemd-nspawn forks for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            try:
                exe = os.readlink(f"/proc/{child}/exe")
            except OSError:
                continue
            # Before the inner child execs systemd it is still a copy of systemd-nspawn.
            if not exe.endswith("systemd-nspawn"):
                return int(child)
        if not Path(f"/proc/{nspawn_pid}").exists():
            raise RuntimeError(f"systemd-nspawn (PID {nspawn_pid}) is not running")
        if time.monotonic() > deadline:
            raise RuntimeError(f"systemd-nspawn (PID {nspawn_pid}) started no init process")
        time.sleep(0.02)


def exec_argv(pid: int, argv: Sequence[str], env: Sequence[str] = ()) -> list[str]:
    """The command line that runs `argv` inside the container whose PID 1 is `pid`, as root,
    with the host's own environment (plus `env`, "NAME=value" items)."""
    return [
        "nsenter",
        "-t",
        str(pid),
        "-m",
        "-u",
        "-i",
        "-n",
        "-p",
        "-C",
        "-r",
        "-w",
        "--",
        "/usr/bin/env",
        "-i",
        *HOST_ENV,
        *env,
        *argv,
    ]
