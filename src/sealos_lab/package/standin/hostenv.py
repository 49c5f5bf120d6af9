"""The host a stand-in runs on: file paths, services, ports, name resolution, logging.

Production: real paths and systemd. Test mode, for running several "hosts" on one machine:
- SEALOS_STANDIN_ROOT=/some/dir prefixes every path the stand-ins own (/etc/kubernetes,
  /var/lib/kubelet, /var/lib/etcd, /etc/systemd/system, /usr/bin, /run/sealos-lab, /var/log/...).
  Paths a user passes (--config, -f, --kubeconfig) are used as given.
- SEALOS_STANDIN_NO_SYSTEMD=1 starts services as background processes with a pid file under
  <root>/run/sealos-lab/<unit>.pid and a log under <root>/var/log/sealos-lab/<unit>.log.
Name resolution is always the system's (getaddrinfo), so /etc/hosts of the mount namespace counts.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from .embedded import BUILT_AS_SCRIPT, PACKAGE_VERSION, PROGRAM

APISERVER_UNIT = "sealos-lab-kube-apiserver"
KUBELET_UNIT = "kubelet"
STANDIN_MARK = "sealos-lab stand-in"


def standin_root() -> str:
    """The test-mode path prefix ("" in production)."""
    return os.environ.get("SEALOS_STANDIN_ROOT", "").rstrip("/")


def host_path(path: str) -> Path:
    """A path the stand-ins own, under SEALOS_STANDIN_ROOT when that is set."""
    return Path(standin_root() + path)


def without_systemd() -> bool:
    """True when services run as background processes instead of systemd units."""
    return os.environ.get("SEALOS_STANDIN_NO_SYSTEMD") == "1"


def header_line() -> str:
    """The line every stand-in run prints first, so nobody mistakes it for Kubernetes."""
    return f"# {STANDIN_MARK} {PROGRAM} {PACKAGE_VERSION} \u2014 not Kubernetes"


def log(component: str, message: str) -> None:
    """One klog-style line on stderr (the journal under systemd)."""
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
    sys.stderr.write(f"I{stamp} {os.getpid():7d} {component}] {message}\n")
    sys.stderr.flush()


def write_private(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Write a file atomically with the given mode (0600 for anything holding a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(tmp, flags, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def self_command(program: str) -> list[str]:
    """argv that runs another stand-in program of this package."""
    if BUILT_AS_SCRIPT:
        here = Path(os.path.abspath(sys.argv[0])).parent
        return [sys.executable, str(here / program)]
    return [sys.executable, "-m", "sealos_lab.package.standin", program]


def self_path() -> str:
    """Absolute path of the running stand-in (what a systemd unit should execute)."""
    return os.path.abspath(sys.argv[0])


class ServiceError(Exception):
    """A service could not be started or stopped."""


def _pid_file(unit: str) -> Path:
    return host_path(f"/run/sealos-lab/{unit}.pid")


def _log_file(unit: str) -> Path:
    return host_path(f"/var/log/sealos-lab/{unit}.log")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
        if state == "Z":
            return False
    return True


def _read_pid(unit: str) -> Optional[int]:
    try:
        pid = int(_pid_file(unit).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # A recycled pid belongs to someone else: only our own marker counts.
    if f"--sealos-lab-unit={unit}".encode() not in cmdline:
        return None
    return pid if _pid_alive(pid) else None


def _systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ServiceError(f"systemctl {' '.join(args)}: {result.stderr.strip()}")
    return result


def service_active(unit: str) -> bool:
    """Whether the unit (or its background-process stand-in) is running."""
    if without_systemd():
        return _read_pid(unit) is not None
    return _systemctl("is-active", "--quiet", unit, check=False).returncode == 0


def service_restart(unit: str, argv: list[str], env: Optional[dict[str, str]] = None) -> None:
    """systemctl restart UNIT, or (test mode) stop the old process and start argv in background.

    argv is only used in test mode; under systemd the unit file says what runs.
    """
    if not without_systemd():
        _systemctl("daemon-reload", check=False)
        _systemctl("restart", unit)
        return
    service_stop(unit)
    log_path = _log_file(unit)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _pid_file(unit).parent.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ)
    child_env.update(env or {})
    with open(log_path, "ab") as log_handle:
        child = subprocess.Popen(
            [*argv, f"--sealos-lab-unit={unit}"],
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env,
            close_fds=True,
        )
    write_private(_pid_file(unit), f"{child.pid}\n", 0o644)
    # What ran, so a test (playing systemd) can start the unit again after stopping it.
    record = {"argv": [*argv, f"--sealos-lab-unit={unit}"], "env": env or {}}
    write_private(_pid_file(unit).with_suffix(".argv"), json.dumps(record), 0o644)


def service_stop(unit: str, timeout: float = 10.0) -> None:
    """systemctl stop UNIT, or (test mode) SIGTERM the recorded process and wait for it."""
    if not without_systemd():
        _systemctl("stop", unit, check=False)
        return
    pid = _read_pid(unit)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        _pid_file(unit).unlink()


def service_enable(unit: str, enable: bool = True) -> None:
    """systemctl enable/disable (nothing to do in test mode)."""
    if not without_systemd():
        _systemctl("enable" if enable else "disable", unit, check=False)


def daemon_reload() -> None:
    """systemctl daemon-reload after writing or removing a unit file."""
    if not without_systemd():
        _systemctl("daemon-reload", check=False)


def systemd_usable() -> bool:
    """Whether systemctl can manage units here (PID 1 is systemd)."""
    return without_systemd() or Path("/run/systemd/system").is_dir()


def port_in_use(port: int, host: str = "0.0.0.0") -> bool:
    """True when a TCP listener already holds the port."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    finally:
        probe.close()
    return False


def resolve_host(host: str) -> list[str]:
    """Addresses of a name the way the host resolves it (/etc/hosts first, as glibc does)."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    return addresses


def node_hostname() -> str:
    """The node name kubeadm and the kubelet default to (lowercased hostname)."""
    return socket.gethostname().lower()


def _ip_json(*args: str) -> list[dict[str, Any]]:
    try:
        out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=False)
        data = json.loads(out.stdout or "[]")
    except (OSError, ValueError):
        return []
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _addr_infos(link: dict[str, Any]) -> list[dict[str, Any]]:
    infos = link.get("addr_info") or []
    return [info for info in infos if isinstance(info, dict)]


def default_route_address() -> Optional[str]:
    """IPv4 address of the interface holding the default route, like kubeadm's auto-detection."""
    for route in _ip_json("-4", "route", "show", "default"):
        dev = route.get("dev")
        if not isinstance(dev, str):
            continue
        for link in _ip_json("-4", "addr", "show", "dev", dev):
            for addr in _addr_infos(link):
                if addr.get("scope") == "global":
                    return str(addr["local"])
    return None


def first_global_address() -> Optional[str]:
    """Some global IPv4 address of this host (lab hosts have no default route)."""
    for link in _ip_json("-4", "addr", "show", "scope", "global"):
        for addr in _addr_infos(link):
            if addr.get("local"):
                return str(addr["local"])
    return None


def local_addresses() -> set[str]:
    """All IPv4 addresses configured on this host."""
    found = {"127.0.0.1"}
    for link in _ip_json("-4", "addr", "show"):
        for addr in _addr_infos(link):
            if addr.get("local"):
                found.add(str(addr["local"]))
    return found
