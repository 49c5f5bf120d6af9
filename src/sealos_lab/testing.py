"""Labs for tests: a context manager and a pytest fixture factory that always tear the lab down.

Example: `lab3 = lab_fixture("mytests", hosts=3)` at module level makes a module-scoped fixture
`lab3`; a test taking `lab3` gets a `Lab` whose `lab3.exec("h1", ["hostname"])` runs inside h1.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from sealos_lab import netns, nspawn
from sealos_lab.drivers.nspawn import lab_cgroup_machines
from sealos_lab.lab import Lab, down, up
from sealos_lab.paths import lab_dir
from sealos_lab.state import HostSpec


@contextlib.contextmanager
def lab_session(
    name: str,
    hosts: int = 3,
    vm: bool = False,
    hostnames: Optional[Mapping[str, str]] = None,
    timeout: Optional[float] = None,
    password: Optional[str] = None,
    runtime: str = "containerd",
    specs: Optional[Mapping[str, HostSpec]] = None,
) -> Iterator[Lab]:
    """A fresh lab for the duration of the block; removed afterwards, also on failure. A lab of
    the same name left over by an earlier crashed run is removed first. `runtime` and `specs`:
    see `sealos_lab.lab.up`."""
    down(name)
    try:
        yield up(
            name,
            hosts,
            vm=vm,
            hostnames=hostnames,
            timeout=timeout,
            password=password,
            runtime=runtime,
            specs=specs,
        )
    finally:
        down(name)


def lab_fixture(
    name: str,
    hosts: int = 3,
    vm: bool = False,
    hostnames: Optional[Mapping[str, str]] = None,
    scope: str = "module",
) -> Any:
    """A pytest fixture yielding a fresh lab (see `lab_session`); skips the test when not root."""
    import pytest

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def _lab() -> Iterator[Lab]:
        if os.geteuid() != 0:
            pytest.skip("lab hosts need root")
        with lab_session(name, hosts, vm=vm, hostnames=hostnames) as lab:
            yield lab

    return _lab


def run_cli(
    *args: str, env: Optional[Mapping[str, str]] = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `sealos-lab ARGS` in a subprocess like a user would; text output captured."""
    exe = shutil.which("sealos-lab") or str(Path(sys.executable).parent / "sealos-lab")
    return subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
    )


def recorded_pids(name: str) -> list[tuple[int, Optional[int]]]:
    """(PID, start time) of every host process lab `name` recorded in its state file."""
    return [(h.pid, h.pid_start) for h in Lab.load(name).hosts if h.pid]


def leftovers(name: str, pids: Sequence[tuple[int, Optional[int]]] = ()) -> list[str]:
    """What of lab `name` is still on this machine (namespaces, mounts under its folder, the
    processes `pids` if alive, its hosts' cgroups, its folder), one phrase each; empty when it
    is all gone."""
    found = [f"namespace {ns}" for ns in netns.list_netns() if ns.startswith(f"sl-{name}-")]
    d = str(lab_dir(name))
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == d or point.startswith(d + "/"):
            found.append(f"mount {point}")
    found += [f"process {pid}" for pid, st in pids if nspawn.alive(pid, st)]
    found += [f"cgroup {m}" for m in lab_cgroup_machines(name)]
    if Path(d).exists():
        found.append(f"folder {d}")
    return found


def wait_for_output(proc: subprocess.Popen, marker: str, timeout: float = 20.0) -> str:
    """Wait until `proc` (started with stdout=PIPE) has written `marker`; return what it wrote so
    far. TimeoutError, with that output, when it has not within `timeout` seconds or exited first.

    For "the server is listening" or "the lock is held": a line the process prints once it is.
    """
    assert proc.stdout is not None, "start the process with stdout=subprocess.PIPE"
    fd, seen = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {marker!r} within {timeout:g} s; output so far: {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise TimeoutError(
                    f"exited (rc {proc.wait()}) before writing {marker!r}; output: {seen!r}"
                )
            seen += chunk
    return seen.decode(errors="replace")


def boot_id(lab: Lab, host: str) -> str:
    """The host's boot id (a new one after each boot), or "" while it does not answer."""
    try:
        proc = lab.exec(host, ["cat", "/proc/sys/kernel/random/boot_id"], timeout=20)
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def reboot(lab: Lab, host: str, timeout: float = 300) -> float:
    """`systemctl reboot` a VM host and wait until it answers SSH from a new boot; the seconds it
    took. AssertionError when it is not back within `timeout`."""
    before = boot_id(lab, host)
    assert before, f"{host} does not answer before its reboot"
    started = time.monotonic()
    # The SSH session may be cut by the reboot itself: its exit code says nothing.
    with contextlib.suppress(subprocess.TimeoutExpired):
        lab.exec(host, ["systemctl", "reboot"], timeout=30)
    after = ""
    while time.monotonic() < started + timeout:
        after = boot_id(lab, host)
        if after and after != before:
            return time.monotonic() - started
        time.sleep(2)
    raise AssertionError(f"{host} did not come back from its reboot within {timeout:g} s")


def run_sealos(
    lab: Lab, home: Path, *args: str, timeout: float = 900
) -> subprocess.CompletedProcess:
    """`python -m sealos ARGS` from the lab's operator side, as a user runs it: its state in
    `home` (SEALOS_HOME), the lab's password in SEALOS_PASSWORD; text output captured."""
    env = {"PATH": os.environ["PATH"], "SEALOS_HOME": str(home), "SEALOS_PASSWORD": lab.password}
    return lab.run([sys.executable, "-m", "sealos", *args], env=env, timeout=timeout)


def host_sh(lab: Lab, host: str, script: str, timeout: float = 120) -> str:
    """Run a shell script on a lab host; its output. AssertionError (with the output) when it
    fails."""
    proc = lab.exec(host, ["sh", "-c", script], timeout=timeout)
    assert proc.returncode == 0, f"{host}: {script}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def wait_until(check: Any, timeout: float, interval: float = 0.5) -> Any:
    """Call `check` until it returns something true or `timeout` seconds passed; its last
    result."""
    deadline = time.monotonic() + timeout
    last = check()
    while not last and time.monotonic() < deadline:
        time.sleep(interval)
        last = check()
    return last


def make_sudo_user(lab: Lab, host: str, user: str, password: str) -> None:
    """On a running host made with `HostSpec(sudo=True)`: add `user` with `password` (fed on
    stdin, never argv) to Debian's sudo group (password sudo, as Debian's sudoers grants it) and
    refuse root's SSH login (PermitRootLogin no, in a drop-in read before the lab's own)."""
    script = (
        f"set -e; useradd -m -s /bin/bash -G sudo {shlex.quote(user)}; chpasswd; "
        "printf 'PermitRootLogin no\\n' > /etc/ssh/sshd_config.d/00-sealos-lab-no-root.conf; "
        "systemctl reload ssh"
    )
    proc = lab.exec(host, ["sh", "-c", script], input=f"{user}:{password}\n", timeout=60)
    assert proc.returncode == 0, f"{host}: making the sudo user failed: {proc.stderr}"


# What runs on a host, read from its /proc: a program (argv[0], or the script an interpreter runs
# as argv[1]) whose next arguments are the given ones. A shell's `sh -c "... kubeadm init ..."`
# or a `flock LOCK kubeadm init` still waiting for its lock is not the program running.
_RUNNING = r"""
import os, sys
want = sys.argv[1:]
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
    except OSError:
        continue
    names = [os.path.basename(a) for a in argv[:2]]
    starts = [0] + ([1] if names and names[0].startswith(("python", "sh")) else [])
    for i in starts:
        if names[i:i + 1] == want[:1] and argv[i + 1 : i + len(want)] == want[1:]:
            print(pid)
            break
"""


def running(lab: Lab, host: str, program: str, *args: str) -> list[int]:
    """PIDs of the processes on `host` running `program` with `args` first (from its /proc)."""
    proc = lab.exec(host, ["python3", "-c", _RUNNING, program, *args], timeout=60)
    assert proc.returncode == 0, f"{host}: reading /proc: {proc.stderr}"
    return [int(p) for p in proc.stdout.split()]


def mtime(lab: Lab, host: str, path: str) -> Optional[float]:
    """When `path` on `host` was last written (seconds since the epoch; the lab's hosts share
    this machine's clock), or None when it does not exist."""
    script = "import os,sys\ntry: print(repr(os.stat(sys.argv[1]).st_mtime))\nexcept OSError: pass"
    proc = lab.exec(host, ["python3", "-c", script, path], timeout=60)
    assert proc.returncode == 0, f"{host}: stat {path}: {proc.stderr}"
    return float(proc.stdout) if proc.stdout.strip() else None


def unfinished_at(lab: Lab, host: str, marker: str, killed_at: float) -> Optional[str]:
    """None when the step that writes `marker` at its end had not finished on `host` at
    `killed_at` (time.time()): the marker is absent, or written later by the step the kill left
    running. Else why the kill came too late."""
    written = mtime(lab, host, marker)
    if written is None or written > killed_at:
        return None
    return f"{host}: {marker} was written {killed_at - written:.2f} s before the kill"


class CmdlineWatch:
    """Reads every process's argv on every host, over and over, while a run goes on: `leaks`
    lists lines holding any of `secrets`; `seen` counts lines `witness` matches (the run's own
    commands: without any, the watch proves nothing)."""

    def __init__(self, lab: Lab, secrets: Sequence[str], witness: str) -> None:
        self.lab = lab
        self.secrets = list(secrets)
        self.witness = re.compile(witness)
        self.leaks: list[str] = []
        self.seen = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(h.name,), daemon=True) for h in lab.hosts
        ]

    def __enter__(self) -> CmdlineWatch:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _watch(self, host: str) -> None:
        script = 'for f in /proc/[0-9]*/cmdline; do tr "\\000" " " < "$f"; echo; done'
        while not self._stop.is_set():
            proc = self.lab.exec(host, ["sh", "-c", script], timeout=30)
            for line in proc.stdout.splitlines():
                if any(secret in line for secret in self.secrets):
                    self.leaks.append(f"{host}: {line}")
                if self.witness.search(line):
                    self.seen += 1
            time.sleep(0.2)
