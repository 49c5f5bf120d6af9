"""Small shell snippets several phases share."""

from __future__ import annotations

from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.etc_hosts import set_entry_command
from sealos.remote_paths import EXIT_BUSY, q

LOCK_WAIT = 900  # seconds a run waits for an earlier, interrupted run's kubeadm to finish


def mark(path: str, content: str = "done") -> str:
    """Record that a step finished on the host (our marker files under /var/lib/sealos)."""
    return f"mkdir -p {q(rp.STATE_DIR)} && printf '%s\\n' {q(content)} > {q(path)}"


def once(marker: str, body: str, wait: int = LOCK_WAIT) -> str:
    """Run a kubeadm step at most once per host, safely after an interrupted run.

    Under a host-wide lock (an interrupted run's kubeadm may still be running: it holds the lock
    until it ends), skip when `marker` says the step finished; undo leftovers of an unfinished
    attempt with `kubeadm reset -f`; then run `body` and set the marker.
    """
    leftovers = " ".join(q(p) for p in rp.KUBEADM_LEFTOVERS)
    return (
        f"mkdir -p {q(rp.STATE_DIR)} && exec 9>{q(rp.KUBEADM_LOCK)} || exit 1; "
        f"if ! flock -w {wait} 9; then "
        f"echo 'another run holds {rp.KUBEADM_LOCK}; wait for it to end' >&2; "
        f"exit {EXIT_BUSY}; fi; "
        f"if [ -f {q(marker)} ]; then echo 'sealos: done before, skipped'; exit 0; fi; "
        f'for f in {leftovers}; do if [ -e "$f" ]; then '
        "echo 'sealos: an earlier attempt stopped halfway: kubeadm reset -f'; "
        "kubeadm reset -f || exit 1; break; fi; done; "
        f"{{ {body}; }} && {mark(marker)}"
    )


def root_kubeconfig() -> str:
    """Give root on a master a kubectl config (as kubeadm's own instructions say)."""
    return (
        f"mkdir -p /root/.kube && cp -f {q(rp.ADMIN_CONF)} /root/.kube/config "
        "&& chmod 600 /root/.kube/config"
    )


async def map_apiserver(ctx: Context, node: ClusterHost, ip: str, which: str) -> None:
    """/etc/hosts on `node`: the apiserver name to `ip` (`which` says what it is, for the plan)."""
    name = ctx.spec.apiserver
    await ctx.wet(
        node,
        f"/etc/hosts: map {name} to {which}",
        lambda: node.ssh.run(set_entry_command(ip, name)),
        step=f"/etc/hosts: {name} -> {ip}",
    )
