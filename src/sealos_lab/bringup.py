"""`up`: create a lab (or complete one), boot its hosts in parallel and wait until every host
answers SSH. A lab this call created and could not finish is removed whole."""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from sealos_lab import addresses, credentials, hostfiles, limits, netns, readiness
from sealos_lab.drivers import HostDriver, driver_for
from sealos_lab.names import LabError, check_hostname, check_name, machine_name
from sealos_lab.paths import lab_dir, limits_record
from sealos_lab.rootfs import ensure_rootfs, rootfs_path
from sealos_lab.state import (
    STATE_FILE,
    HostSpec,
    Lab,
    LabHost,
    _pick_subnet,
    global_lock,
    list_labs,
    require_root,
)
from sealos_lab.teardown import down

# 3 masters + 50 nodes and some: the kernel limits this needs are raised (`sealos_lab.limits`).
MAX_HOSTS = 60


def up(
    name: str = "default",
    hosts: int = 3,
    vm: bool = False,
    hostnames: Optional[Mapping[str, str]] = None,
    timeout: Optional[float] = None,
    log: Any = None,
    password: Optional[str] = None,
    runtime: str = "containerd",
    specs: Optional[Mapping[str, HostSpec]] = None,
) -> Lab:
    """Bring lab `name` up with `hosts` hosts (nspawn, or QEMU VMs with `vm=True`); return it
    when every host answers SSH. An existing lab keeps its hosts; missing ones are started.

    `hostnames` maps host names ("h1") to hostnames (the default is `<name>-h1`, ...); two hosts may
    share one. `log` is a callable taking one line of progress, or None. `password` sets root's
    password of a new lab (e.g. one with special characters); the default is a random one.
    `runtime` ("containerd", Debian's, running; or "none") is every new host's, unless `specs`
    gives a host ("h1") a `HostSpec` of its own (runtime, and a VM's memory, CPUs, cgroup v1).
    """
    require_root()
    check_name(name)
    if not 1 <= hosts <= MAX_HOSTS:
        raise LabError(f"--hosts {hosts} is out of range; choose 1 to {MAX_HOSTS}")
    driver = driver_for("vm" if vm else "nspawn")
    for hn in (hostnames or {}).values():
        check_hostname(hn)
    default_spec = HostSpec(runtime=runtime)
    for spec in [default_spec, *(specs or {}).values()]:
        problem = spec.problem(driver.kind)
        if problem:
            raise LabError(problem)
    say = log or (lambda line: None)
    if password is not None and (not password or "\n" in password or ":" in password):
        raise LabError("the lab password must be one non-empty line without ':'")

    lab, new = _create_or_load(name, driver, hosts, hostnames or {}, specs or {}, default_spec)
    try:
        lower = _prerequisites(driver, say)
        if password is not None and lab.password_path.exists() and lab.password != password:
            raise LabError(
                f"lab {name!r} already has another root password; "
                f"remove it with `sealos-lab down --name {name}` to choose a new one"
            )
        credentials.ensure_secrets(lab, password)
        with global_lock():
            limits.raise_for(_hosts_here(), limits_record(), log=say)
        net = netns.Network(lab.prefix, lab.subnet)
        net.create()
        lock = threading.Lock()
        todo = [h for h in lab.hosts if not lab.is_running(h.name)]
        if todo:
            say(f"starting {len(todo)} {lab.kind} host(s) of lab {name!r}")
        shadow = credentials.shadow_with_password(lower, lab.password)

        def prepare_and_boot(h: LabHost) -> None:
            files = driver.files_dir(lab, h)
            if not hostfiles.has_host_files(files):
                hostfiles.host_files(lab, h, files, lower, shadow)
            else:
                driver.refresh_files(lab, h, lower)
            driver.attach(net, h, addresses.host_index(int(h.name[1:])))
            driver.start(lab, h, lock)

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(todo) or 1)) as pool:
            list(pool.map(prepare_and_boot, todo))
        credentials.write_known_hosts(lab)
        credentials.write_ssh_config(lab)
        readiness.wait_ready(lab, lab.hosts, timeout)
    except BaseException:
        if new:
            # A lab this call created and could not finish is removed whole; the error says why.
            with contextlib.suppress(Exception):
                down(name)
        raise
    return lab


def _create_or_load(
    name: str,
    driver: HostDriver,
    count: int,
    hostnames: Mapping[str, str],
    specs: Mapping[str, HostSpec],
    default_spec: HostSpec,
) -> tuple[Lab, bool]:
    with global_lock():
        if (lab_dir(name) / STATE_FILE).exists():
            lab = Lab.load(name)
            if lab.kind != driver.kind:
                raise LabError(
                    f"lab {name!r} exists with {lab.kind} hosts; remove it with "
                    f"`sealos-lab down --name {name}` or pick another --name"
                )
            new = False
        else:
            shutil.rmtree(lab_dir(name), ignore_errors=True)  # leftovers of a lab without state
            lab = Lab(name=name, subnet=_pick_subnet(name), kind=driver.kind)
            new = True
        for i in range(len(lab.hosts) + 1, count + 1):
            hname = f"h{i}"
            spec = specs.get(hname, default_spec)
            lab.hosts.append(
                LabHost(
                    name=hname,
                    hostname=hostnames.get(hname, f"{name}-{hname}"),
                    ip=addresses.host_ip(lab.subnet, i),
                    kind=driver.kind,
                    netns=driver.host_netns(lab, hname),
                    machine=machine_name(name, hname),
                    mac=driver.host_mac(lab.subnet, i),
                    runtime=spec.runtime,
                    memory_mb=spec.memory_mb,
                    cpus=spec.cpus,
                    cgroup_v1=spec.cgroup_v1,
                    sudo=spec.sudo,
                )
            )
        for h in lab.hosts:
            if h.name in hostnames and not lab.is_running(h.name):
                h.hostname = hostnames[h.name]
        lab.save()
    return lab, new


def _hosts_here() -> int:
    """How many hosts the labs on this machine have (this one included)."""
    total = 0
    for other in list_labs():
        with contextlib.suppress(Exception):
            total += len(Lab.load(other).hosts)
    return total


def _prerequisites(driver: HostDriver, say: Any) -> Path:
    """The rootfs every host is made from (built once); and what the kind of host needs."""
    if not (rootfs_path().is_dir()):
        say("building the lab rootfs (once, about a minute)")
    lower = ensure_rootfs(quiet=True)
    driver.check_available()
    return lower
