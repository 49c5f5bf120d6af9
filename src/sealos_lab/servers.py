"""Server processes of the lab (the release mirror's HTTP server, the registry): started on an
address inside a lab network namespace (or on 127.0.0.1), known by PID and start time, stopped
by that PID only. Ready means the process itself listens on its port (read from
/proc/PID/net/tcp, which shows the sockets of the process's own network namespace)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from sealos_lab import netns, nspawn

_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


class ServerError(RuntimeError):
    """A server did not come up; str() says which, and the end of its log."""


@dataclass
class Server:
    """A running server: what it is, where it listens, and the process to stop."""

    name: str
    address: str
    port: int
    pid: int
    pid_start: Optional[int]
    log: str
    netns: Optional[str] = None

    @property
    def endpoint(self) -> str:
        """ADDR:PORT."""
        return f"{self.address}:{self.port}"

    def alive(self) -> bool:
        """True while the process we started still runs."""
        return nspawn.alive(self.pid, self.pid_start)

    def to_dict(self) -> dict[str, Any]:
        """For a state file."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Server:
        """From a state file."""
        return cls(**data)


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at `address` now (in this process's namespace)."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def listening(pid: int, port: int) -> bool:
    """True when a socket in `pid`'s network namespace listens on TCP `port`."""
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            return False
        for line in lines:
            fields = line.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def start(
    name: str,
    argv: Sequence[str],
    address: str,
    port: int,
    log: Path,
    in_netns: Optional[str] = None,
    timeout: float = 20.0,
) -> Server:
    """Start `argv` (inside `in_netns` when given), output to `log`; return once it listens on
    `port`. ServerError with the log's end when it exits or does not listen in time."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        if in_netns:
            # `ip netns exec` execs the command: the PID is the server's own.
            proc = netns.popen(
                in_netns, argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        else:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
    server = Server(name, address, port, proc.pid, nspawn.start_time(proc.pid), str(log), in_netns)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(
                f"{name} exited with code {proc.returncode} before listening on "
                f"{server.endpoint}: {_tail(log)}"
            )
        if listening(proc.pid, port):
            return server
        time.sleep(0.05)
    stop(server)
    raise ServerError(
        f"{name} did not listen on {server.endpoint} within {timeout:.0f}s: {_tail(log)}"
    )


def stop(server: Server, timeout: float = 5.0) -> None:
    """SIGTERM the server's process (SIGKILL after `timeout`); nothing else is signalled."""
    nspawn.stop([(server.pid, server.pid_start)], timeout=timeout)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace").strip()[-600:] or "(no output)"
    except OSError:
        return "(no log)"


def save(path: Path, running: Sequence[Server], **extra: Any) -> None:
    """Record servers (and `extra` facts) in a JSON state file, so another process can stop them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**extra, "servers": [s.to_dict() for s in running]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def stop_recorded(path: Path) -> list[Server]:
    """Stop, by recorded PID and start time, every server a state file lists; a missing or
    damaged file stops nothing. Returns the servers that were listed."""
    try:
        listed = [Server.from_dict(s) for s in json.loads(path.read_text()).get("servers", [])]
    except (OSError, ValueError, TypeError):
        return []
    nspawn.stop([(s.pid, s.pid_start) for s in listed], timeout=5.0)
    return listed
