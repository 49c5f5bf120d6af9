"""Whether a lab's hosts are up: sshd's banner seen from the operator side, and systemd finished
booting inside; when a host does not come up, the end of its console log says why."""

from __future__ import annotations

import concurrent.futures
import contextlib
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from sealos_lab import netns
from sealos_lab.names import LabError

if TYPE_CHECKING:
    from sealos_lab.state import Lab, LabHost

_PROBE = r"""
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[1])
pending = list(sys.argv[2:])
while True:
    for ip in list(pending):
        try:
            with socket.create_connection((ip, 22), timeout=0.5) as s:
                s.settimeout(3)
                if s.recv(64).startswith(b"SSH-"):
                    pending.remove(ip)
                    print(ip, flush=True)
        except OSError:
            pass
    if not pending or time.monotonic() > deadline:
        break
    time.sleep(0.05)
"""


def probe_ssh(lab: Lab, ips: Sequence[str], timeout: float) -> list[str]:
    """The addresses among `ips` whose sshd sends its banner to the operator side in time."""
    if not ips or not netns.exists(lab.operator_netns):
        return []
    proc = subprocess.run(
        lab.run_argv([sys.executable, "-c", _PROBE, str(timeout), *ips]),
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    return proc.stdout.split()


def wait_ready(lab: Lab, hosts: Sequence[LabHost], timeout: Optional[float]) -> None:
    """Wait until every host's sshd answers from the operator side and its systemd finished
    booting (running or degraded); LabError naming the first host that did not."""
    if timeout is None:
        timeout = lab.driver.ready_timeout
    deadline = time.monotonic() + timeout

    def systemd_ready(h: LabHost) -> Optional[str]:
        last = ""
        while time.monotonic() < deadline:
            if not lab.is_running(h.name):
                return f"host {h.name} stopped while booting; {console_hint(lab, h)}"
            try:
                proc = lab.exec(
                    h.name,
                    ["systemctl", "is-system-running", "--wait"],
                    timeout=max(1.0, deadline - time.monotonic()),
                )
                said = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
                last = said[-1] if said else ""
            except (subprocess.TimeoutExpired, RuntimeError, LabError) as e:
                last = str(e)
            if last in ("running", "degraded"):
                return None
            time.sleep(0.1)
        return f"host {h.name} did not finish booting in {timeout:.0f} s (systemd says {last!r})"

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        futures = [pool.submit(systemd_ready, h) for h in hosts]
        answered = set(probe_ssh(lab, [h.ip for h in hosts], max(1.0, timeout)))
        problems = [f.result() for f in futures]
    for h, problem in zip(hosts, problems):
        if problem:
            raise LabError(problem)
        if h.ip not in answered:
            raise LabError(
                f"host {h.name} ({h.ip}) booted but its sshd did not answer in {timeout:.0f} s; "
                f"{console_hint(lab, h)}"
            )


def console_hint(lab: Lab, h: LabHost) -> str:
    """The last lines of the host's console log, or where that log is."""
    log = lab.driver.console_log(lab, h)
    tail = ""
    with contextlib.suppress(OSError):
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        tail = " | ".join(lines[-3:])
    return f"its console log ends with: {tail}" if tail else f"see {log}"
