"""A master's etcd member left by a control-plane join that stopped halfway.

kubeadm adds the joining master's etcd member before that member's etcd runs: up to 1.28 as a
voting member at once (learner mode, EtcdLearnerMode, is on by default from 1.29). If the join
stops there, the member stays in the list, down. With one master before it, that is 1 of 2
voting members down: the cluster has no quorum, every write fails (a join token too), and the
retry's `kubeadm reset -f` can't remove the member (it only warns). So before resetting and
retrying such a master, its member is removed from a healthy master with etcdctl; when the
removal itself has no quorum (the only other voter is the healthy master), etcd's own way out
is `--force-new-cluster` on that master (etcd's runtime-reconfiguration and learner design docs:
membership changes need a majority, and a lost quorum can't be reverted otherwise). Only the
member proven to be the host being retried (its peer URL https://IP:2380, and its name that
host's or empty, as an unstarted member's is) is ever touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sealos import remote_paths as rp
from sealos.remote_paths import q

PEER_PORT = 2380
FORCE_WAIT = 90  # seconds for etcd to come back after each manifest change


@dataclass(frozen=True)
class EtcdMember:
    """One line of `etcdctl member list` (simple format)."""

    member_id: str
    started: bool
    name: str
    peer_urls: tuple[str, ...]
    learner: bool


def _etcdctl_function() -> str:
    """Shell: `ectl ARGS` runs etcdctl against this master's own member, with kubeadm's etcd
    client certificate (etcdctl from PATH, else the package's)."""
    pki = rp.ETCD_PKI
    return (
        f"E=$(command -v etcdctl || echo {q(rp.ETCDCTL_IN_PACKAGE)}); "
        f'[ -x "$E" ] || {{ echo "no etcdctl here (PATH or {rp.ETCDCTL_IN_PACKAGE})" >&2; '
        "exit 127; }; "
        f'ectl() {{ "$E" --endpoints https://127.0.0.1:2379 --cacert {q(pki + "/ca.crt")} '
        f"--cert {q(pki + '/healthcheck-client.crt')} "
        f'--key {q(pki + "/healthcheck-client.key")} "$@"; }}; '
    )


def etcdctl(args: str) -> str:
    """One etcdctl command (args already quoted) against this master's own member."""
    return f"{_etcdctl_function()}ectl {args}"


def parse_member_list(text: str) -> list[EtcdMember]:
    """`etcdctl member list` lines: ID, status, name, peer URLs, client URLs, is learner."""
    members = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 6 or fields[1] not in ("started", "unstarted"):
            continue
        members.append(
            EtcdMember(
                member_id=fields[0],
                started=fields[1] == "started",
                name=fields[2],
                peer_urls=tuple(u for u in fields[3].split() if u),
                learner=fields[5] == "true",
            )
        )
    return members


def peer_url(ip: str) -> str:
    """The peer URL kubeadm gives a master's etcd member."""
    return f"https://{ip}:{PEER_PORT}"


def member_of(members: list[EtcdMember], ip: str, hostname: str) -> Optional[EtcdMember]:
    """The member that is provably the host's: its peer URL, and its name or none (unstarted)."""
    for m in members:
        if peer_url(ip) in m.peer_urls and m.name in ("", hostname):
            return m
    return None


def only_blocker(members: list[EtcdMember], healthy_ip: str, failed: EtcdMember) -> bool:
    """Whether the failed member alone costs the quorum: the voters are exactly the healthy
    master's member and it (so forcing a new cluster on the healthy one drops nothing else)."""
    voters = [m for m in members if not m.learner]
    others = [m for m in voters if m != failed]
    return (
        not failed.learner
        and len(voters) == 2
        and len(others) == 1
        and peer_url(healthy_ip) in others[0].peer_urls
        and others[0].started
    )


def force_new_cluster_script() -> str:
    """etcd's recovery from a lost quorum on this master: restart its static pod etcd with
    --force-new-cluster (the kubelet restarts it when the manifest changes), wait until it is
    the only member, then put the manifest back as it was and wait for etcd to serve."""
    manifest, saved = q(rp.ETCD_MANIFEST), q(rp.ETCD_MANIFEST_SAVED)
    back = f"mv -f {saved} {manifest}"
    return (
        f"{_etcdctl_function()}mkdir -p {q(rp.STATE_DIR)} && cp -p {manifest} {saved} || exit 1; "
        # the flag goes right after the `- etcd` command line of the container
        f"sed -i 's/^\\( *\\)- etcd$/&\\n\\1- --force-new-cluster/' {manifest}; "
        f"if ! grep -q -- '- --force-new-cluster$' {manifest}; then {back}; "
        f"echo 'no etcd command line in {rp.ETCD_MANIFEST}' >&2; exit 1; fi; "
        "i=0; until [ \"$(ectl member list 2>/dev/null | grep -c ', started, ')\" = 1 ] && "
        '[ "$(ectl member list 2>/dev/null | wc -l)" = 1 ]; do '
        f"i=$((i+1)); if [ $i -gt {FORCE_WAIT} ]; then {back}; "
        "echo 'etcd did not come back as a one-member cluster' >&2; exit 1; fi; sleep 1; done; "
        f"{back} || exit 1; "
        "i=0; until ectl member list >/dev/null 2>&1; do "
        f"i=$((i+1)); if [ $i -gt {FORCE_WAIT} ]; then echo 'etcd did not come back' >&2; "
        "exit 1; fi; sleep 1; done"
    )
