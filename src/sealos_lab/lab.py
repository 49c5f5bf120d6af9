"""A lab: several real SSH hosts on this machine, on an isolated bridge with no route out.

Each host is a systemd-nspawn container (default) or a QEMU VM (`vm=True`, real IPVS) in its own
network namespace, with its own hostname, SSH host keys, root password and the lab's key. The
operator side is the bridge's namespace (`Lab.operator_netns`, address .1).

Python API (tests and the demo use it): `up()`, `Lab.load()`, `down()`; `Lab.exec()` runs inside a
host, `Lab.run()` on the operator side. State lives in `lab_dir(name)/state.json` (mode 0600, no
secrets); the root password and the private key sit beside it in their own 0600 files.

Where things are: `state` (the `Lab` record, its files, running commands), `names`, `addresses`,
`credentials` (password, keys, known_hosts, ssh config), `hostfiles` (a host's own files),
`drivers` (nspawn containers and QEMU VMs behind one `HostDriver`), `readiness`, `bringup` (`up`)
and `teardown` (`down`). This module gathers the public names.
"""

from __future__ import annotations

from sealos_lab import netns, nspawn
from sealos_lab.bringup import MAX_HOSTS, up
from sealos_lab.drivers.nspawn import lab_cgroup_machines
from sealos_lab.names import LabError, check_hostname, check_name, owns_namespace
from sealos_lab.paths import STATE
from sealos_lab.state import PASSWORD_FILE, STATE_FILE, Lab, LabHost, list_labs
from sealos_lab.teardown import down

__all__ = [
    "MAX_HOSTS",
    "PASSWORD_FILE",
    "STATE",
    "STATE_FILE",
    "Lab",
    "LabError",
    "LabHost",
    "check_hostname",
    "check_name",
    "down",
    "lab_cgroup_machines",
    "list_labs",
    "netns",
    "nspawn",
    "owns_namespace",
    "up",
]
