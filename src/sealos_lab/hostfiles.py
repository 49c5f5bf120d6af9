"""A host's own files, written before it boots: hostname, /etc/hosts, machine-id, SSH host keys,
root's password hash and the lab's authorized key. An nspawn host gets them in its overlay's upper
dir; a VM host gets a tree that its init copies over / at boot."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sealos_lab.state import Lab, LabHost


def host_files(lab: Lab, h: LabHost, root: Path, lower: Path, shadow: str) -> None:
    """Write one host's own files into `root` (an overlay upper dir, or the tree a VM copies
    over its /): hostname, hosts, machine-id, SSH host keys, root's password and authorized key."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 - the upper dir's mode becomes the mode of the host's /
    _place(root, lower, "etc/hostname", h.hostname + "\n", 0o644)
    hosts = (
        "127.0.0.1\tlocalhost\n"
        f"127.0.1.1\t{h.hostname}\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
    )
    _place(root, lower, "etc/hosts", hosts, 0o644)
    _place(root, lower, "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    _place(root, lower, "etc/shadow", shadow, 0o640)
    pub = (lab.key_path.with_suffix(".pub")).read_text()
    _place(root, lower, "root/.ssh/authorized_keys", pub, 0o600)
    keys = ["ed25519", "ecdsa"]
    conf = "".join(f"HostKey /etc/ssh/ssh_host_{k}_key\n" for k in keys)
    _place(root, lower, "etc/ssh/sshd_config.d/lab-hostkeys.conf", conf, 0o644)
    for k in keys:
        path = root / f"etc/ssh/ssh_host_{k}_key"
        for p in (path, path.with_name(path.name + ".pub")):
            p.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", k, "-N", "", "-C", f"root@{h.hostname}", "-f", str(path)],
            check=True,
            capture_output=True,
        )


def has_host_files(root: Path) -> bool:
    """True when `root` already holds a host's own files (made by an earlier `up`)."""
    return (root / "etc/ssh/ssh_host_ed25519_key").exists()


def rename(root: Path, lower: Path, hostname: str) -> None:
    """Give a stopped host's files a new hostname (`up --hostname`) before it boots again."""
    current = root / "etc/hostname"
    if current.exists() and current.read_text().strip() == hostname:
        return
    _place(root, lower, "etc/hostname", hostname + "\n", 0o644)
    hosts = root / "etc/hosts"
    if hosts.exists():
        lines = hosts.read_text().splitlines()
        lines = [f"127.0.1.1\t{hostname}" if ln.startswith("127.0.1.1") else ln for ln in lines]
        hosts.write_text("\n".join(lines) + "\n")


def _place(root: Path, lower: Path, rel: str, text: str, mode: int) -> None:
    """Write `root/rel`, creating parent folders with the modes and owners they have in `lower`
    (in an overlay the upper dir's folder attributes win, so they must match the rootfs)."""
    parts = Path(rel).parts
    for i in range(1, len(parts)):
        sub = Path(*parts[:i])
        d = root / sub
        if not d.is_dir():
            d.mkdir()
            ref = lower / sub
            st = ref.stat() if ref.is_dir() else None
            os.chmod(d, st.st_mode & 0o7777 if st else 0o755)
            if st:
                os.chown(d, st.st_uid, st.st_gid)
    target = root / rel
    target.unlink(missing_ok=True)
    target.write_text(text)
    os.chmod(target, mode)
    ref = lower / rel
    if ref.exists():
        st = ref.stat()
        os.chown(target, st.st_uid, st.st_gid)
