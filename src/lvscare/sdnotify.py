"""Tell systemd that lvscare is ready (a `Type=notify` unit), with the standard library only.

sealos starts the node's lvscare unit before `kubeadm join`: `systemctl start` returns once
lvscare has put the VIP rule in place, so no separate `--run-once` process is needed first.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("lvscare")


def notify(message: str) -> bool:
    """Send `message` (e.g. "READY=1") to $NOTIFY_SOCKET; False when not run by systemd or the
    socket refuses it (logged: systemd then times the start out and says so)."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot tell systemd %r: %s", message, exc)
        return False
    return True
