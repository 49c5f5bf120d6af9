"""`down`: remove a lab entirely (processes, namespaces, mounts, files), also a half-made or
crashed one whose state file is damaged or gone."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from sealos_lab import limits, netns, nspawn, servers
from sealos_lab.drivers import DRIVERS, HostDriver
from sealos_lab.names import LabError, check_name, owns_namespace
from sealos_lab.paths import lab_dir, limits_record, releases_dir
from sealos_lab.state import Lab, LabHost, global_lock, list_labs, require_root


def down(name: str = "default") -> None:
    """Remove lab `name` entirely: processes, namespaces, mounts, files. Works on a half-made or
    crashed lab, and on a lab that is already gone (then it does nothing)."""
    require_root()
    check_name(name)
    d = lab_dir(name)
    hosts: list[LabHost] = []
    driver: Optional[HostDriver] = None
    with contextlib.suppress(Exception):
        lab = Lab.load(name)
        hosts = lab.hosts
        driver = lab.driver
    # The lab's release mirror and registry (sealos_lab.releases), by their recorded PIDs.
    servers.stop_recorded(releases_dir(name) / "state.json")
    if driver is not None:
        # Stopping hosts takes seconds (VMs up to 20): other labs may come and go meanwhile.
        driver.stop(hosts)
    with global_lock():
        namespaces = [ns for ns in netns.list_netns() if owns_namespace(name, ns)]
        _kill_inside(namespaces)
        _unmount_under(d)
        for ns in namespaces:
            netns.delete(ns)
        # Every kind's: the state that says which kind this lab was may be lost.
        for driver in DRIVERS.values():
            driver.remove_leftovers(name, hosts)
        shutil.rmtree(d, ignore_errors=True)
        if not list_labs():
            # The last lab is gone: the kernel limits the labs raised go back to what they were.
            limits.restore(limits_record())
    if d.exists():
        raise LabError(f"could not remove {d}; remove it by hand")


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
