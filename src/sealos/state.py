"""The cluster state: one YAML file, `$SEALOS_HOME/config.yaml` (default ~/.sealos), mode 0600.

It holds the settings `init` used (never a password, token or certificate key), every member with
its role, IP and hostname, and the pinned SSH host keys. `join` and `clean` start from it.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from sealos.errors import SealosError

HOME_ENV = "SEALOS_HOME"
STATE_FILE = "config.yaml"
LOCK_FILE = "config.yaml.lock"  # held (flock) by the run that may change the state
FORMAT = 1


def make_private_dir(path: Path) -> None:
    """Create `path` and any missing parent, each 0700 (mkdir's `mode` applies to the last one
    only, so `~/.sealos` made as the parent of `logs/` was 0755). Folders that already exist are
    left as they are: SEALOS_HOME may name a folder that is not sealos's to tighten."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another run made it in between; it made it 0700 too
        os.chmod(folder, 0o700)  # the umask may have taken bits away; never adds any here


def sealos_home() -> Path:
    """$SEALOS_HOME, else ~/.sealos."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".sealos"


@dataclass
class Member:
    """One host of the cluster as recorded."""

    address: str  # as the user typed it, e.g. 10.0.0.2 or 10.0.0.2:2222
    role: str  # master | node
    ip: str = ""
    hostname: str = ""
    status: str = ""  # "" = in the cluster; "joining" = `sealos join` started but did not finish

    def to_dict(self) -> dict[str, Any]:
        """Plain form for YAML."""
        data = {
            "address": self.address,
            "role": self.role,
            "ip": self.ip,
            "hostname": self.hostname,
        }
        if self.status:
            data["status"] = self.status
        return data


@dataclass
class ClusterState:
    """What is known about the cluster between runs."""

    settings: dict[str, Any] = field(default_factory=dict)  # file-form spec settings, no secrets
    members: list[Member] = field(default_factory=list)
    host_keys: dict[str, str] = field(default_factory=dict)  # HostAddress.key -> OpenSSH key
    status: str = "new"  # installing | ready
    package_sha256: Optional[str] = None
    cgroup_driver: Optional[str] = None  # the kubelets' (rendered at init from the runtimes')
    created: str = ""
    updated: str = ""

    @property
    def masters(self) -> list[Member]:
        """Masters in order, the first master first."""
        return [m for m in self.members if m.role == "master"]

    @property
    def nodes(self) -> list[Member]:
        """Worker nodes."""
        return [m for m in self.members if m.role == "node"]

    def to_dict(self) -> dict[str, Any]:
        """Plain form for YAML."""
        return {
            "format": FORMAT,
            "status": self.status,
            "created": self.created,
            "updated": self.updated,
            "packageSha256": self.package_sha256,
            "cgroupDriver": self.cgroup_driver,
            "settings": self.settings,
            "members": [m.to_dict() for m in self.members],
            "hostKeys": dict(self.host_keys),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterState:
        """Read the plain form back."""
        members = [
            Member(
                str(m["address"]),
                str(m["role"]),
                str(m.get("ip", "")),
                str(m.get("hostname", "")),
                str(m.get("status") or ""),
            )
            for m in data.get("members") or []
        ]
        return cls(
            settings=dict(data.get("settings") or {}),
            members=members,
            host_keys={str(k): str(v) for k, v in (data.get("hostKeys") or {}).items()},
            status=str(data.get("status", "new")),
            package_sha256=data.get("packageSha256"),
            cgroup_driver=data.get("cgroupDriver") or None,
            created=str(data.get("created", "")),
            updated=str(data.get("updated", "")),
        )


class StateStore:
    """Loads and saves the state file atomically (fsync'ed) with mode 0600; `lock` keeps other
    runs from changing it until this process ends or calls `unlock`."""

    def __init__(self, home: Optional[Path] = None) -> None:
        self.home = home or sealos_home()
        self.path = self.home / STATE_FILE
        self._lock_fd: Optional[int] = None

    def lock(self, what: str) -> None:
        """Hold the state's lock for this run (`what` says which command: shown to a second
        run); a SealosError naming the holder when another run has it. Idempotent."""
        if self._lock_fd is not None:
            return
        make_private_dir(self.home)
        path = self.home / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 500, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise SealosError(
                f"another sealos run holds the cluster state {self.path} ({holder}); wait for "
                "it to finish, then run again."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what}, since {time.strftime('%H:%M:%S')}".encode(), 0)
        self._lock_fd = fd
        _LOCKED.add(self)

    def unlock(self) -> None:
        """Let other runs change the state again (the lock file stays; idempotent)."""
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)  # closing the file releases the flock
            self._lock_fd = None
        _LOCKED.discard(self)

    def load(self) -> Optional[ClusterState]:
        """The saved state, or None when there is none yet."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise SealosError(
                f"cannot read {self.path} ({e.strerror}); check its permissions."
            ) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            raise SealosError(
                f"{self.path} is not valid YAML; fix or move it away and run again."
            ) from None
        if not isinstance(data, dict):
            raise SealosError(
                f"{self.path} is not a sealos state file; move it away and run again."
            )
        return ClusterState.from_dict(data)

    def save(self, state: ClusterState) -> None:
        """Write the state (0600, directory 0700), replacing the old file in one step."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        state.created = state.created or now
        state.updated = now
        make_private_dir(self.home)
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# sealos cluster state: written by sealos, holds no passwords or tokens.\n")
            yaml.safe_dump(state.to_dict(), f, sort_keys=False, default_flow_style=False)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the state
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        _fsync_dir(self.home)  # and the rename itself survives a crash

    def remove(self) -> bool:
        """Delete the state file (after `clean --all`); True when there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as e:
            raise SealosError(
                f"cannot remove {self.path} ({e.strerror}); check its permissions."
            ) from None
        _fsync_dir(self.home)
        return True


_LOCKED: set[StateStore] = set()


def unlock_all() -> None:
    """Release every state lock this process holds (a command ends, also by an error)."""
    for store in list(_LOCKED):
        store.unlock()


def _fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename or unlink in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
