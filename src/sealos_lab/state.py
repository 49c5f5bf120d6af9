"""The lab record: its hosts as recorded in `lab_dir(name)/state.json` (mode 0600, no secrets),
where its files are, and how to run commands inside a host or on the operator side.

What a kind of host does differently (boot, stop, exec, logs) sits behind `Lab.driver`, picked once
from the recorded kind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from sealos_lab import addresses, credentials, netns, readiness
from sealos_lab.drivers import HostDriver, driver_for
from sealos_lab.names import (
    NAME_RE,
    LabError,
    check_hostname,
    check_name,
    namespace_prefix,
)
from sealos_lab.names import owns_namespace as owns_namespace  # tests look for it here
from sealos_lab.paths import STATE, lab_dir, write_private

STATE_FILE = "state.json"
PASSWORD_FILE = "root-password"  # noqa: S105 (a file name, not a password)
KEY_FILE = "id_ed25519"


@dataclass
class LabHost:
    """One host of a lab as recorded in its state file."""

    name: str
    hostname: str
    ip: str
    kind: str  # "nspawn" or "vm"
    netns: str
    machine: str
    pid: Optional[int] = None
    pid_start: Optional[int] = None
    mac: Optional[str] = None
    tap: Optional[str] = None
    # What the host is made with (`HostSpec`): its container runtime layer; a VM's memory, CPUs
    # and cgroup hierarchy (None: the driver's default).
    runtime: str = "containerd"
    memory_mb: Optional[int] = None
    cpus: Optional[int] = None
    cgroup_v1: bool = False
    sudo: bool = False  # Debian's sudo installed (the "sudo" layer)


@dataclass(frozen=True)
class HostSpec:
    """How to make one host: runtime "containerd" (Debian's, running) or "none" (for packages
    that bring their own); for VM hosts, memory in MB (kubeadm's control plane wants MemTotal
    >= 1700 MB), CPUs (QEMU -smp; kubeadm wants 2) and booting cgroup v1
    (systemd.unified_cgroup_hierarchy=0, for kubelets before 1.25); sudo: Debian's sudo installed
    (for logging in as a user that is not root; off by default)."""

    runtime: str = "containerd"
    memory_mb: Optional[int] = None
    cpus: Optional[int] = None
    cgroup_v1: bool = False
    sudo: bool = False

    def problem(self, kind: str) -> Optional[str]:
        """Why this spec can't make a host of `kind`, or None."""
        if self.runtime not in ("containerd", "none"):
            return f"runtime {self.runtime!r}: choose containerd or none"
        if self.sudo and self.runtime != "containerd":
            return "sudo is installed on top of the containerd runtime: use runtime containerd"
        if kind != "vm" and (self.memory_mb or self.cpus or self.cgroup_v1):
            return "memory, CPUs and cgroup v1 are options of VM hosts (--vm)"
        if self.memory_mb is not None and self.memory_mb < 256:
            return f"memory {self.memory_mb} MB: a VM host needs at least 256"
        if self.cpus is not None and not 1 <= self.cpus <= 8:
            return f"{self.cpus} CPUs: choose 1 to 8"
        return None


@dataclass
class Lab:
    """A lab that exists (or is half made): its hosts, network, and ways to run commands."""

    name: str
    subnet: str
    kind: str
    hosts: list[LabHost] = field(default_factory=list)

    # ---- where things are -------------------------------------------------------------------
    @property
    def driver(self) -> HostDriver:
        """What boots, stops and enters this lab's kind of host."""
        return driver_for(self.kind)

    @property
    def dir(self) -> Path:
        """The lab's folder: state, keys, overlays, console logs."""
        return lab_dir(self.name)

    def host_dir(self, h: LabHost) -> Path:
        """The folder of one host: its own files, its console log, a VM's disk."""
        return self.dir / "hosts" / h.name

    @property
    def prefix(self) -> str:
        """The prefix of every network namespace of this lab."""
        return namespace_prefix(self.name)

    @property
    def operator_netns(self) -> str:
        """The namespace of the operator side (the bridge, address .1), where ssh clients run."""
        return f"{self.prefix}-sw"

    @property
    def operator_ip(self) -> str:
        """The operator side's address on the lab network."""
        return addresses.operator_ip(self.subnet)

    @property
    def key_path(self) -> Path:
        """The lab's private SSH key (ed25519); every host's root accepts it."""
        return self.dir / KEY_FILE

    @property
    def password_path(self) -> Path:
        """The file (mode 0600) holding root's password on every host of this lab."""
        return self.dir / PASSWORD_FILE

    @property
    def password(self) -> str:
        """Root's password on every host of this lab."""
        return self.password_path.read_text().removesuffix("\n")

    @property
    def known_hosts_path(self) -> Path:
        """An OpenSSH known_hosts file with every host's real host keys."""
        return self.dir / "known_hosts"

    @property
    def ssh_config_path(self) -> Path:
        """An OpenSSH client config: `ssh -F THIS h1` from the operator side logs in by key."""
        return self.dir / "ssh_config"

    # ---- loading and saving -----------------------------------------------------------------
    @classmethod
    def load(cls, name: str) -> Lab:
        """The lab called `name`, from its state file; LabError when there is none."""
        check_name(name)
        path = lab_dir(name) / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise LabError(
                f"there is no lab named {name!r}; create it with `sealos-lab up --name {name}`"
            ) from None
        except ValueError:
            raise LabError(
                f"the state of lab {name!r} ({path}) is damaged; "
                f"remove the lab with `sealos-lab down --name {name}`"
            ) from None
        hosts = [LabHost(**h) for h in data.get("hosts", [])]
        return cls(name=data["name"], subnet=data["subnet"], kind=data["kind"], hosts=hosts)

    def save(self) -> None:
        """Write the state file atomically, mode 0600."""
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {
            "name": self.name,
            "subnet": self.subnet,
            "kind": self.kind,
            "hosts": [asdict(h) for h in self.hosts],
        }
        write_private(self.dir / STATE_FILE, json.dumps(data, indent=2) + "\n")

    # ---- hosts ------------------------------------------------------------------------------
    def host(self, ref: str) -> LabHost:
        """A host by its lab name ("h1"), hostname or address; LabError naming the choices."""
        for h in self.hosts:
            if ref == h.name:
                return h
        for h in self.hosts:
            if ref in (h.hostname, h.ip):
                return h
        names = ", ".join(h.name for h in self.hosts) or "none"
        raise LabError(f"lab {self.name!r} has no host {ref!r}; its hosts are: {names}")

    def is_running(self, host_name: str) -> bool:
        """True when the host's process (container or VM) is running."""
        return self.driver.is_running(self.host(host_name))

    # ---- running commands -------------------------------------------------------------------
    def exec_argv(self, host_name: str, argv: Sequence[str], tty: bool = False) -> list[str]:
        """The command line (to run on this machine) that runs `argv` inside the host as root."""
        h = self.host(host_name)
        if not self.is_running(h.name):
            raise LabError(
                f"host {h.name} of lab {self.name!r} is not running; "
                f"start it with `sealos-lab up --name {self.name}`"
            )
        return self.driver.exec_argv(self, h, argv, tty)

    def exec(
        self,
        host_name: str,
        argv: Sequence[str],
        input: Optional[str] = None,
        timeout: Optional[float] = 60,
        check: bool = False,
    ) -> subprocess.CompletedProcess:
        """Run `argv` inside the host as root; text output captured, exit code kept."""
        return subprocess.run(
            self.exec_argv(host_name, argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def run_argv(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs `argv` on the operator side."""
        return ["ip", "netns", "exec", self.operator_netns, *argv]

    def run(
        self,
        argv: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        input: Optional[str] = None,
        timeout: Optional[float] = 120,
        check: bool = False,
    ) -> subprocess.CompletedProcess:
        """Run `argv` on the operator side (the bridge's namespace); text output captured."""
        if not netns.exists(self.operator_netns):
            raise LabError(
                f"lab {self.name!r} has no network; "
                f"bring it up with `sealos-lab up --name {self.name}`"
            )
        return subprocess.run(
            self.run_argv(argv),
            env=dict(env) if env is not None else None,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def ssh_argv(
        self, host_name: str, argv: Sequence[str] = (), tty: bool = False, password: bool = False
    ) -> list[str]:
        """An ssh command line (for the operator side) that logs in to the host as root.

        With `password=True` it logs in by password through `sshpass -e` (password in $SSHPASS).
        """
        h = self.host(host_name)
        opts = [
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
        ]
        if password:
            head = ["sshpass", "-e", "ssh", *opts, "-o", "PubkeyAuthentication=no"]
            head += ["-o", "PreferredAuthentications=password"]
        else:
            head = ["ssh", *opts, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]
            head += ["-i", str(self.key_path)]
        head.append("-t" if tty else "-T")
        cmd = [shlex.join(argv)] if argv else []
        return [*head, f"root@{h.ip}", *cmd]

    # ---- changing hosts ---------------------------------------------------------------------
    def set_hostname(self, host_name: str, hostname: str) -> None:
        """Give a host another hostname now and after a restart (several hosts may share one)."""
        check_hostname(hostname)
        h = self.host(host_name)
        q = shlex.quote(hostname)
        script = (
            f"hostname {q} && echo {q} > /etc/hostname && "
            f"sed -i 's/^127\\.0\\.1\\.1\\s.*/127.0.1.1\\t'{q}'/' /etc/hosts"
        )
        proc = self.exec(h.name, ["sh", "-c", script])
        if proc.returncode != 0:
            raise LabError(f"setting the hostname of {h.name} failed: {proc.stderr.strip()}")
        h.hostname = hostname
        self.save()
        credentials.write_ssh_config(self)

    def stop_host(self, host_name: str) -> None:
        """Power the host off (clean shutdown, then SIGKILL); its files stay for `start_host`."""
        h = self.host(host_name)
        self.driver.stop([h])
        self.driver.release(h)
        h.pid = h.pid_start = None
        self.save()

    def start_host(self, host_name: str, timeout: Optional[float] = None) -> None:
        """Boot a stopped host again with the files it had, and wait until SSH answers."""
        h = self.host(host_name)
        if self.is_running(h.name):
            return
        self.driver.start(self, h, threading.Lock())
        readiness.wait_ready(self, [h], timeout)

    def status(self) -> list[dict[str, Any]]:
        """One row per host: name, hostname, address, kind, running, ssh (banner seen)."""
        reachable = set(readiness.probe_ssh(self, [h.ip for h in self.hosts], 1.0))
        return [
            {
                "host": h.name,
                "hostname": h.hostname,
                "ip": h.ip,
                "kind": h.kind,
                "running": self.is_running(h.name),
                "ssh": h.ip in reachable,
            }
            for h in self.hosts
        ]


# ---- the labs on this machine -------------------------------------------------------------------
def list_labs() -> list[str]:
    """Names of the labs that have a folder here (up or half made)."""
    if not STATE.is_dir():
        return []
    return sorted(p.name for p in STATE.iterdir() if p.is_dir() and NAME_RE.match(p.name))


def _pick_subnet(name: str) -> str:
    """A 10.250.N.0/24 chosen from the name, different from every other lab's here."""
    taken = set()
    for other in list_labs():
        with contextlib.suppress(Exception):
            taken.add(json.loads((lab_dir(other) / STATE_FILE).read_text())["subnet"])
    subnet = addresses.pick_subnet(name, taken)
    if subnet is None:
        raise LabError("every lab subnet is taken; remove a lab with `sealos-lab down --name NAME`")
    return subnet


@contextlib.contextmanager
def global_lock() -> Iterator[None]:
    """Serialize lab creation and removal on this machine (subnet choice, folder creation)."""
    STATE.mkdir(parents=True, exist_ok=True)
    fd = os.open(STATE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def require_root() -> None:
    """LabError unless this process runs as root (labs need namespaces and mounts)."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts); run it with sudo")
