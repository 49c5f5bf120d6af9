"""`kubeadm join --control-plane`: prepare the node (certificates, kubeconfigs, manifests), then
join the apiservers' replication as a new etcd member would and start the local apiserver.
"""

from __future__ import annotations

import contextlib
import json

from ..apiclient import ApiClient, ApiError, ConnectError
from ..hostenv import host_path, write_private
from .certs import (
    download_cert_bundle,
    generate_leaf_certs,
    require_shared_certs,
    write_control_plane_kubeconfigs,
)
from .common import STATE_DIR, WAIT_TIMEOUT, KubeadmFailure, admin_client, out, wait_until
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


def join_control_plane_start(
    plan: JoinPlan, cluster: ClusterConfigFields, advertise: str
) -> ApiClient:
    """Register this apiserver as a peer (as a new etcd member), seed its state, start it."""
    out("[check-etcd] Checking that the etcd cluster is healthy")
    url = f"https://{advertise}:{plan.bind_port}"
    seed = admin_client(f"https://{plan.endpoint}", cluster)
    try:
        snapshot = seed.call(
            "POST", "/apis/sealos-lab.io/v1/peers", {"name": plan.node_name, "url": url}
        )
    except (ApiError, ConnectError) as exc:
        raise KubeadmFailure(
            f"error execution phase check-etcd: etcd cluster is not healthy: {exc}"
        ) from None
    finally:
        seed.close()
    state = {"objects": snapshot.get("objects", {})}
    write_private(host_path(f"{STATE_DIR}/state.json"), json.dumps(state))
    out("[etcd] Announced new etcd member joining to the existing etcd cluster")
    out('[etcd] Creating static Pod manifest for "etcd"')
    out("[etcd] Waiting for the new etcd member to join the cluster. This can take up to 40s")
    start_apiserver(plan.node_name, advertise, plan.bind_port)
    local = admin_client(url, cluster)
    if not wait_until(lambda: local.call("GET", "/healthz") == "ok", WAIT_TIMEOUT):
        raise KubeadmFailure(
            "error execution phase control-plane-join/etcd: timed out waiting for the condition"
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
