"""The mission's lvscare demo on this machine: `python -m sealos_lab.lvscare_demo` (as root).

Three HTTP backends in network namespaces on an isolated bridge (no route out), lvscare caring for
VIP 10.103.97.12:6443 in a "node" namespace. Steps: start, stop one, stop all, start all; after
each, the kernel's rules (`nft list table ip lvscare`, or `ipvsadm -Ln` with IPVS) and a few
requests through the VIP. Everything it made is removed at the end, also on Ctrl-C.
Part of the lab (it builds its network with sealos_lab.netns); lvscare itself runs as a process.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from sealos_lab import netns

PREFIX, SUBNET = "lvs-demo", "10.250.102.0/24"
VIP, PORT = "10.103.97.12", 6443
RS_PORT = 8080
NAMES = ("rs1", "rs2", "rs3")

# One request through the VIP, run in the node namespace: prints the backend's page or the error.
_CLIENT = r"""
import socket, sys, time
start = time.monotonic()
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    print("answered by " + data.split(b"\r\n\r\n", 1)[-1].decode().strip(), end="")
except OSError as exc:
    print(f"failed: {exc.strerror or exc}", end="")
print(f" ({(time.monotonic() - start) * 1000:.0f} ms)")
"""


class Demo:
    """The network, the backends and lvscare, and how to show what the kernel holds."""

    def __init__(self, work: Path):
        self.work = work
        self.net = netns.Network(PREFIX, SUBNET)
        self.node = f"{PREFIX}-node"
        self.ips = {name: self.net.address(11 + i) for i, name in enumerate(NAMES)}
        self.servers: dict[str, subprocess.Popen] = {}
        self.care: Optional[subprocess.Popen] = None
        self.backend = "nft"

    def setup(self) -> None:
        self.net.destroy()
        self.net.create()
        self.net.add_host("node", 2)
        for name in NAMES:
            self.net.add_host(name, 11 + NAMES.index(name))
            site = self.work / name
            site.mkdir(exist_ok=True)
            (site / "index.html").write_text(f"{name}\n")

    def start(self, name: str) -> None:
        argv = [sys.executable, "-m", "http.server", "--bind", self.ips[name],
                "--directory", str(self.work / name), str(RS_PORT)]  # fmt: skip
        self.servers[name] = netns.popen(
            f"{PREFIX}-{name}", argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self, name: str) -> None:
        proc = self.servers.pop(name)
        proc.kill()
        proc.wait()

    def start_lvscare(self) -> None:
        argv = [sys.executable, "-m", "lvscare", "care", "--vs", f"{VIP}:{PORT}"]
        for ip in self.ips.values():
            argv += ["--rs", f"{ip}:{RS_PORT}"]
        argv += ["--health-schem", "http", "--health-path", "/", "--interval", "1s"]
        self.care = netns.popen(self.node, argv, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._echo, args=(self.care,), daemon=True).start()

    def _echo(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            found = re.search(r"with the (\w+) backend", line)
            if found:
                self.backend = found.group(1)
            message = line.split(" lvscare ", 1)[-1].rstrip()
            print(f"    lvscare | {message}", flush=True)

    def rules(self) -> str:
        if self.backend == "ipvs":
            argv = ["ipvsadm", "-Ln", "-t", f"{VIP}:{PORT}"]
        else:
            argv = ["nft", "list", "table", "ip", "lvscare"]
        out = netns.run(self.node, argv, capture_output=True, text=True)
        return out.stdout.rstrip() or "(no rules)"

    def targets(self) -> int:
        """How many real servers take new connections, as the kernel says."""
        text = self.rules()
        if self.backend == "ipvs":
            return len(re.findall(r"->\s+[\d.]+:\d+\s+Masq\s+[1-9]", text))
        m = re.search(r"numgen inc mod (\d+)", text)
        return int(m.group(1)) if m else 0

    def request(self) -> str:
        out = netns.run(
            self.node, [sys.executable, "-c", _CLIENT, VIP, str(PORT)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return out.stdout.strip()

    def teardown(self) -> None:
        if self.care is not None and self.care.poll() is None:
            self.care.send_signal(signal.SIGTERM)
            try:
                self.care.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.care.kill()
                self.care.wait()
        if self.net.namespaces():
            netns.run(
                self.node, [sys.executable, "-m", "lvscare", "care", "--vs", f"{VIP}:{PORT}",
                            "--clean"], capture_output=True,
            )  # fmt: skip
        for name in list(self.servers):
            self.stop(name)
        self.net.destroy()


def _wait(cond: Callable[[], bool], limit: float = 20.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if cond():
            break
        time.sleep(0.1)
    return time.monotonic() - start


def _show(demo: Demo, title: str, took: float, requests: int) -> None:
    time.sleep(0.3)  # let lvscare's log lines of this step print first
    print(f"\n=== {title} (rules changed within {took:.1f} s) ===")
    print(f"--- {'ipvsadm -Ln' if demo.backend == 'ipvs' else 'nft list table ip lvscare'} ---")
    print(demo.rules())
    print(f"--- {requests} requests to {VIP}:{PORT} ---")
    for _ in range(requests):
        print("  " + demo.request())
    sys.stdout.flush()


def _port_open(ip: str, demo: Demo) -> bool:
    code = f"import socket; socket.create_connection(({ip!r}, {RS_PORT}), timeout=0.5).close()"
    proc = netns.run(demo.node, [sys.executable, "-c", code], capture_output=True)
    return proc.returncode == 0


def main() -> int:
    """Run the demo; returns the exit code."""
    if os.geteuid() != 0:
        print("lvscare demo: it creates network namespaces and kernel rules: run it as root.")
        return 1
    socket.setdefaulttimeout(5)
    with tempfile.TemporaryDirectory(prefix="lvscare-demo-") as tmp:
        demo = Demo(Path(tmp))
        try:
            print(f"Setting up: node + {', '.join(NAMES)} on an isolated bridge ({SUBNET}).")
            demo.setup()
            for name in NAMES:
                demo.start(name)
            _wait(lambda: all(_port_open(ip, demo) for ip in demo.ips.values()))
            print(f"Starting lvscare care --vs {VIP}:{PORT} --rs <rs1..rs3>:{RS_PORT} ...")
            demo.start_lvscare()
            took = _wait(lambda: demo.targets() == 3)
            _show(demo, "start: three backends", took, 6)

            print("\nStopping rs2 ...")
            demo.stop("rs2")
            took = _wait(lambda: demo.targets() == 2 and demo.ips["rs2"] not in demo.rules())
            _show(demo, "stop one: rs2's rule is gone, the VIP still answers", took, 4)

            print("\nStopping rs1 and rs3 ...")
            demo.stop("rs1")
            demo.stop("rs3")
            took = _wait(lambda: demo.targets() == 0 and demo.ips["rs1"] not in demo.rules())
            _show(demo, "stop all: no usable real server, connections are refused", took, 2)

            print("\nStarting all three again ...")
            for name in NAMES:
                demo.start(name)
            took = _wait(lambda: demo.targets() == 3)
            _show(demo, "start all: all three are back", took, 6)
        except KeyboardInterrupt:
            print("\nInterrupted: cleaning up.")
            return 130
        finally:
            demo.teardown()
            print("\nCleaned up: lvscare stopped, its rules removed, namespaces deleted.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
