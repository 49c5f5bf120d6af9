"""Lab hosts as systemd-nspawn containers (see `sealos_lab.nspawn`): an overlay over the cached
rootfs, a network namespace of its own joined to the lab's bridge by a veth pair."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sealos_lab import hostfiles, hostlayers, netns, nspawn
from sealos_lab.drivers.base import HostDriver
from sealos_lab.names import owns_machine

if TYPE_CHECKING:
    from sealos_lab.state import Lab, LabHost


class NspawnDriver(HostDriver):
    """Containers sharing this machine's kernel: they boot in about 2 s, without IPVS."""

    kind = "nspawn"
    ready_timeout = 60.0

    def host_netns(self, lab: Lab, host_name: str) -> str:
        return f"{lab.prefix}-{host_name}"

    def files_dir(self, lab: Lab, h: LabHost) -> Path:
        # The overlay's upper dir: the host's own files, and every change made inside it.
        return lab.host_dir(h) / "upper"

    def refresh_files(self, lab: Lab, h: LabHost, lower: Path) -> None:
        hostfiles.rename(self.files_dir(lab, h), lower, h.hostname)

    def attach(self, net: netns.Network, h: LabHost, index: int) -> None:
        net.add_host(h.name, index)

    def boot(self, lab: Lab, h: LabHost) -> int:
        log = lab.host_dir(h) / "console.log"
        lowers = hostlayers.ensure_layers(h.runtime, h.sudo)
        return nspawn.start(h.machine, lowers, self.files_dir(lab, h), h.netns, log)

    def exec_argv(self, lab: Lab, h: LabHost, argv: Sequence[str], tty: bool) -> list[str]:
        assert h.pid is not None
        term = [f"TERM={os.environ.get('TERM', 'xterm')}"] if tty else []
        return nspawn.exec_argv(nspawn.init_pid(h.pid), argv, env=term)

    def console_log(self, lab: Lab, h: LabHost) -> Path:
        return lab.host_dir(h) / "console.log"

    def release(self, h: LabHost) -> None:
        nspawn.remove_cgroups(h.machine)

    def remove_leftovers(self, name: str, hosts: Sequence[LabHost]) -> None:
        for h in hosts:
            # systemd-nspawn removes this itself on a clean exit, not after SIGKILL.
            with contextlib.suppress(OSError):
                Path(f"/run/systemd/nspawn/propagate/{h.machine}").rmdir()
        # By name, not from the state: a crash may have lost the state file.
        for machine in lab_cgroup_machines(name):
            nspawn.remove_cgroups(machine)


def lab_cgroup_machines(name: str) -> list[str]:
    """The machines of lab `name` (`sl-<name>-h<N>`) that have cgroups on this machine."""
    return sorted(m for m in nspawn.cgroup_machines() if owns_machine(name, m))
