"""A lab's secrets and what ssh clients need: root's password and the lab's key pair (files mode
0600 beside the state), root's password hash for the hosts' /etc/shadow, the known_hosts file with
every host's real host keys and an OpenSSH client config."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from sealos_lab.paths import write_private

if TYPE_CHECKING:
    from sealos_lab.state import Lab


def ensure_secrets(lab: Lab, password: Optional[str] = None) -> None:
    """The lab's root password and SSH key pair, made once per lab (files mode 0600)."""
    if not lab.password_path.exists():
        write_private(lab.password_path, (password or secrets.token_urlsafe(12)) + "\n")
    if not lab.key_path.exists():
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"sealos-lab-{lab.name}",
                "-f",
                str(lab.key_path),
            ],
            check=True,
            capture_output=True,
        )


def shadow_with_password(lower: Path, password: str) -> str:
    """The rootfs's /etc/shadow with root's password set (SHA-512 crypt; password via stdin)."""
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = []
    for line in (lower / "etc/shadow").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == "root":
            parts[1] = hashed
            line = ":".join(parts)
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_known_hosts(lab: Lab) -> None:
    """Write the lab's known_hosts from the host keys each host was given."""
    lines = []
    for h in lab.hosts:
        etc_ssh = lab.driver.files_dir(lab, h) / "etc/ssh"
        for pub in sorted(etc_ssh.glob("ssh_host_*_key.pub")):
            keytype, key = pub.read_text().split()[:2]
            lines.append(f"{h.ip} {keytype} {key}")
    lab.known_hosts_path.write_text("\n".join(lines) + "\n")


def write_ssh_config(lab: Lab) -> None:
    """Write the lab's ssh client config: one block per host, logging in as root by key."""
    blocks = []
    for h in lab.hosts:
        blocks.append(
            f"Host {h.name} {h.ip}\n"
            f"    HostName {h.ip}\n"
            "    User root\n"
            f"    IdentityFile {lab.key_path}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {lab.known_hosts_path}\n"
            "    StrictHostKeyChecking yes\n"
        )
    lab.ssh_config_path.write_text("\n".join(blocks))
