"""`kubeadm join --control-plane`: prepare the node (certificates, kubeconfigs, manifests), then
join the apiservers' replication as a new etcd member would and start the local apiserver.
"""

from __future__ import annotations

import contextlib
import json

from ..apiclient import ApiClient, ApiError, ConnectError
from ..apiserver.membership import LEARNER_NOT_READY
from ..hostenv import ServiceError, host_path, write_private
from ..versions import joins_etcd_as_learner
from .certs import (
    download_cert_bundle,
    generate_leaf_certs,
    require_shared_certs,
    write_control_plane_kubeconfigs,
)
from .common import STATE_DIR, KubeadmFailure, admin_client, kube_version, out, wait_until, warn
from .control_plane import start_apiserver, write_manifests
from .plans import ClusterConfigFields, JoinPlan
from .preflight import announce_image_pull, control_plane_join_preflight


def join_control_plane_prepare(
    plan: JoinPlan, cluster: ClusterConfigFields, boot: ApiClient, advertise: str
) -> None:
    """control-plane-prepare: preflight, shared certificates, leaf certs, kubeconfigs, manifests."""
    control_plane_join_preflight(plan, cluster)
    announce_image_pull(cluster, plan.ignore_preflight)
    if plan.certificate_key:
        download_cert_bundle(boot, cluster, plan.certificate_key)
    else:
        require_shared_certs(cluster)
    out(f'[certs] Using certificateDir folder "{cluster.cert_dir}"')
    generate_leaf_certs(cluster, plan.node_name, advertise, shared_exist=True)
    out("[kubeconfig] Generating kubeconfig files")
    write_control_plane_kubeconfigs(cluster, plan.node_name, advertise, plan.bind_port, False)
    write_manifests(cluster, advertise, plan.bind_port)


ETCD_WAIT = 40.0  # kubeadm waits 8 x 5 s for the cluster with the new member to be available


def _check_etcd(seed: ApiClient) -> None:
    """check-etcd: every voting member answers (real kubeadm dials each member's client URL)."""
    try:
        listed = seed.call("GET", "/apis/sealos-lab.io/v1/members")
    except (ApiError, ConnectError) as exc:
        raise KubeadmFailure(
            f"error execution phase check-etcd: etcd cluster is not healthy: {exc}"
        ) from None
    for member in listed.get("members", []):
        if not member.get("learner") and not member.get("alive"):
            client_url = str(member["peerURL"]).rsplit(":", 1)[0] + ":2379"
            raise KubeadmFailure(
                "error execution phase check-etcd: etcd cluster is not healthy: failed to dial "
                f"endpoint {client_url} with maintenance client: context deadline exceeded"
            )


def join_control_plane_start(
    plan: JoinPlan, cluster: ClusterConfigFields, advertise: str
) -> ApiClient:
    """Add this master's etcd member (a learner from 1.29), seed its state, start it, and wait
    for the cluster with the new member (kubeadm's control-plane-join etcd step)."""
    out("[check-etcd] Checking that the etcd cluster is healthy")
    url = f"https://{advertise}:{plan.bind_port}"
    learner = joins_etcd_as_learner(kube_version())
    seed = admin_client(f"https://{plan.endpoint}", cluster)
    failed = "error execution phase control-plane-join/etcd: error creating local etcd static pod"
    try:
        _check_etcd(seed)
        try:
            added = seed.call(
                "POST",
                "/apis/sealos-lab.io/v1/peers",
                {"name": plan.node_name, "url": url, "learner": learner},
            )
        except (ApiError, ConnectError) as exc:
            raise KubeadmFailure(f"{failed} manifest file: {exc}") from None
        state = {"objects": added.get("objects", {})}
        write_private(host_path(f"{STATE_DIR}/state.json"), json.dumps(state))
        if learner:
            out("[etcd] Announced new etcd member joining to the existing etcd cluster as learner")
        else:
            out("[etcd] Announced new etcd member joining to the existing etcd cluster")
        out('[etcd] Creating static Pod manifest for "etcd"')
        try:
            start_apiserver(plan.node_name, advertise, plan.bind_port)
        except ServiceError as exc:
            # kubeadm only writes etcd's manifest and waits; a member that can't start is
            # noticed by the wait below, as real kubeadm notices it
            warn(f"sealos-lab stand-in: the local etcd member (apiserver) did not start: {exc}")
        if learner:
            member_id = str(added["member"]["id"])
            promote = f"/apis/sealos-lab.io/v1/members/{member_id}/promote"
            if not wait_until(lambda: bool(seed.call("POST", promote)), ETCD_WAIT, 1.0):
                raise KubeadmFailure(f"{failed} manifest file: {LEARNER_NOT_READY}")
            out(f"[etcd] Promoted the learner member {member_id.lstrip('0')} to a voting member")
    finally:
        seed.close()
    out(
        "[etcd] Waiting for the new etcd member to join the cluster. "
        f"This can take up to {int(ETCD_WAIT)}s"
    )
    local = admin_client(url, cluster)
    if not wait_until(lambda: local.call("GET", "/healthz") == "ok", ETCD_WAIT):
        raise KubeadmFailure(
            f"{failed} manifest file: timeout waiting for etcd cluster to be available"
        )
    return local


def wait_for_node_pods(local: ApiClient, node: str) -> None:
    """Real kubeadm's control-plane join waits after kubelet-start for the local etcd member, a
    static pod the kubelet starts ("This can take up to 40s"); meanwhile the kubelet starts the
    node's DaemonSet pods (kube-proxy), with /etc/hosts as it is during the join. The stand-in,
    whose own wait is short, waits (up to 40 s) until the kubelet has started them, so that
    ordering holds in the lab as it does on real hosts."""

    def started() -> bool:
        try:
            local.call("GET", "/api/v1/namespaces/kube-system/configmaps/kube-proxy")
        except ApiError as exc:
            return exc.status == 404  # no kube-proxy addon: nothing to wait for
        query = f"?fieldSelector=spec.nodeName={node}"
        pods = local.call("GET", "/api/v1/namespaces/kube-system/pods" + query)
        return bool(pods.get("items"))

    with contextlib.suppress(ApiError, ConnectError):
        wait_until(started, 40.0, 0.5)
