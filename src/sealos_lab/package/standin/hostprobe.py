"""What the stand-ins read about the host they judge: binaries, /proc values, CPUs, memory, the
container runtime's socket and cgroup driver, services. One seam, so tests can fake a host.

`host_probe()` reads the real host, or, in test mode, a host laid out under SEALOS_STANDIN_ROOT:
files at their usual paths below the root (/proc/swaps, /proc/meminfo, /proc/sys/...,
/sys/devices/system/cpu/online), executables in the PATH directories below the root (run as
they are, so a fake `containerd` or `docker` is a script), the runtime's unix socket below the
root, and (no systemd there) service states in <root>/run/sealos-lab/services.json
(`{"docker": {"enabled": true, "active": false}}`). `write_prepared_host` lays out a host that
meets every precondition (the namespace testbed uses it).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path
from typing import Optional

from .hostenv import standin_root, without_systemd

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# HTTP/2 connection preface and an empty SETTINGS frame: what a gRPC client sends first.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_H2_SETTINGS = 0x4


def socket_path(endpoint: str) -> str:
    """/run/containerd/containerd.sock of "unix:///run/containerd/containerd.sock" (or a path)."""
    return endpoint[len("unix://") :] if endpoint.startswith("unix://") else endpoint


def connect_unix(conn: socket.socket, path: str) -> None:
    """conn.connect(path), also for paths longer than sun_path allows (test roots can be deep):
    through the directory's /proc/self/fd entry."""
    if len(path.encode()) < 100:
        conn.connect(path)
        return
    folder = os.open(os.path.dirname(path), os.O_PATH)
    try:
        conn.connect(f"/proc/self/fd/{folder}/{os.path.basename(path)}")
    finally:
        os.close(folder)


class HostProbe:
    """Reads one host: the real one (root "") or one laid out under a directory."""

    def __init__(self, root: str = "") -> None:
        self.root = root.rstrip("/")

    def path(self, path: str) -> Path:
        return Path(self.root + path)

    def read(self, path: str) -> Optional[str]:
        """The file's text, None when it does not exist or can't be read."""
        try:
            return self.path(path).read_text()
        except OSError:
            return None

    def which(self, name: str) -> Optional[str]:
        """Full path of an executable found on PATH (below the root), like exec.LookPath."""
        for directory in (os.environ.get("PATH") or DEFAULT_PATH).split(":"):
            candidate = self.path(f"{directory or '.'}/{name}")
            try:
                mode = candidate.stat().st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and mode & 0o111:
                return str(candidate)
        return None

    def run(self, argv: list[str], timeout: float = 20.0) -> tuple[int, str]:
        """(exit code, stdout+stderr) of a host command; 127 and Go's message when not found."""
        found = self.which(argv[0])
        if found is None:
            return 127, f'exec: "{argv[0]}": executable file not found in $PATH'
        try:
            done = subprocess.run(
                [found, *argv[1:]],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 1, str(exc)
        return done.returncode, done.stdout + done.stderr

    def swap_lines(self) -> list[str]:
        """Active swap areas (the lines of /proc/swaps after its header)."""
        text = self.read("/proc/swaps") or ""
        return [line for line in text.splitlines()[1:] if line.strip()]

    def cpus(self) -> int:
        """Online CPUs (/sys/devices/system/cpu/online, e.g. "0-1" -> 2)."""
        text = (self.read("/sys/devices/system/cpu/online") or "").strip()
        count = 0
        for part in filter(None, text.split(",")):
            first, _, last = part.partition("-")
            count += int(last or first) - int(first) + 1
        return count or (os.cpu_count() or 1)

    def mem_mb(self) -> int:
        """MemTotal in MB (1024*1024 bytes), what kubeadm's sysinfo-based Mem check counts."""
        for line in (self.read("/proc/meminfo") or "").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
        return 0

    def cri_problem(self, endpoint: str) -> Optional[str]:
        """None when a gRPC (HTTP/2) server answers on the runtime's unix socket, else gRPC's
        words for why not."""
        path = socket_path(endpoint)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(3.0)
        try:
            connect_unix(conn, str(self.path(path)))
            conn.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        except FileNotFoundError:
            return f"dial unix {path}: connect: no such file or directory"
        except ConnectionRefusedError:
            return f"dial unix {path}: connect: connection refused"
        except OSError as exc:
            return f"dial unix {path}: {exc.strerror or exc}"
        finally:
            conn.close()
        if len(head) < 9 or head[3] != _H2_SETTINGS:
            return f"{path}: the server does not speak HTTP/2 (gRPC)"
        return None

    def services(self) -> Optional[dict[str, dict[str, bool]]]:
        """Service states recorded for a host without systemd (test mode), else None."""
        if not (self.root or without_systemd()):
            return None
        try:
            data = json.loads(self.read("/run/sealos-lab/services.json") or "{}")
        except ValueError:
            data = {}
        return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}

    def service(self, unit: str) -> tuple[bool, bool, bool]:
        """(exists, enabled, active) of a systemd service."""
        recorded = self.services()
        if recorded is not None:
            entry = recorded.get(unit)
            if entry is None:
                return False, False, False
            return True, bool(entry.get("enabled")), bool(entry.get("active"))
        shown = subprocess.run(
            ["systemctl", "show", "-p", "LoadState,UnitFileState,ActiveState", f"{unit}.service"],
            capture_output=True,
            text=True,
            check=False,
        )
        props = dict(line.partition("=")[::2] for line in shown.stdout.splitlines())
        exists = props.get("LoadState") == "loaded"
        return (
            exists,
            props.get("UnitFileState") == "enabled",
            props.get("ActiveState") == "active",
        )

    def runtime_cgroup_driver(self, endpoint: str) -> tuple[str, Optional[str], str]:
        """(runtime, driver or None, problem) of the runtime behind endpoint, read as the
        installer reads it: `containerd config dump` (SystemdCgroup = true => systemd, else
        cgroupfs) or `docker info --format {{.CgroupDriver}}`. Other runtimes: ("", None, "")."""
        if "containerd" in endpoint:
            code, output = self.run(["containerd", "config", "dump"])
            if code != 0:
                return "containerd", None, output.strip()
            systemd = any(
                line.split("=", 1)[0].strip() == "SystemdCgroup"
                and line.split("=", 1)[1].strip() == "true"
                for line in output.splitlines()
                if "=" in line
            )
            return "containerd", "systemd" if systemd else "cgroupfs", ""
        if "docker" in endpoint:
            code, output = self.run(["docker", "info", "--format", "{{.CgroupDriver}}"])
            if code != 0:
                return "docker", None, output.strip()
            return "docker", output.strip(), ""
        return "", None, ""


def host_probe() -> HostProbe:
    """The probe of this host (below SEALOS_STANDIN_ROOT in test mode)."""
    return HostProbe(standin_root())


PREPARED_TOOLS = [
    "conntrack",
    "crictl",
    "ip",
    "iptables",
    "mount",
    "nsenter",
    "ebtables",
    "ethtool",
    "socat",
    "tc",
    "touch",
]


def write_prepared_host(root: Path, cgroup_driver: str = "systemd", cpus: int = 2) -> None:
    """Lay out, below root, a host that meets kubeadm's preconditions: sysctls at 1, no swap,
    enough CPUs and memory, every tool kubeadm looks for, and containerd and docker (scripts
    answering `config dump` and `info` with the given cgroup driver). Its socket,
    /run/containerd/containerd.sock, is served by the caller (`testbed.CriSocketServer`)."""
    (root / "run").mkdir(parents=True, exist_ok=True)
    if not (root / "var" / "run").exists():
        (root / "var").mkdir(parents=True, exist_ok=True)
        (root / "var" / "run").symlink_to("../run")  # as on Debian
    files = {
        "/proc/sys/net/ipv4/ip_forward": "1\n",
        "/proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
        "/proc/swaps": "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        "/proc/meminfo": "MemTotal:        4028440 kB\n",
        "/sys/devices/system/cpu/online": f"0-{cpus - 1}\n" if cpus > 1 else "0\n",
        "/run/sealos-lab/services.json": json.dumps(
            {"containerd": {"enabled": 1, "active": 1}, "docker": {"enabled": 1, "active": 1}}
        ),
    }
    for path, text in files.items():
        target = Path(str(root) + path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    bin_dir = root / "usr" / "sbin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in PREPARED_TOOLS:
        (bin_dir / tool).write_text(f"#!/bin/sh\n# test-mode stand-in for {tool}\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    systemd = "true" if cgroup_driver == "systemd" else "false"
    (bin_dir / "containerd").write_text(
        "#!/bin/sh\n# test-mode stand-in for containerd: `config dump` only\n"
        f"printf '[plugins]\\n  SystemdCgroup = {systemd}\\n'\n"
    )
    (bin_dir / "containerd").chmod(0o755)
    # docker for the dockershim socket (up to 1.23): `docker info` answers, with its cgroup driver
    (bin_dir / "docker").write_text(
        f"#!/bin/sh\n# test-mode stand-in for docker: `info` only\necho {cgroup_driver}\n"
    )
    (bin_dir / "docker").chmod(0o755)
