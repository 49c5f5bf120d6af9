"""Several stand-in "hosts" on this machine: network namespaces on a private bridge, test mode.

For testing the package's stand-ins without lab hosts: each host is a network namespace with its
own address on an isolated bridge (no route out), its own file tree (SEALOS_STANDIN_ROOT) and its
own /etc/hosts (ip netns exec bind-mounts /etc/netns/<ns>/hosts). Services run as background
processes (SEALOS_STANDIN_NO_SYSTEMD=1) whose pid files `down()` uses to stop them. Needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .standin.hostprobe import write_prepared_host
from .standin.versions import parse_kube_version

CRI_SOCKET = "/run/containerd/containerd.sock"


class CriSocketServer:
    """A unix socket that answers like a gRPC server (an HTTP/2 SETTINGS frame): the container
    runtime of a test-mode host, as much as kubeadm's CRI check and the kubelet ask of it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        folder = os.open(path.parent, os.O_PATH)
        try:  # through /proc/self/fd: test roots can be deeper than sun_path allows
            self.listener.bind(f"/proc/self/fd/{folder}/{path.name}")
        finally:
            os.close(folder)
        self.listener.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2.0)
                conn.recv(64)
                conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")

    def close(self) -> None:
        """Stop answering and remove the socket (the runtime is gone)."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass
class NamespaceHost:
    """One namespace host."""

    name: str
    netns: str
    address: str
    root: Path
    kube: Path
    extra_addresses: list[str] = field(default_factory=list)


def _ip(*args: str, netns: Optional[str] = None, check: bool = True) -> None:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    subprocess.run(cmd, check=check, capture_output=True)


class NetnsTestbed:
    """A bridge namespace and N host namespaces running the stand-ins of one package."""

    def __init__(
        self, prefix: str, count: int, workdir: Path, package: Path, python: str = "python3"
    ) -> None:
        self.prefix = prefix
        self.workdir = workdir
        self.package = package
        self.python = python
        self.switch = f"{prefix}-sw"
        self.subnet = "10.213.7"
        self.runtimes: dict[str, CriSocketServer] = {}
        self.hosts = [
            NamespaceHost(
                name=f"h{i}",
                netns=f"{prefix}-h{i}",
                address=f"{self.subnet}.{10 + i}",
                root=workdir / f"h{i}" / "root",
                kube=workdir / f"h{i}" / "pkg" / "kube",
            )
            for i in range(1, count + 1)
        ]

    def up(self) -> NetnsTestbed:
        """Create namespaces, bridge, veths and addresses; unpack the package on every host."""
        _ip("netns", "add", self.switch)
        _ip("link", "add", "br0", "type", "bridge", netns=self.switch)
        _ip("link", "set", "br0", "up", netns=self.switch)
        _ip("link", "set", "lo", "up", netns=self.switch)
        for index, host in enumerate(self.hosts, 1):
            _ip("netns", "add", host.netns)
            _ip("link", "set", "lo", "up", netns=host.netns)
            peer = f"v{index}"
            _ip(
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                self.switch,
                netns=host.netns,
            )
            _ip("link", "set", peer, "master", "br0", netns=self.switch)
            _ip("link", "set", peer, "up", netns=self.switch)
            _ip("addr", "add", f"{host.address}/24", "dev", "eth0", netns=host.netns)
            _ip("link", "set", "eth0", "up", netns=host.netns)
            host.root.mkdir(parents=True, exist_ok=True)
            with tarfile.open(self.package) as archive:
                archive.extractall(host.kube.parent, filter="data")
            self.set_hosts(host, {})
            self.prepare_host(host)
        return self

    def prepare_host(self, host: NamespaceHost) -> None:
        """Make the host meet kubeadm's preconditions (hostprobe.write_prepared_host) with a
        containerd answering on its socket, on the cgroup driver the package's kubeadm gives
        the kubelet by default (systemd from 1.22, cgroupfs before)."""
        version = parse_kube_version((host.kube / "version").read_text().strip())
        driver = "systemd" if version is None or version.minor >= 22 else "cgroupfs"
        write_prepared_host(host.root, cgroup_driver=driver)
        self.runtimes[host.name] = CriSocketServer(Path(str(host.root) + CRI_SOCKET))

    def set_hosts(self, host: NamespaceHost, entries: dict[str, str]) -> None:
        """The host's /etc/hosts (as seen by processes run in its namespace)."""
        path = Path("/etc/netns") / host.netns / "hosts"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", f"{host.address} {host.name}"]
        lines += [f"{ip} {name}" for name, ip in entries.items()]
        path.write_text("\n".join(lines) + "\n")

    def add_address(self, host: NamespaceHost, address: str) -> None:
        """A second address on the host's interface (same /24)."""
        _ip("addr", "add", f"{address}/24", "dev", "eth0", netns=host.netns)
        host.extra_addresses.append(address)

    def env(self, host: NamespaceHost) -> dict[str, str]:
        return {
            "SEALOS_STANDIN_ROOT": str(host.root),
            "SEALOS_STANDIN_NO_SYSTEMD": "1",
            "HOME": str(host.root / "root"),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }

    def run(
        self,
        host: NamespaceHost,
        argv: list[str],
        env: Optional[dict[str, str]] = None,
        timeout: float = 120.0,
        stdin: Optional[str] = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the host's namespace with the test-mode environment."""
        full_env = {**self.env(host), **(env or {})}
        assignments = [f"{k}={v}" for k, v in full_env.items()]
        cmd = ["ip", "netns", "exec", host.netns, "env", "-i", *assignments, *argv]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, input=stdin, check=False
        )

    def tool(
        self,
        host: NamespaceHost,
        program: str,
        *args: str,
        env: Optional[dict[str, str]] = None,
        timeout: float = 120.0,
        stdin: Optional[str] = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubeadm/kubectl/kubelet of the host's unpacked package."""
        return self.run(
            host, [self.python, str(host.kube / "bin" / program), *args], env, timeout, stdin
        )

    def pids(self, host: NamespaceHost) -> dict[str, int]:
        """Running stand-in services of a host (unit -> pid)."""
        found = {}
        for pid_file in (host.root / "run" / "sealos-lab").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(pid_file.read_text().strip())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if f"--sealos-lab-unit={pid_file.stem}".encode() in cmdline:
                    found[pid_file.stem] = pid
        return found

    def start_service(self, host: NamespaceHost, unit: str) -> int:
        """Start a stopped unit again the way it last ran (what `systemctl start` would do)."""
        record = json.loads((host.root / "run" / "sealos-lab" / f"{unit}.argv").read_text())
        env = {**self.env(host), **record["env"]}
        assignments = [f"{k}={v}" for k, v in env.items()]
        log_path = host.root / "var" / "log" / "sealos-lab" / f"{unit}.log"
        with open(log_path, "ab") as log_handle:
            # ip netns exec and env exec the command: the child's pid is the service's pid.
            child = subprocess.Popen(
                ["ip", "netns", "exec", host.netns, "env", "-i", *assignments, *record["argv"]],
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (host.root / "run" / "sealos-lab" / f"{unit}.pid").write_text(f"{child.pid}\n")
        return child.pid

    def kill_service(self, host: NamespaceHost, unit: str, sig: int = signal.SIGTERM) -> None:
        """Signal one service and wait until it is gone (a crash with SIGKILL)."""
        pid = self.pids(host).get(unit)
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and _not_zombie(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop_services(self, host: NamespaceHost) -> None:
        """SIGTERM (then SIGKILL) the services this testbed's stand-ins started on a host."""
        pids = list(self.pids(host).values())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and _not_zombie(p)]
            time.sleep(0.05)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def down(self) -> None:
        """Stop every service, delete namespaces, /etc/netns entries and the work directory."""
        for host in self.hosts:
            self.stop_services(host)
        for runtime in self.runtimes.values():
            runtime.close()
        for host in self.hosts:
            _ip("netns", "del", host.netns, check=False)
            shutil.rmtree(Path("/etc/netns") / host.netns, ignore_errors=True)
        _ip("netns", "del", self.switch, check=False)
        with contextlib.suppress(OSError):
            Path("/etc/netns").rmdir()  # only when no one else uses it
        shutil.rmtree(self.workdir, ignore_errors=True)


def _not_zombie(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    return False


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_idle(version: str, hosts: int, seconds: float, workdir: Path) -> dict[str, float]:
    """Form a cluster (1 master + workers), then CPU % of every stand-in service while idle."""
    from .builder import build

    package = build(version, workdir / "kube.tar.gz")
    bed = NetnsTestbed(f"lpi{os.getpid() % 10000}", hosts, workdir / "hosts", package)
    try:
        bed.up()
        master = bed.hosts[0]
        for host in bed.hosts:
            bed.run(host, ["sh", str(host.kube / "shell" / "init.sh")])
            bed.set_hosts(host, {"apiserver.cluster.local": master.address})
        init = bed.tool(
            master, "kubeadm", "init", f"--apiserver-advertise-address={master.address}",
            "--control-plane-endpoint=apiserver.cluster.local:6443", "--node-name=h1",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(init.stderr)
        words = init.stdout.split()
        token = words[words.index("--token") + 1]
        pin = words[words.index("--discovery-token-ca-cert-hash") + 1]
        for host in bed.hosts[1:]:
            joined = bed.tool(
                host, "kubeadm", "join", f"{master.address}:6443", "--token", token,
                "--discovery-token-ca-cert-hash", pin, f"--node-name={host.name}",
            )  # fmt: skip
            if joined.returncode != 0:
                raise RuntimeError(joined.stderr)
        time.sleep(3)
        pids = {f"{h.name}/{unit}": pid for h in bed.hosts for unit, pid in bed.pids(h).items()}
        before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        return {
            name: 100.0 * (_cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()
        }
    finally:
        bed.down()


def main(argv: Optional[list[str]] = None) -> int:
    """python -m sealos_lab.package.testbed idle [--version V] [--hosts N] [--seconds S]."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m sealos_lab.package.testbed")
    parser.add_argument("what", choices=["idle"])
    parser.add_argument("--version", default="v1.20.15")
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lab-package-idle-") as tmp:
        usage = measure_idle(args.version, args.hosts, args.seconds, Path(tmp))
    for name, percent in sorted(usage.items()):
        print(f"{name:40s} {percent:6.2f} % CPU")
    print(f"{'total':40s} {sum(usage.values()):6.2f} % CPU over {args.seconds:g} s idle")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
