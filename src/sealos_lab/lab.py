"""A lab: several real SSH hosts on this machine, on an isolated bridge with no route out.

Each host is a systemd-nspawn container (default) or a QEMU VM (`vm=True`, real IPVS) in its own
network namespace, with its own hostname, SSH host keys, root password and the lab's key. The
operator side is the bridge's namespace (`Lab.operator_netns`, address .1).

Python API (tests and the demo use it): `up()`, `Lab.load()`, `down()`; `Lab.exec()` runs inside a
host, `Lab.run()` on the operator side. State lives in `lab_dir(name)/state.json` (mode 0600, no
secrets); the root password and the private key sit beside it in their own 0600 files.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import importlib
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from sealos_lab import netns, nspawn
from sealos_lab.paths import STATE, lab_dir

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")
HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
MAX_HOSTS = 40
FIRST_HOST_INDEX = 11
# Third octets of 10.250.N.0/24 a lab may take; 99-130 belong to other parts' tests.
SUBNET_OCTETS = [n for n in range(1, 255) if not 99 <= n <= 130]
NSPAWN_READY_TIMEOUT = 60.0
VM_READY_TIMEOUT = 600.0
STATE_FILE = "state.json"
PASSWORD_FILE = "root-password"  # noqa: S105 (a file name, not a password)
KEY_FILE = "id_ed25519"


class LabError(Exception):
    """Something the user can fix; the message is one sentence that says how."""


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


@dataclass
class Lab:
    """A lab that exists (or is half made): its hosts, network, and ways to run commands."""

    name: str
    subnet: str
    kind: str
    hosts: list[LabHost] = field(default_factory=list)

    # ---- where things are -------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        """The lab's folder: state, keys, overlays, console logs."""
        return lab_dir(self.name)

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
        return str(ipaddress.ip_network(self.subnet).network_address + 1)

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
        _write_private(self.dir / STATE_FILE, json.dumps(data, indent=2) + "\n")

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
        h = self.host(host_name)
        return h.pid is not None and nspawn.alive(h.pid, h.pid_start)

    # ---- running commands -------------------------------------------------------------------
    def exec_argv(self, host_name: str, argv: Sequence[str], tty: bool = False) -> list[str]:
        """The command line (to run on this machine) that runs `argv` inside the host as root."""
        h = self.host(host_name)
        if not self.is_running(h.name):
            raise LabError(
                f"host {h.name} of lab {self.name!r} is not running; "
                f"start it with `sealos-lab up --name {self.name}`"
            )
        assert h.pid is not None
        if h.kind == "nspawn":
            term = [f"TERM={os.environ.get('TERM', 'xterm')}"] if tty else []
            return nspawn.exec_argv(nspawn.init_pid(h.pid), argv, env=term)
        return self.run_argv(self.ssh_argv(h.name, argv, tty=tty))

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
        _write_ssh_config(self)

    def stop_host(self, host_name: str) -> None:
        """Power the host off (clean shutdown, then SIGKILL); its files stay for `start_host`."""
        h = self.host(host_name)
        _stop_hosts([h])
        if h.kind == "nspawn":
            nspawn.remove_cgroups(h.machine)
        h.pid = h.pid_start = None
        self.save()

    def start_host(self, host_name: str, timeout: Optional[float] = None) -> None:
        """Boot a stopped host again with the files it had, and wait until SSH answers."""
        h = self.host(host_name)
        if self.is_running(h.name):
            return
        _boot(self, h, threading.Lock())
        _wait_ready(self, [h], timeout)

    def status(self) -> list[dict[str, Any]]:
        """One row per host: name, hostname, address, kind, running, ssh (banner seen)."""
        reachable = set(_probe_ssh(self, [h.ip for h in self.hosts], 1.0))
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


# ---- names --------------------------------------------------------------------------------------
def check_name(name: str) -> None:
    """LabError unless `name` is a usable lab name."""
    if not NAME_RE.match(name):
        raise LabError(
            f"{name!r} is not a usable lab name; use 1-20 lowercase letters, digits or dashes "
            "(not at either end), e.g. 'demo'"
        )


def check_hostname(hostname: str) -> None:
    """LabError unless `hostname` is a valid single-label hostname."""
    if not HOSTNAME_RE.match(hostname):
        raise LabError(
            f"{hostname!r} is not a valid hostname; use letters, digits and dashes, e.g. 'node-1'"
        )


def namespace_prefix(name: str) -> str:
    """Every network namespace of lab `name` is `<prefix>-sw` or `<prefix>-h<N>`."""
    return f"sl-{name}"


def owns_namespace(name: str, ns: str) -> bool:
    """True when network namespace `ns` belongs to lab `name` (and not to lab `name-x`)."""
    return re.match(rf"^{re.escape(namespace_prefix(name))}-(sw|h\d+)$", ns) is not None


def _lab_namespaces(name: str) -> list[str]:
    return [ns for ns in netns.list_netns() if owns_namespace(name, ns)]


def list_labs() -> list[str]:
    """Names of the labs that have a folder here (up or half made)."""
    if not STATE.is_dir():
        return []
    return sorted(p.name for p in STATE.iterdir() if p.is_dir() and NAME_RE.match(p.name))


# ---- up -----------------------------------------------------------------------------------------
def up(
    name: str = "default",
    hosts: int = 3,
    vm: bool = False,
    hostnames: Optional[Mapping[str, str]] = None,
    timeout: Optional[float] = None,
    log: Any = None,
    password: Optional[str] = None,
) -> Lab:
    """Bring lab `name` up with `hosts` hosts (nspawn, or QEMU VMs with `vm=True`); return it
    when every host answers SSH. An existing lab keeps its hosts; missing ones are started.

    `hostnames` maps host names ("h1") to hostnames (the default is `<name>-h1`, ...); two hosts may
    share one. `log` is a callable taking one line of progress, or None. `password` sets root's
    password of a new lab (e.g. one with special characters); the default is a random one.
    """
    _require_root()
    check_name(name)
    if not 1 <= hosts <= MAX_HOSTS:
        raise LabError(f"--hosts {hosts} is out of range; choose 1 to {MAX_HOSTS}")
    kind = "vm" if vm else "nspawn"
    for hn in (hostnames or {}).values():
        check_hostname(hn)
    say = log or (lambda line: None)
    if password is not None and (not password or "\n" in password or ":" in password):
        raise LabError("the lab password must be one non-empty line without ':'")

    lab, new = _create_or_load(name, kind, hosts, hostnames or {})
    try:
        lower = _prerequisites(kind, say)
        if password is not None and lab.password_path.exists() and lab.password != password:
            raise LabError(
                f"lab {name!r} already has another root password; "
                f"remove it with `sealos-lab down --name {name}` to choose a new one"
            )
        _ensure_secrets(lab, password)
        net = _network(lab)
        net.create()
        lock = threading.Lock()
        todo = [h for h in lab.hosts if not lab.is_running(h.name)]
        if todo:
            say(f"starting {len(todo)} {kind} host(s) of lab {name!r}")
        shadow = _shadow_with_password(lower, lab.password)
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(todo) or 1)) as pool:
            list(pool.map(lambda h: _prepare_and_boot(lab, h, net, lower, shadow, lock), todo))
        _write_known_hosts(lab)
        _write_ssh_config(lab)
        _wait_ready(lab, lab.hosts, timeout)
    except BaseException:
        if new:
            # A lab this call created and could not finish is removed whole; the error says why.
            with contextlib.suppress(Exception):
                down(name)
        raise
    return lab


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts); run it with sudo")


@contextlib.contextmanager
def _global_lock() -> Iterator[None]:
    """Serialize lab creation and removal on this machine (subnet choice, folder creation)."""
    STATE.mkdir(parents=True, exist_ok=True)
    fd = os.open(STATE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _create_or_load(
    name: str, kind: str, count: int, hostnames: Mapping[str, str]
) -> tuple[Lab, bool]:
    with _global_lock():
        if (lab_dir(name) / STATE_FILE).exists():
            lab = Lab.load(name)
            if lab.kind != kind:
                raise LabError(
                    f"lab {name!r} exists with {lab.kind} hosts; remove it with "
                    f"`sealos-lab down --name {name}` or pick another --name"
                )
            new = False
        else:
            shutil.rmtree(lab_dir(name), ignore_errors=True)  # leftovers of a lab without state
            lab = Lab(name=name, subnet=_pick_subnet(name), kind=kind)
            new = True
        for i in range(len(lab.hosts) + 1, count + 1):
            hname = f"h{i}"
            ip = str(ipaddress.ip_network(lab.subnet).network_address + FIRST_HOST_INDEX + i - 1)
            netns_name = f"{lab.prefix}-{hname}" if kind == "nspawn" else lab.operator_netns
            lab.hosts.append(
                LabHost(
                    name=hname,
                    hostname=hostnames.get(hname, f"{name}-{hname}"),
                    ip=ip,
                    kind=kind,
                    netns=netns_name,
                    machine=f"sl-{name}-{hname}",
                    mac=_mac(lab.subnet, i) if kind == "vm" else None,
                )
            )
        for h in lab.hosts:
            if h.name in hostnames and not lab.is_running(h.name):
                h.hostname = hostnames[h.name]
        lab.save()
    return lab, new


def _pick_subnet(name: str) -> str:
    """A 10.250.N.0/24 chosen from the name, different from every other lab's here."""
    taken = set()
    for other in list_labs():
        with contextlib.suppress(Exception):
            taken.add(json.loads((lab_dir(other) / STATE_FILE).read_text())["subnet"])
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(SUBNET_OCTETS)
    for k in range(len(SUBNET_OCTETS)):
        subnet = f"10.250.{SUBNET_OCTETS[(start + k) % len(SUBNET_OCTETS)]}.0/24"
        if subnet not in taken:
            return subnet
    raise LabError("every lab subnet is taken; remove a lab with `sealos-lab down --name NAME`")


def _mac(subnet: str, index: int) -> str:
    octet = ipaddress.ip_network(subnet).network_address.packed[2]
    return f"52:54:00:fa:{octet:02x}:{index:02x}"


def _network(lab: Lab) -> netns.Network:
    return netns.Network(lab.prefix, lab.subnet)


def _prerequisites(kind: str, say: Any) -> Path:
    """The rootfs every host is made from (built once); for VMs also the kernel."""
    from sealos_lab.rootfs import ensure_rootfs, rootfs_path

    if not (rootfs_path().is_dir()):
        say("building the lab rootfs (once, about a minute)")
    lower = ensure_rootfs(quiet=True)
    if kind == "vm":
        _vm_module()
    return lower


def _vm_module() -> Any:
    try:
        vm = importlib.import_module("sealos_lab.vm")
    except ImportError:
        raise LabError("VM hosts are not available in this build; use nspawn hosts") from None
    return vm


def _ensure_secrets(lab: Lab, password: Optional[str] = None) -> None:
    """The lab's root password and SSH key pair, made once per lab (files mode 0600)."""
    if not lab.password_path.exists():
        _write_private(lab.password_path, (password or secrets.token_urlsafe(12)) + "\n")
    if not lab.key_path.exists():
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"sealos-lab-{lab.name}",
                "-f",
                str(lab.key_path),
            ],
            check=True,
            capture_output=True,
        )


def _shadow_with_password(lower: Path, password: str) -> str:
    """The rootfs's /etc/shadow with root's password set (SHA-512 crypt; password via stdin)."""
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = []
    for line in (lower / "etc/shadow").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == "root":
            parts[1] = hashed
            line = ":".join(parts)
        lines.append(line)
    return "\n".join(lines) + "\n"


def host_files(lab: Lab, h: LabHost, root: Path, lower: Path, shadow: str) -> None:
    """Write one host's own files into `root` (an overlay upper dir, or the tree a VM copies
    over its /): hostname, hosts, machine-id, SSH host keys, root's password and authorized key."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 - the upper dir's mode becomes the mode of the host's /
    _place(root, lower, "etc/hostname", h.hostname + "\n", 0o644)
    hosts = (
        "127.0.0.1\tlocalhost\n"
        f"127.0.1.1\t{h.hostname}\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
    )
    _place(root, lower, "etc/hosts", hosts, 0o644)
    _place(root, lower, "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    _place(root, lower, "etc/shadow", shadow, 0o640)
    pub = (lab.key_path.with_suffix(".pub")).read_text()
    _place(root, lower, "root/.ssh/authorized_keys", pub, 0o600)
    keys = ["ed25519", "ecdsa"]
    conf = "".join(f"HostKey /etc/ssh/ssh_host_{k}_key\n" for k in keys)
    _place(root, lower, "etc/ssh/sshd_config.d/lab-hostkeys.conf", conf, 0o644)
    for k in keys:
        path = root / f"etc/ssh/ssh_host_{k}_key"
        for p in (path, path.with_name(path.name + ".pub")):
            p.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", k, "-N", "", "-C", f"root@{h.hostname}", "-f", str(path)],
            check=True,
            capture_output=True,
        )


def _place(root: Path, lower: Path, rel: str, text: str, mode: int) -> None:
    """Write `root/rel`, creating parent folders with the modes and owners they have in `lower`
    (in an overlay the upper dir's folder attributes win, so they must match the rootfs)."""
    parts = Path(rel).parts
    for i in range(1, len(parts)):
        sub = Path(*parts[:i])
        d = root / sub
        if not d.is_dir():
            d.mkdir()
            ref = lower / sub
            st = ref.stat() if ref.is_dir() else None
            os.chmod(d, st.st_mode & 0o7777 if st else 0o755)
            if st:
                os.chown(d, st.st_uid, st.st_gid)
    target = root / rel
    target.unlink(missing_ok=True)
    target.write_text(text)
    os.chmod(target, mode)
    ref = lower / rel
    if ref.exists():
        st = ref.stat()
        os.chown(target, st.st_uid, st.st_gid)


def _host_dir(lab: Lab, h: LabHost) -> Path:
    return lab.dir / "hosts" / h.name


def _host_tree(lab: Lab, h: LabHost) -> Path:
    """The folder holding the host's own files: the overlay upper dir, or the VM's file tree."""
    return _host_dir(lab, h) / ("upper" if h.kind == "nspawn" else "files")


def _prepare_and_boot(
    lab: Lab, h: LabHost, net: netns.Network, lower: Path, shadow: str, lock: threading.Lock
) -> None:
    index = FIRST_HOST_INDEX + int(h.name[1:]) - 1
    tree = _host_tree(lab, h)
    if not (tree / "etc/ssh/ssh_host_ed25519_key").exists():
        host_files(lab, h, tree, lower, shadow)
    elif h.kind == "nspawn":
        _rename_stopped(tree, lower, h.hostname)
    if h.kind == "nspawn":
        net.add_host(h.name, index)
    else:
        h.tap = net.add_tap(h.name, index).ifname
    _boot(lab, h, lock)


def _rename_stopped(upper: Path, lower: Path, hostname: str) -> None:
    """Give a stopped nspawn host a new hostname (`up --hostname`) before it boots again."""
    current = upper / "etc/hostname"
    if current.exists() and current.read_text().strip() == hostname:
        return
    _place(upper, lower, "etc/hostname", hostname + "\n", 0o644)
    hosts = upper / "etc/hosts"
    if hosts.exists():
        lines = hosts.read_text().splitlines()
        lines = [f"127.0.1.1\t{hostname}" if ln.startswith("127.0.1.1") else ln for ln in lines]
        hosts.write_text("\n".join(lines) + "\n")


def _boot(lab: Lab, h: LabHost, lock: threading.Lock) -> None:
    """Start the host's process and record its PID at once (so `down` finds it after a crash)."""
    from sealos_lab.rootfs import rootfs_path

    hdir = _host_dir(lab, h)
    hdir.mkdir(parents=True, exist_ok=True)
    if h.kind == "nspawn":
        pid = nspawn.start(
            h.machine, rootfs_path(), _host_tree(lab, h), h.netns, hdir / "console.log"
        )
    else:
        vm = _vm_module()
        files = _host_tree(lab, h)
        if (hdir / "vm" / "disk.qcow2").exists():
            # A restart: the VM's disk has its files already, and changes made inside since
            # (an /etc/hosts entry, say) must survive, so nothing is copied over / again.
            files = hdir / "no-files"
            files.mkdir(exist_ok=True)
        pid = vm.start_host(
            h.machine,
            files,
            f"{h.ip}/{ipaddress.ip_network(lab.subnet).prefixlen}",
            h.mac,
            lab.operator_netns,
            h.tap,
            hdir / "vm",
            memory_mb=384,
            gateway=None,
        )
    with lock:
        h.pid, h.pid_start = pid, nspawn.start_time(pid)
        lab.save()


# ---- waiting until hosts answer -----------------------------------------------------------------
_PROBE = r"""
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[1])
pending = list(sys.argv[2:])
while True:
    for ip in list(pending):
        try:
            with socket.create_connection((ip, 22), timeout=0.5) as s:
                s.settimeout(3)
                if s.recv(64).startswith(b"SSH-"):
                    pending.remove(ip)
                    print(ip, flush=True)
        except OSError:
            pass
    if not pending or time.monotonic() > deadline:
        break
    time.sleep(0.05)
"""


def _probe_ssh(lab: Lab, ips: Sequence[str], timeout: float) -> list[str]:
    """The addresses among `ips` whose sshd sends its banner to the operator side in time."""
    if not ips or not netns.exists(lab.operator_netns):
        return []
    proc = subprocess.run(
        lab.run_argv([sys.executable, "-c", _PROBE, str(timeout), *ips]),
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    return proc.stdout.split()


def _wait_ready(lab: Lab, hosts: Sequence[LabHost], timeout: Optional[float]) -> None:
    """Wait until every host's sshd answers from the operator side and its systemd finished
    booting (running or degraded); LabError naming the first host that did not."""
    if timeout is None:
        timeout = VM_READY_TIMEOUT if lab.kind == "vm" else NSPAWN_READY_TIMEOUT
    deadline = time.monotonic() + timeout

    def systemd_ready(h: LabHost) -> Optional[str]:
        last = ""
        while time.monotonic() < deadline:
            if not lab.is_running(h.name):
                return f"host {h.name} stopped while booting; {_console_hint(lab, h)}"
            try:
                proc = lab.exec(
                    h.name,
                    ["systemctl", "is-system-running", "--wait"],
                    timeout=max(1.0, deadline - time.monotonic()),
                )
                said = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
                last = said[-1] if said else ""
            except (subprocess.TimeoutExpired, RuntimeError, LabError) as e:
                last = str(e)
            if last in ("running", "degraded"):
                return None
            time.sleep(0.1)
        return f"host {h.name} did not finish booting in {timeout:.0f} s (systemd says {last!r})"

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        futures = [pool.submit(systemd_ready, h) for h in hosts]
        answered = set(_probe_ssh(lab, [h.ip for h in hosts], max(1.0, timeout)))
        problems = [f.result() for f in futures]
    for h, problem in zip(hosts, problems):
        if problem:
            raise LabError(problem)
        if h.ip not in answered:
            raise LabError(
                f"host {h.name} ({h.ip}) booted but its sshd did not answer in {timeout:.0f} s; "
                f"{_console_hint(lab, h)}"
            )


def _console_hint(lab: Lab, h: LabHost) -> str:
    log = _host_dir(lab, h) / ("console.log" if h.kind == "nspawn" else "vm/console.log")
    tail = ""
    with contextlib.suppress(OSError):
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        tail = " | ".join(lines[-3:])
    return f"its console log ends with: {tail}" if tail else f"see {log}"


# ---- files for ssh clients ----------------------------------------------------------------------
def _write_known_hosts(lab: Lab) -> None:
    lines = []
    for h in lab.hosts:
        etc_ssh = _host_tree(lab, h) / "etc/ssh"
        for pub in sorted(etc_ssh.glob("ssh_host_*_key.pub")):
            keytype, key = pub.read_text().split()[:2]
            lines.append(f"{h.ip} {keytype} {key}")
    (lab.dir / "known_hosts").write_text("\n".join(lines) + "\n")


def _write_ssh_config(lab: Lab) -> None:
    blocks = []
    for h in lab.hosts:
        blocks.append(
            f"Host {h.name} {h.ip}\n"
            f"    HostName {h.ip}\n"
            "    User root\n"
            f"    IdentityFile {lab.key_path}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {lab.known_hosts_path}\n"
            "    StrictHostKeyChecking yes\n"
        )
    (lab.dir / "ssh_config").write_text("\n".join(blocks))


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---- down ---------------------------------------------------------------------------------------
def _stop_hosts(hosts: Sequence[LabHost]) -> None:
    """Stop the hosts' processes by recorded PID (VMs through the VM helper when present)."""
    vms = [h for h in hosts if h.kind == "vm" and h.pid and nspawn.alive(h.pid, h.pid_start)]
    if vms:
        with contextlib.suppress(LabError):
            vm = _vm_module()
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(vms)) as pool:
                list(pool.map(lambda h: vm.stop_host(h.pid), vms))
    nspawn.stop([(h.pid, h.pid_start) for h in hosts if h.pid])


def down(name: str = "default") -> None:
    """Remove lab `name` entirely: processes, namespaces, mounts, files. Works on a half-made or
    crashed lab, and on a lab that is already gone (then it does nothing)."""
    _require_root()
    check_name(name)
    d = lab_dir(name)
    hosts: list[LabHost] = []
    with contextlib.suppress(Exception):
        hosts = Lab.load(name).hosts
    # Stopping hosts takes seconds (VMs up to 20): other labs may come and go meanwhile.
    _stop_hosts(hosts)
    with _global_lock():
        namespaces = _lab_namespaces(name)
        _kill_inside(namespaces)
        _unmount_under(d)
        for ns in namespaces:
            netns.delete(ns)
        for h in hosts:
            # systemd-nspawn removes this itself on a clean exit, not after SIGKILL.
            with contextlib.suppress(OSError):
                Path(f"/run/systemd/nspawn/propagate/{h.machine}").rmdir()
        # By name, not from the state: a crash may have lost the state file.
        for machine in lab_cgroup_machines(name):
            nspawn.remove_cgroups(machine)
        shutil.rmtree(d, ignore_errors=True)
    if d.exists():
        raise LabError(f"could not remove {d}; remove it by hand")


def lab_cgroup_machines(name: str) -> list[str]:
    """The machines of lab `name` (`sl-<name>-h<N>`) that have cgroups on this machine."""
    own = re.compile(rf"sl-{re.escape(name)}-h\d+")
    return sorted(m for m in nspawn.cgroup_machines() if own.fullmatch(m))


def _kill_inside(namespaces: Sequence[str]) -> None:
    """SIGKILL processes still inside the lab's network namespaces (a host's processes whose
    nspawn PID was never recorded, or commands left running on the operator side)."""
    wanted = set()
    for ns in namespaces:
        with contextlib.suppress(OSError):
            wanted.add(f"net:[{os.stat(f'/run/netns/{ns}').st_ino}]")
    if not wanted:
        return
    victims = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(entry.name) != os.getpid() and os.readlink(entry / "ns/net") in wanted:
                victims.append(int(entry.name))
        except OSError:
            continue
    nspawn.stop([(pid, nspawn.start_time(pid)) for pid in victims], timeout=0)


def _unmount_under(d: Path) -> None:
    """Unmount anything mounted under the lab's folder in this mount namespace."""
    prefix = str(d) + "/"
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == str(d) or point.startswith(prefix):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
