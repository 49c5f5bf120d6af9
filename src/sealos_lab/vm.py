"""QEMU (TCG) virtual machines with Debian's cloud kernel: the only place with real IPVS here.

Two kinds:
- `run(share, command)`: one throwaway VM, no network card, `share` mounted at /mnt/share, runs
  one command as root (IPVS modules loaded) and reports its output and exit code. About 10 s.
- `start_host(...)` / `stop_host(pid)`: a long-lived VM host booting systemd and sshd, on a tap in
  a lab namespace, with its own files (hostname, keys, ...) copied over / at boot.

Both boot the cached root image read-only (qemu `snapshot=on`, or a qcow2 overlay per host).
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TextIO

from sealos_lab.kernel import ensure_kernel
from sealos_lab.vmimage import ensure_initramfs, ensure_root_image, make_ext4

QEMU = "qemu-system-x86_64"
# Exit codes of `run` when the command did not finish (same meaning as timeout(1)'s 124).
TIMEOUT_RC = 124
VM_FAILED_RC = 125


@dataclass
class VmResult:
    """What a `run` produced: the command's exit code and its stdout+stderr."""

    returncode: int
    output: str
    timed_out: bool = False
    seconds: float = 0.0


def _qemu_base(memory_mb: int, cpus: int = 1) -> list[str]:
    """Flags every lab VM shares: software emulation with a small code cache, no default devices."""
    return [
        QEMU,
        "-accel",
        "tcg,tb-size=64",
        "-cpu",
        "max",
        "-smp",
        str(cpus),
        "-m",
        str(memory_mb),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-vga",
        "none",
        "-device",
        "virtio-rng-pci",
    ]


def _kernel_args(kernel_path: Path, initrd: Path, append: str) -> list[str]:
    return ["-kernel", str(kernel_path), "-initrd", str(initrd), "-append", append]


def _disk(path: Path, serial: str, fmt: str = "raw", extra: str = "") -> list[str]:
    spec = f"file={path},format={fmt},if=none,id={serial}" + (f",{extra}" if extra else "")
    return ["-drive", spec, "-device", f"virtio-blk-pci,drive={serial},serial={serial}"]


def _die_with_parent() -> None:
    """In the qemu child of `run`: get SIGKILL when the Python process that waits for it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _parse(raw: str, token: str) -> tuple[Optional[int], str]:
    """The command's exit code (None if it never finished) and its output, from the serial log."""
    text = raw.replace("\r\n", "\n")
    begin = f"===SEALOS-LAB-BEGIN-{token}===\n"
    end = f"\n===SEALOS-LAB-END-{token} rc="
    start = text.find(begin)
    if start < 0:
        return None, ""
    body = text[start + len(begin) :]
    stop = body.find(end)
    if stop < 0:
        return None, body
    tail = body[stop + len(end) :].split("===", 1)[0]
    try:
        return int(tail), body[:stop]
    except ValueError:
        return None, body[:stop]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class _Follow:
    """Copies what the command writes between the markers to `sink` while the VM runs."""

    def __init__(self, path: Path, token: str, sink: TextIO):
        self.path, self.sink = path, sink
        self.begin = f"===SEALOS-LAB-BEGIN-{token}===\n"
        self.end = f"\n===SEALOS-LAB-END-{token} rc="
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.offset, self.buf, self.state = 0, "", "before"

    def poll(self, final: bool = False) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return
        self.offset += len(data)
        self.buf += self.decoder.decode(data, final=final)
        if self.state == "before":
            at = self.buf.find(self.begin)
            if at < 0:
                self.buf = self.buf[-len(self.begin) :]
                return
            self.buf, self.state = self.buf[at + len(self.begin) :], "during"
        if self.state == "during":
            at = self.buf.find(self.end)
            if at >= 0:
                self._emit(self.buf[:at])
                self.buf, self.state = "", "after"
            elif final:
                self._emit(self.buf)
                self.buf = ""
            elif len(self.buf) > len(self.end):
                # Hold back a possible start of the end marker.
                self._emit(self.buf[: -len(self.end)])
                self.buf = self.buf[-len(self.end) :]

    def _emit(self, text: str) -> None:
        if text:
            self.sink.write(text)
            self.sink.flush()


def run(
    share: Path,
    command: str,
    timeout: float = 300.0,
    memory_mb: int = 512,
    stream: Optional[TextIO] = None,
) -> VmResult:
    """Boot one VM with `share` at /mnt/share, run `command` there as root, return rc and output.

    A command still running after `timeout` seconds is killed with its VM; the result then has
    `timed_out=True` and returncode 124. A VM that fails to boot gives returncode 125; in both
    cases `output` ends with a line saying so. With `stream`, the command's output is also
    written there as it comes (and the closing line goes to stderr). Files the command writes
    under /mnt/share stay in the VM (the folder is copied in, never back).
    """
    share = Path(share)
    if not share.is_dir():
        raise ValueError(f"vm-run: {share} is not a folder; pass an existing directory to share")
    started = time.monotonic()
    kernel = ensure_kernel()
    initrd = ensure_initramfs(kernel)
    root = ensure_root_image(kernel)
    token = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="sealos-vm-run-") as tmpdir:
        tmp = Path(tmpdir)
        share_img = make_ext4(share, tmp / "share.img", label="share")
        cmd_file = tmp / "command"
        cmd_file.write_text(command)
        console, output, qemu_log = tmp / "console.log", tmp / "output.log", tmp / "qemu.log"
        argv = [
            *_qemu_base(memory_mb),
            "-no-reboot",
            *_kernel_args(
                kernel.vmlinuz,
                initrd,
                f"console=ttyS0 quiet loglevel=3 panic=-1 lab.mode=run lab.token={token}",
            ),
            *_disk(root, "lab-root", extra="snapshot=on"),
            *_disk(share_img, "lab-share"),
            "-fw_cfg",
            f"name=opt/sealos-lab/command,file={cmd_file}",
            "-serial",
            f"file:{console}",
            "-serial",
            f"file:{output}",
        ]
        # The temporary overlay of snapshot=on goes to TMPDIR: keep it inside our folder.
        env = {**os.environ, "TMPDIR": str(tmp)}
        follow = _Follow(output, token, stream) if stream is not None else None
        with qemu_log.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,
            )
            timed_out = False
            deadline = time.monotonic() + timeout
            while True:
                try:
                    proc.wait(timeout=0.25 if follow else max(0.0, deadline - time.monotonic()))
                    break
                except subprocess.TimeoutExpired:
                    if follow:
                        follow.poll()
                    if time.monotonic() >= deadline:
                        timed_out = True
                        proc.kill()
                        proc.wait()
                        break
        if follow:
            follow.poll(final=True)
        rc, text = _parse(output.read_text(errors="replace") if output.exists() else "", token)
        seconds = time.monotonic() - started
        if timed_out:
            note = f"vm-run: timed out after {timeout:g} s; the VM was killed\n"
            timed, rc = True, TIMEOUT_RC
        elif rc is None:
            note = (
                f"vm-run: the VM stopped before the command finished (qemu exit "
                f"{proc.returncode}).\n{_tail(qemu_log)}\n--- console ---\n{_tail(console)}\n"
            )
            timed, rc = False, VM_FAILED_RC
        else:
            return VmResult(rc, text, False, seconds)
        if stream is not None:
            print(note, end="", file=sys.stderr)
        sep = "\n" if text and not text.endswith("\n") else ""
        return VmResult(rc, text + sep + note, timed, seconds)


def main_vm_run(dir: str, cmd: list[str], timeout: float = 3600.0) -> int:
    """CLI body of `sealos-lab vm-run DIR -- CMD`: stream the output, return the exit code."""
    share = Path(dir)
    if not share.is_dir():
        print(
            f"vm-run: {dir} is not a folder; pass an existing directory to share", file=sys.stderr
        )
        return 2
    if not cmd:
        print("vm-run: no command given; write it after `--`", file=sys.stderr)
        return 2
    # One word is taken as a shell command line; several are quoted and joined.
    command = cmd[0] if len(cmd) == 1 else shlex.join(cmd)
    try:
        result = run(share, command, timeout=timeout, stream=sys.stdout)
    except (RuntimeError, OSError) as e:
        print(f"vm-run: could not start the VM: {e}", file=sys.stderr)
        return VM_FAILED_RC
    return result.returncode


# --- VM hosts -------------------------------------------------------------------------------


_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def _qmp_path(workdir: Path) -> Path:
    """The VM's QMP socket: in its workdir unless that path is too long for a unix socket."""
    path = workdir.resolve() / "qmp.sock"
    if len(str(path)) < 100:
        return path
    short = Path("/run/sealos-lab/qmp") / (hashlib.sha256(str(path).encode()).hexdigest()[:16])
    short.parent.mkdir(parents=True, exist_ok=True)
    return short


def start_host(
    name: str,
    files: Path,
    ip_cidr: str,
    mac: str,
    netns: str,
    tap: str,
    workdir: Path,
    memory_mb: int = 384,
    gateway: Optional[str] = None,
    cpus: int = 1,
    cgroup_v1: bool = False,
    layers: Optional[list[Path]] = None,
) -> int:
    """Boot a VM host (systemd, sshd) on tap `tap` in namespace `netns`; return qemu's PID.

    `files` is copied over / at boot (hostname, keys, ...); the NIC with `mac` gets `ip_cidr`.
    Console log: workdir/console.log; disk: a qcow2 overlay in workdir over the shared image of
    the rootfs and `layers`. `cgroup_v1` boots systemd on the legacy hierarchy
    (systemd.unified_cgroup_hierarchy=0), which kubelets before 1.25 need.
    """
    # These go onto the kernel command line: refuse anything that is not plainly what it says.
    try:
        ipaddress.ip_interface(ip_cidr)
        if gateway:
            ipaddress.ip_address(gateway)
    except ValueError as e:
        raise ValueError(f"VM host {name}: {e}") from None
    if not _MAC_RE.match(mac):
        raise ValueError(f"VM host {name}: {mac!r} is not a MAC address like 52:54:00:12:34:56")
    kernel = ensure_kernel()
    initrd = ensure_initramfs(kernel)
    root = ensure_root_image(kernel, layers)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    disk = workdir / "disk.qcow2"
    if not disk.exists():
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(root), "-F", "raw", str(disk)],
            check=True,
        )
    files_img = make_ext4(Path(files), workdir / "files.img", free_bytes=4 << 20, label="files")
    pidfile = workdir / "qemu.pid"
    pidfile.unlink(missing_ok=True)
    qmp = _qmp_path(workdir)
    append = (
        f"console=ttyS0 quiet loglevel=3 net.ifnames=0 lab.mode=host lab.mac={mac} lab.ip={ip_cidr}"
    )
    if gateway:
        append += f" lab.gw={gateway}"
    if cgroup_v1:
        append += " systemd.unified_cgroup_hierarchy=0"
    argv = [
        *_qemu_base(memory_mb, cpus),
        "-name",
        name,
        *_kernel_args(kernel.vmlinuz, initrd, append),
        # The overlay is throwaway (the lab deletes it on `down`): skip host flushes.
        *_disk(disk, "lab-root", fmt="qcow2", extra="cache=unsafe"),
        *_disk(files_img, "lab-files", extra="readonly=on"),
        "-netdev",
        f"tap,id=net0,ifname={tap},script=no,downscript=no",
        "-device",
        f"virtio-net-pci,netdev=net0,mac={mac}",
        "-serial",
        f"file:{workdir / 'console.log'}",
        "-qmp",
        f"unix:{qmp},server=on,wait=off",
        "-pidfile",
        str(pidfile),
        "-daemonize",
    ]
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, cwd=workdir
    )
    if proc.returncode != 0:
        raise RuntimeError(f"VM host {name}: qemu did not start: {proc.stderr.strip()}")
    return int(pidfile.read_text().strip())


def _qemu_cmdline(pid: int) -> Optional[list[str]]:
    """The argv of process `pid` if it is a qemu, else None (never signal a reused PID)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if not argv or not os.path.basename(argv[0]).startswith("qemu-system"):
        return None
    return argv


def _alive(pid: int) -> bool:
    return _qemu_cmdline(pid) is not None and not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _qmp_powerdown(sock_path: str) -> bool:
    """Press the VM's ACPI power button through its QMP socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(sock_path)
            reader = s.makefile("rb")
            reader.readline()  # greeting
            for command in ("qmp_capabilities", "system_powerdown"):
                s.sendall(json.dumps({"execute": command}).encode() + b"\n")
                while True:
                    reply = json.loads(reader.readline() or b"{}")
                    if "return" in reply or "error" in reply or not reply:
                        break
            return True
    except (OSError, ValueError):
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def stop_host(pid: int, timeout: float = 20) -> None:
    """Power a VM host off cleanly (ACPI button) within `timeout` s, else kill it by PID."""
    argv = _qemu_cmdline(pid)
    if argv is None:
        return
    qmp = None
    for i, arg in enumerate(argv[:-1]):
        if arg == "-qmp" and argv[i + 1].startswith("unix:"):
            qmp = argv[i + 1][len("unix:") :].split(",")[0]
    if not (qmp and _qmp_powerdown(qmp) and _wait_gone(pid, timeout)):
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            if not _alive(pid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if _wait_gone(pid, wait):
                break
    if qmp and not _alive(pid):
        Path(qmp).unlink(missing_ok=True)


# Reads the banner patiently: under emulation every connection costs sshd a fork and an exec
# (a second or more of guest CPU), so a probe that gives up early and retries only adds load.
_BANNER_PROBE = r"""
import socket, sys, time
ip, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        with socket.create_connection((ip, 22), timeout=5) as s:
            s.settimeout(max(5.0, deadline - time.monotonic()))
            if s.recv(64).startswith(b"SSH-"):
                sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(1)
"""


def wait_ssh(ip: str, netns: str, timeout: float) -> None:
    """Wait until sshd on `ip` sends its banner (seen from `netns`), else raise TimeoutError."""
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", _BANNER_PROBE, ip, str(timeout)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise TimeoutError(f"{ip}: sshd did not answer within {timeout:g} s")
