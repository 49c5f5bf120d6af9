"""Small shell snippets several phases share."""

from __future__ import annotations

from sealos import etcd_members
from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.errors import HostError
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


async def remove_half_joined_member(ctx: Context, healthy: ClusterHost, node: ClusterHost) -> None:
    """Before `node`'s half-done control-plane join is reset and retried: remove the etcd
    member that join added (see `remove_etcd_member`)."""
    f = node.facts
    assert f is not None
    await ctx.wet(
        healthy,
        f"etcdctl member remove: {node.name}'s etcd member (peer URL "
        f"{etcd_members.peer_url(node.ip)}), if its halfway join added one (with no quorum "
        "left: etcd --force-new-cluster on this master)",
        lambda: remove_etcd_member(ctx, healthy, node.name, node.ip, f.hostname),
        step=f"removing {node.name}'s etcd member (its join stopped halfway)",
    )


async def remove_etcd_member(
    ctx: Context, healthy: ClusterHost, name: str, ip: str, hostname: str
) -> bool:
    """On `healthy`, a joined master: remove the etcd member proven to be host `name`'s (peer
    URL https://IP:2380, its hostname or no name), if there is one; when etcd has no quorum to
    do that and that member alone costs it, `etcd --force-new-cluster` on `healthy` (see
    etcd_members). True when a member was removed."""
    listed = await healthy.ssh.run(etcd_members.etcdctl("member list"), check=False, timeout=120)
    if listed.exit_status == 127:
        ctx.ui.warn(
            f"{healthy.name}: no etcdctl there, so {name}'s etcd member (if one is left) can't "
            "be removed; remove it with etcdctl before joining that host again"
        )
        return False
    if not listed.ok:
        raise HostError(
            healthy.name,
            f"etcdctl member list failed ({listed.stderr.strip()[-300:]}); check etcd there, "
            "then run again.",
        )
    members = etcd_members.parse_member_list(listed.stdout)
    member = etcd_members.member_of(members, ip, hostname)
    if member is None:
        return False
    removed = await healthy.ssh.run(
        etcd_members.etcdctl(f"member remove {q(member.member_id)}"), check=False, timeout=120
    )
    if removed.ok:
        return True
    if not etcd_members.only_blocker(members, healthy.ip, member):
        raise HostError(
            healthy.name,
            f"etcd could not remove {name}'s member {member.member_id} "
            f"({removed.stderr.strip()[-200:]}), and other members are down too; bring them "
            "back (etcdctl member list), then run again.",
        )
    ctx.ui.step(
        healthy.name, f"etcd has no quorum without {name}'s member: etcd --force-new-cluster"
    )
    await healthy.ssh.run(
        etcd_members.force_new_cluster_script(),
        timeout=etcd_members.FORCE_WAIT * 2 + 120,
        label="etcd --force-new-cluster",
    )
    return True


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
