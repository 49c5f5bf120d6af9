"""`kubeadm join` (worker or control plane) after discovery."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Optional

import yaml

from ..apiclient import ApiClient, ApiError, ConnectError
from ..hostenv import host_path, write_private
from ..pki import parse_kubeconfig
from ..versions import checks_duplicate_node_name, kubelet_config_map_name
from .common import K8S_DIR, MANIFESTS, KubeadmFailure, kube_version, out, warn
from .control_plane import detect_advertise_address, mark_control_plane
from .discovery import bootstrap_kubeconfig, discover_cluster_info
from .join_control_plane import (
    join_control_plane_prepare,
    join_control_plane_start,
    wait_for_node_pods,
)
from .kubelet_start import start_kubelet, wait_for_tls_bootstrap
from .plans import ClusterConfigFields, JoinPlan
from .preflight import join_preflight, require_manageable_host


def _fetch_cluster_config(boot: ApiClient) -> tuple[ClusterConfigFields, str]:
    version = kube_version()
    path = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
    problem = ""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            cm = boot.call("GET", path)
            cluster = ClusterConfigFields.from_dict(
                yaml.safe_load(cm["data"]["ClusterConfiguration"])
            )
            kubelet_cm = boot.call(
                "GET",
                f"/api/v1/namespaces/kube-system/configmaps/{kubelet_config_map_name(version)}",
            )
            return cluster, str(kubelet_cm["data"]["kubelet"])
        except (ConnectError, ApiError) as exc:
            problem = f'Get "{boot.server}{path}?timeout=10s": {exc}'
            boot.close()
        if time.monotonic() >= deadline:
            raise KubeadmFailure(
                "error execution phase preflight: unable to fetch the kubeadm-config ConfigMap: "
                f"failed to get config map: {problem}"
            )
        time.sleep(1.0)


def run_join(plan: JoinPlan) -> int:
    """kubeadm join."""
    version = kube_version()
    require_manageable_host()
    for message in plan.warnings:
        warn(message)
    join_preflight(plan)
    cluster_info, _ca_pem = discover_cluster_info(plan)
    boot_conf = bootstrap_kubeconfig(cluster_info, plan.tls_bootstrap_token)
    boot = ApiClient.from_kubeconfig(parse_kubeconfig(boot_conf, Path("/")))
    out("[preflight] Reading configuration from the cluster...")
    out(
        "[preflight] FYI: You can look at this config file with 'kubectl -n kube-system get cm "
        "kubeadm-config -o yaml'"
    )
    cluster, kubelet_config = _fetch_cluster_config(boot)
    advertise = ""
    local: Optional[ApiClient] = None
    if plan.control_plane:
        advertise = plan.advertise_address or detect_advertise_address()
        join_control_plane_prepare(plan, cluster, boot, advertise)
        local = join_control_plane_start(plan, cluster, advertise)
    if checks_duplicate_node_name(version):
        with contextlib.suppress(ApiError):
            node = boot.call("GET", f"/api/v1/nodes/{plan.node_name}")
            ready = [
                c for c in node.get("status", {}).get("conditions", []) if c.get("type") == "Ready"
            ]
            if ready and ready[0].get("status") == "True":
                raise KubeadmFailure(
                    f'error execution phase kubelet-start: a Node with name "{plan.node_name}" and '
                    'status "Ready" already exists in the cluster. You must delete the existing '
                    "Node "
                    "or change the name of this new joining Node"
                )
    boot.close()
    write_private(host_path(f"{K8S_DIR}/bootstrap-kubelet.conf"), boot_conf)
    host_path(MANIFESTS).mkdir(parents=True, exist_ok=True)
    start_kubelet(plan.node_name, plan.cri_socket, plan.kubelet_extra_args, kubelet_config)
    out("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap...")
    wait_for_tls_bootstrap(plan)
    if plan.control_plane:
        assert local is not None
        wait_for_node_pods(local, plan.node_name)
        out(
            '[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the '
            '"kube-system" Namespace'
        )
        mark_control_plane(local, plan.node_name, plan.taints)
        local.close()
        out("")
        out("This node has joined the cluster and a new control plane instance was created:")
        out("")
        out("* Certificate signing request was sent to apiserver and approval was received.")
        out("* The Kubelet was informed of the new secure connection details.")
        out("* Control plane label and taint were applied to the new node.")
        out("* The Kubernetes control plane instances scaled up.")
        out("* A new etcd member was added to the local/stacked etcd cluster.")
        out("")
        out(
            "To start administering your cluster from this node, you need to run the following "
            "as a regular user:"
        )
        out("")
        out("\tmkdir -p $HOME/.kube")
        out(f"\tsudo cp -i {K8S_DIR}/admin.conf $HOME/.kube/config")
        out("\tsudo chown $(id -u):$(id -g) $HOME/.kube/config")
        out("")
        out("Run 'kubectl get nodes' to see this node join the cluster.")
        out("")
    else:
        out("")
        out("This node has joined the cluster:")
        out("* Certificate signing request was sent to apiserver and a response was received.")
        out("* The Kubelet was informed of the new secure connection details.")
        out("")
        out("Run 'kubectl get nodes' on the control-plane to see this node join the cluster.")
        out("")
    return 0
