"""Lab hosts as QEMU (TCG) VMs with Debian's kernel (see `sealos_lab.vm`): real IPVS, slower to
boot; each on a tap on the lab's bridge, with its files copied over / at its first boot."""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from sealos_lab import addresses, hostlayers, netns
from sealos_lab.drivers.base import HostDriver
from sealos_lab.names import LabError

if TYPE_CHECKING:
    from sealos_lab.state import Lab, LabHost

# Enough for kubeadm's control-plane checks (MemTotal >= 1700 MB, 2 CPUs); TCG allocates guest
# memory as it is touched, so an idle host costs far less. HostSpec changes them per host.
MEMORY_MB = 2048
CPUS = 2


def _vm_module() -> Any:
    try:
        vm = importlib.import_module("sealos_lab.vm")
    except ImportError:
        raise LabError("VM hosts are not available in this build; use nspawn hosts") from None
    return vm


class VMDriver(HostDriver):
    """Virtual machines under software emulation, on taps in the operator's namespace."""

    kind = "vm"
    ready_timeout = 600.0

    def host_netns(self, lab: Lab, host_name: str) -> str:
        return lab.operator_netns

    def host_mac(self, subnet: str, number: int) -> Optional[str]:
        return addresses.vm_mac(subnet, number)

    def check_available(self) -> None:
        _vm_module()

    def files_dir(self, lab: Lab, h: LabHost) -> Path:
        # Copied over the VM's / at its first boot; later changes live on the VM's disk.
        return lab.host_dir(h) / "files"

    def attach(self, net: netns.Network, h: LabHost, index: int) -> None:
        h.tap = net.add_tap(h.name, index).ifname

    def boot(self, lab: Lab, h: LabHost) -> int:
        vm = _vm_module()
        workdir = lab.host_dir(h) / "vm"
        files = self.files_dir(lab, h)
        if (workdir / "disk.qcow2").exists():
            # A restart: the VM's disk has its files already, and changes made inside since
            # (an /etc/hosts entry, say) must survive, so nothing is copied over / again.
            files = lab.host_dir(h) / "no-files"
            files.mkdir(exist_ok=True)
        pid: int = vm.start_host(
            h.machine,
            files,
            addresses.host_cidr(lab.subnet, h.ip),
            h.mac,
            lab.operator_netns,
            h.tap,
            workdir,
            memory_mb=h.memory_mb or MEMORY_MB,
            gateway=None,
            cpus=h.cpus or CPUS,
            cgroup_v1=h.cgroup_v1,
            layers=hostlayers.ensure_layers(h.runtime, h.sudo)[1:],
        )
        return pid

    def exec_argv(self, lab: Lab, h: LabHost, argv: Sequence[str], tty: bool) -> list[str]:
        return lab.run_argv(lab.ssh_argv(h.name, argv, tty=tty))

    def console_log(self, lab: Lab, h: LabHost) -> Path:
        return lab.host_dir(h) / "vm" / "console.log"

    def stop(self, hosts: Sequence[LabHost]) -> None:
        """Power the VMs off through their ACPI button (in parallel), then stop what remains
        by PID."""
        running = [h for h in hosts if h.pid and self.is_running(h)]
        if running:
            with contextlib.suppress(LabError):
                vm = _vm_module()
                with concurrent.futures.ThreadPoolExecutor(max_workers=len(running)) as pool:
                    list(pool.map(lambda h: vm.stop_host(h.pid), running))
        super().stop(hosts)
