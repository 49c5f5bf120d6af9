"""What a kind of lab host must do: the one interface the lab talks to, whatever runs the host."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Optional

from sealos_lab import netns, nspawn

if TYPE_CHECKING:
    from sealos_lab.state import Lab, LabHost


class HostDriver(ABC):
    """Boots, stops and enters one kind of lab host. Stateless: everything a host needs to be
    found again (PID, start time, tap) is in its `LabHost` record."""

    kind: ClassVar[str]
    # How long `up` waits by default for a host to answer SSH with systemd booted.
    ready_timeout: ClassVar[float]

    # ---- making a host ----------------------------------------------------------------------
    @abstractmethod
    def host_netns(self, lab: Lab, host_name: str) -> str:
        """The network namespace the host's network card is in."""

    def host_mac(self, subnet: str, number: int) -> Optional[str]:
        """The MAC the host's network card gets, when the lab chooses it."""
        return None

    def check_available(self) -> None:
        """LabError when this kind of host cannot run in this build or on this machine."""
        return None  # nothing, unless a kind says otherwise

    @abstractmethod
    def files_dir(self, lab: Lab, h: LabHost) -> Path:
        """The folder holding the host's own files (hostname, keys, ...)."""

    def refresh_files(self, lab: Lab, h: LabHost, lower: Path) -> None:
        """Bring the files of a host made before up to date with its record (e.g. its hostname)
        before it boots again."""
        return None  # nothing, unless a kind says otherwise

    @abstractmethod
    def attach(self, net: netns.Network, h: LabHost, index: int) -> None:
        """Join the host to the lab's network with host part `index` (idempotent)."""

    # ---- running it -------------------------------------------------------------------------
    @abstractmethod
    def boot(self, lab: Lab, h: LabHost) -> int:
        """Start the host's process (its files and network are ready); return its PID."""

    def start(self, lab: Lab, h: LabHost, lock: threading.Lock) -> None:
        """Boot the host and record its PID at once (so `down` finds it after a crash)."""
        lab.host_dir(h).mkdir(parents=True, exist_ok=True)
        pid = self.boot(lab, h)
        with lock:
            h.pid, h.pid_start = pid, nspawn.start_time(pid)
            lab.save()

    def is_running(self, h: LabHost) -> bool:
        """True when the host's recorded process is still the one we started."""
        return h.pid is not None and nspawn.alive(h.pid, h.pid_start)

    @abstractmethod
    def exec_argv(self, lab: Lab, h: LabHost, argv: Sequence[str], tty: bool) -> list[str]:
        """The command line (to run on this machine) that runs `argv` as root in the running
        host."""

    @abstractmethod
    def console_log(self, lab: Lab, h: LabHost) -> Path:
        """The host's console log: what to read when it does not come up."""

    # ---- stopping it ------------------------------------------------------------------------
    def stop(self, hosts: Sequence[LabHost]) -> None:
        """Stop the hosts' processes by recorded PID: SIGTERM, then SIGKILL."""
        nspawn.stop([(h.pid, h.pid_start) for h in hosts if h.pid])

    def release(self, h: LabHost) -> None:
        """Free what a stopped host still holds outside the lab's folder and namespaces."""
        return None  # nothing, unless a kind says otherwise

    def remove_leftovers(self, name: str, hosts: Sequence[LabHost]) -> None:
        """Remove what hosts of this kind of lab `name` may have left outside the lab's folder
        and namespaces, also when a crash lost the lab's state (then `hosts` is empty)."""
        return None  # nothing, unless a kind says otherwise
