"""Small shell snippets several phases share."""

from __future__ import annotations

from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.etc_hosts import set_entry_command
from sealos.facts import HostFacts
from sealos.remote_paths import EXIT_BUSY, q

LOCK_WAIT = 900  # seconds a run waits for an earlier, interrupted run's kubeadm to finish


def mark(path: str, content: str = "done") -> str:
    """Record that a step finished on the host (our marker files under /var/lib/sealos)."""
    return f"mkdir -p {q(rp.STATE_DIR)} && printf '%s\\n' {q(content)} > {q(path)}"


def mark_started(command: str) -> str:
    """Record on a host, before the first change there, that sealos started on it
    (`rp.MARK_STARTED`): only such a host's kubeadm leftovers are an interrupted run of ours."""
    return mark(rp.MARK_STARTED, f"{command} started on this host")


def once(marker: str, body: str, wait: int = LOCK_WAIT) -> str:
    """Run a kubeadm step at most once per host, safely after an interrupted run.

    Under a host-wide lock (an interrupted run's kubeadm may still be running: it holds the lock
    until it ends), skip when `marker` says the step finished; undo leftovers of an unfinished
    attempt with `kubeadm reset -f`, but only where sealos recorded that it started on the host
    (`rp.MARK_STARTED`, written before its first change there; validation refused hosts holding
    a Kubernetes install without it, unless --force-takeover wrote it); then run `body` and set
    the marker.
    """
    return f"{_reset_unfinished(marker, wait)}{{ {body}; }} && {mark(marker)}"


def reset_unfinished(marker: str, wait: int = LOCK_WAIT) -> str:
    """`once`'s first half alone: under the lock, reset what an unfinished attempt left."""
    return _reset_unfinished(marker, wait) + "true"


def _reset_unfinished(marker: str, wait: int) -> str:
    leftovers = " ".join(q(p) for p in rp.KUBEADM_LEFTOVERS)
    return (
        f"mkdir -p {q(rp.STATE_DIR)} && exec 9>{q(rp.KUBEADM_LOCK)} || exit 1; "
        f"if ! flock -w {wait} 9; then "
        f"echo 'another run holds {rp.KUBEADM_LOCK}; wait for it to end' >&2; "
        f"exit {EXIT_BUSY}; fi; "
        f"if [ -f {q(marker)} ]; then echo 'sealos: done before, skipped'; exit 0; fi; "
        f'for f in {leftovers}; do if [ -e "$f" ]; then '
        f"if [ ! -f {q(rp.MARK_STARTED)} ]; then "
        'echo "sealos: $f belongs to a Kubernetes install sealos did not start here; '
        'not resetting it (sealos clean it first)" >&2; exit 1; fi; '
        "echo 'sealos: an earlier attempt stopped halfway: kubeadm reset -f'; "
        "kubeadm reset -f || exit 1; break; fi; done; "
    )


async def reset_half_join(ctx: Context, node: ClusterHost) -> None:
    """A join of `node` that stopped halfway (kubeadm's files there, no join marker): reset the
    host now, then delete the Node object that join may have registered. After the reset its
    kubelet is gone, but the API keeps the Node Ready for a while (node-monitor-grace-period),
    and kubeadm join refuses a name that is Ready ("a Node with name X and status Ready already
    exists"), so a re-run right after the interruption would fail."""
    f = node.facts
    assert f is not None
    m0, hostname = ctx.first_master, f.hostname

    async def act() -> None:
        await node.ssh.run(reset_unfinished(rp.MARK_JOIN), timeout=600, label="kubeadm reset -f")
        await m0.ssh.run(
            f"kubectl --kubeconfig {q(rp.ADMIN_CONF)} delete node {q(hostname)} --ignore-not-found",
            timeout=120,
        )

    await ctx.wet(
        node,
        f"{reset_plan(f, 'join')}, then kubectl delete node {hostname} (a Node that join may "
        "have registered)",
        act,
        step="kubeadm reset -f (an earlier join stopped halfway)",
    )


def record_installed() -> str:
    """Record the SHA-256 of what the package's init.sh installed (`rp.MARK_INSTALLED`), for
    clean to recognise those files once the package's folder is gone."""
    paths = " ".join(q(p) for p in rp.INSTALLED_RECORDED)
    return (
        f'for p in {paths}; do if [ -f "$p" ]; then sha256sum "$p"; fi; done '
        f"> {q(rp.MARK_INSTALLED)}"
    )


def reset_plan(f: HostFacts, step: str) -> str:
    """The dry run's line for the `kubeadm reset -f` that `once` runs before `step`."""
    if f.foreign_kubernetes():
        return (
            "kubeadm reset -f (a Kubernetes install sealos did not start: taken over, "
            "--force-takeover)"
        )
    return f"kubeadm reset -f (an earlier {step} sealos started stopped halfway)"


def root_kubeconfig() -> str:
    """Give root on a master a kubectl config (as kubeadm's own instructions say), and record its
    SHA-256 (`rp.MARK_KUBECONFIG`): clean removes it only while it is that file."""
    config = q(rp.KUBECTL_CONFIG)
    return (
        f"mkdir -p /root/.kube && cp -f {q(rp.ADMIN_CONF)} {config} "
        f"&& chmod 600 {config} && sha256sum {config} > {q(rp.MARK_KUBECONFIG)}"
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


# Host-network pods copy the node's /etc/hosts when their container starts (the kubelet's
# ensureHostsFile); on masters 2..n those that started during the join keep the first master as
# the apiserver name's address. kube-proxy (every version) reads it from the kube-proxy
# ConfigMap's kubeconfig; controller-manager and scheduler up to 1.19 from their kubeconfigs.
KUBE_PROXY_SELECTOR = "k8s-app=kube-proxy"
OLD_CONTROL_PLANE_PODS = ("kube-controller-manager", "kube-scheduler")


def restart_host_network_pods_command(node_name: str, minor: int) -> str:
    """Shell run on a master after its apiserver name points at itself: delete its kube-proxy
    pod (the DaemonSet starts a new one, with a fresh copy), and up to 1.19 stop the
    controller-manager and scheduler containers (the kubelet starts new ones, each with a fresh
    copy; `docker restart` would keep the old file)."""
    command = (
        f"kubectl --kubeconfig {q(rp.ADMIN_CONF)} -n kube-system delete pod "
        f"-l {q(KUBE_PROXY_SELECTOR)} --field-selector {q('spec.nodeName=' + node_name)} "
        "--ignore-not-found"
    )
    if minor > 19:
        return command
    stops = " ".join(
        f"docker ps -q --filter label=io.kubernetes.container.name={name} | "
        "xargs -r docker stop >/dev/null;"
        for name in OLD_CONTROL_PLANE_PODS
    )
    return f"{command} && {{ if command -v docker >/dev/null 2>&1; then {stops} fi; }}"


async def restart_host_network_pods(ctx: Context, node: ClusterHost) -> None:
    """After `map_apiserver(node -> itself)` on a joined master: restart what started before."""
    assert node.facts is not None
    name, minor = node.facts.hostname, ctx.version.minor
    which = "kube-proxy" + (", controller-manager, scheduler" if minor <= 19 else "")
    await ctx.wet(
        node,
        f"restart the host-network pods that copied /etc/hosts before it changed ({which})",
        lambda: node.ssh.run(restart_host_network_pods_command(name, minor), timeout=120),
        step=f"restart {which} (fresh /etc/hosts)",
    )
