"""Small shell snippets several phases share."""

from __future__ import annotations

from sealos import remote_paths as rp
from sealos.remote_paths import q


def mark(path: str, content: str = "done") -> str:
    """Record that a step finished on the host (our marker files under /var/lib/sealos)."""
    return f"mkdir -p {q(rp.STATE_DIR)} && printf '%s\\n' {q(content)} > {q(path)}"


def kubeadm_reset() -> str:
    """Undo an interrupted `kubeadm init/join` so that it can run again."""
    return "kubeadm reset -f"


def root_kubeconfig() -> str:
    """Give root on a master a kubectl config (as kubeadm's own instructions say)."""
    return (
        f"mkdir -p /root/.kube && cp -f {q(rp.ADMIN_CONF)} /root/.kube/config "
        "&& chmod 600 /root/.kube/config"
    )
