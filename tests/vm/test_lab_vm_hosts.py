"""VM hosts (`vm.start_host`): two TCG VMs on an isolated bridge, reachable by SSH key, with real
IPVS inside and their own hostnames (issue 3, #2, at the API level)."""

from __future__ import annotations

import concurrent.futures
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealos_lab import vm
from sealos_lab.netns import Network

pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.lab]

PREFIX = "vmt"
SUBNET = "10.250.120.0/24"
NAMES = ("one", "two")
BOOT_TIMEOUT = 420.0


@dataclass
class Booted:
    name: str
    ip: str
    pid: int
    workdir: Path


@dataclass
class VmPair:
    net: Network
    key: Path
    hosts: list[Booted]


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)


def _files(root: Path, hostname: str, pubkey: str) -> Path:
    """What the hosts helper gives a VM host: hostname, host keys, root's authorized key."""
    (root / "etc/ssh").mkdir(parents=True)
    (root / "root/.ssh").mkdir(parents=True)
    (root / "root/.ssh").chmod(0o700)
    (root / "etc/hostname").write_text(hostname + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n")
    _keygen(root / "etc/ssh/ssh_host_ed25519_key")
    auth = root / "root/.ssh/authorized_keys"
    auth.write_text(pubkey)
    auth.chmod(0o600)
    return root


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmPair]:
    if os.geteuid() != 0:
        pytest.skip("VM hosts need root (namespaces, taps, qemu)")
    base = tmp_path_factory.mktemp("vmhosts")
    key = base / "id_ed25519"
    _keygen(key)
    pubkey = (base / "id_ed25519.pub").read_text()
    net = Network(PREFIX, SUBNET)
    net.destroy()  # a network left over by a crashed run
    booted: list[Booted] = []
    try:
        net.create()
        for index, name in enumerate(NAMES, start=10):
            tap = net.add_tap(name, index)
            workdir = base / name
            pid = vm.start_host(
                name=f"{PREFIX}-{name}",
                files=_files(base / f"files-{name}", f"{PREFIX}-{name}", pubkey),
                ip_cidr=f"{tap.ip}/{tap.prefixlen}",
                mac=f"52:54:00:fa:78:{index:02x}",
                netns=net.switch_ns,
                tap=tap.ifname,
                workdir=workdir,
            )
            booted.append(Booted(name, tap.ip, pid, workdir))
        # Both VMs boot at once; wait for their sshd in parallel.
        with concurrent.futures.ThreadPoolExecutor(len(booted)) as pool:
            waits = [pool.submit(vm.wait_ssh, h.ip, net.switch_ns, BOOT_TIMEOUT) for h in booted]
            for h, wait in zip(booted, waits):
                try:
                    wait.result()
                except TimeoutError as e:
                    tail = (h.workdir / "console.log").read_text(errors="replace")[-2000:]
                    raise AssertionError(f"{e}; console:\n{tail}") from e
        yield VmPair(net, key, booted)
    finally:
        with concurrent.futures.ThreadPoolExecutor(max(1, len(booted))) as pool:
            list(pool.map(lambda h: vm.stop_host(h.pid), booted))
        net.destroy()


def _ssh(pair: VmPair, host: Booted, command: str) -> subprocess.CompletedProcess:
    argv = [
        "ssh",
        "-i",
        str(pair.key),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=60",
        f"root@{host.ip}",
        command,
    ]
    return subprocess.run(
        ["ip", "netns", "exec", pair.net.switch_ns, *argv],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_ssh_by_key_and_distinct_hostnames(pair: VmPair) -> None:
    names = []
    for h in pair.hosts:
        proc = _ssh(pair, h, "hostname; ip -4 -o addr show scope global; ip route")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        names.append(lines[0])
        assert f"{h.ip}/24" in proc.stdout
        assert not any(line.startswith("default") for line in lines), proc.stdout
    assert names == [f"{PREFIX}-{n}" for n in NAMES]


def test_real_ipvs_inside(pair: VmPair) -> None:
    for h in pair.hosts:
        proc = _ssh(
            pair,
            h,
            "modprobe ip_vs && ipvsadm -A -t 10.96.0.1:443 -s rr && "
            "ipvsadm -a -t 10.96.0.1:443 -r 10.250.120.99:6443 -m && ipvsadm -Ln && uname -r",
        )
        assert proc.returncode == 0, proc.stderr
        assert "IP Virtual Server version" in proc.stdout
        assert "10.250.120.99:6443" in proc.stdout and "Masq" in proc.stdout
        assert proc.stdout.split()[-1].endswith("-cloud-amd64")


def test_host_files_keep_folder_modes_and_systemd_runs(pair: VmPair) -> None:
    h = pair.hosts[0]
    proc = _ssh(
        pair,
        h,
        "stat -c '%a %n' /root /root/.ssh /tmp /etc; systemctl is-system-running --wait; date +%s",
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1 = degraded, still booted
    lines = proc.stdout.splitlines()
    assert lines[:4] == ["700 /root", "700 /root/.ssh", "1777 /tmp", "755 /etc"], proc.stdout
    assert lines[4] in ("running", "degraded"), proc.stdout
    # The guest clock follows the host's (certificates made inside must be valid outside).
    assert abs(int(lines[5]) - time.time()) < 30


def test_hosts_reach_each_other(pair: VmPair) -> None:
    one, two = pair.hosts
    probe = (
        f"import socket; s = socket.create_connection(({two.ip!r}, 22), timeout=60); "
        "s.settimeout(60); print(s.recv(8).decode())"
    )
    proc = _ssh(pair, one, f"python3 -c {shlex.quote(probe)}")
    assert proc.stdout.strip() == "SSH-2.0-", proc.stdout + proc.stderr
