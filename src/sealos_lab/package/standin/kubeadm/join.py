"""`kubeadm join` (worker or control plane) after discovery."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Optional

import yaml

from ..apiclient import ApiClient, ApiError, ConnectError
from ..hostenv import host_path, write_private
from ..pki import PkiError, load_kubeconfig, parse_kubeconfig, unseal
from ..versions import checks_duplicate_node_name, kubelet_config_map_name
from .certs import SHARED_CERTS, generate_leaf_certs, write_control_plane_kubeconfigs
from .common import (
    ETCD_DIR,
    K8S_DIR,
    MANIFESTS,
    STATE_DIR,
    WAIT_TIMEOUT,
    KubeadmFailure,
    admin_client,
    env_seconds,
    kube_version,
    out,
    pki_path,
    wait_until,
    warn,
)
from .control_plane import (
    detect_advertise_address,
    mark_control_plane,
    start_apiserver,
    write_manifests,
)
from .discovery import bootstrap_kubeconfig, discover_cluster_info
from .kubelet_start import start_kubelet
from .plans import DEFAULT_CERT_DIR, ClusterConfigFields, JoinPlan
from .preflight import (
    common_checks,
    dir_check,
    file_check,
    port_check,
    require_manageable_host,
    run_preflight,
)


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


def _join_control_plane_prepare(
    plan: JoinPlan, cluster: ClusterConfigFields, boot: ApiClient, advertise: str
) -> None:
    out("[preflight] Running pre-flight checks before initializing the new control plane instance")
    if not cluster.control_plane_endpoint:
        raise KubeadmFailure(
            "error execution phase preflight: \nOne or more conditions for hosting a new control "
            "plane instance is not satisfied.\n\nunable to add a new control plane instance to a "
            "cluster that doesn't have a stable controlPlaneEndpoint address\n\nPlease ensure "
            "that:\n"
            "* The cluster has a stable controlPlaneEndpoint address.\n"
            "* The certificates that must be shared among control plane instances are provided.\n"
        )
    checks = port_check(plan.bind_port) + dir_check(ETCD_DIR)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        checks += file_check(f"{MANIFESTS}/{name}.yaml")
    run_preflight(checks, plan.ignore_preflight)
    out("[preflight] Pulling images required for setting up a Kubernetes cluster")
    out(
        "[preflight] This might take a minute or two, depending on the speed of your internet "
        "connection"
    )
    out(
        "[preflight] You can also perform this action in beforehand using 'kubeadm config images "
        "pull'"
    )
    if plan.certificate_key:
        out(
            '[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the '
            '"kube-system" Namespace'
        )
        try:
            secret = boot.call("GET", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
            bundle = json.loads(unseal(plan.certificate_key, secret["data"]["sealed"]))
        except ApiError as exc:
            raise KubeadmFailure(
                "error execution phase control-plane-prepare/download-certs: error downloading "
                f"certs: error downloading the secret: {exc}"
            ) from None
        except PkiError as exc:
            raise KubeadmFailure(
                "error execution phase control-plane-prepare/download-certs: error downloading "
                f"certs: {exc}"
            ) from None
        for name, pem in bundle.items():
            write_private(pki_path(cluster, name), pem, 0o600 if name.endswith(".key") else 0o644)
    else:
        missing = [n for n in SHARED_CERTS if not pki_path(cluster, n).exists()]
        if missing:
            path = f"{cluster.cert_dir}/{missing[0]}"
            raise KubeadmFailure(
                "error execution phase control-plane-prepare/certs: error creating PKI assets: "
                f"failure loading {missing[0]}: couldn't load the certificate file {path}: "
                f"open {path}: no such file or directory"
            )
    out(f'[certs] Using certificateDir folder "{cluster.cert_dir}"')
    generate_leaf_certs(cluster, plan.node_name, advertise, shared_exist=True)
    out("[kubeconfig] Generating kubeconfig files")
    write_control_plane_kubeconfigs(cluster, plan.node_name, advertise, plan.bind_port, False)
    write_manifests(cluster, advertise, plan.bind_port)


def _join_control_plane_start(
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


def _wait_for_tls_bootstrap(plan: JoinPlan) -> None:
    timeout = plan.tls_bootstrap_timeout
    if timeout == 240.0:
        timeout = env_seconds("SEALOS_STANDIN_TLS_BOOTSTRAP_TIMEOUT", timeout)
    kubelet_conf = host_path(f"{K8S_DIR}/kubelet.conf")

    def registered() -> bool:
        if not kubelet_conf.exists():
            return False
        client = ApiClient.from_kubeconfig(load_kubeconfig(kubelet_conf), timeout=5.0)
        try:
            client.call("GET", f"/api/v1/nodes/{plan.node_name}")
        finally:
            client.close()
        return True

    if not wait_until(registered, timeout, 0.5):
        raise KubeadmFailure(
            "error execution phase kubelet-start: error uploading crisocket: timed out waiting "
            "for the condition"
            if kube_version().minor <= 21
            else "error execution phase kubelet-start: timed out waiting for the condition"
        )
    with contextlib.suppress(FileNotFoundError):
        host_path(f"{K8S_DIR}/bootstrap-kubelet.conf").unlink()


def run_join(plan: JoinPlan) -> int:
    """kubeadm join."""
    version = kube_version()
    require_manageable_host()
    for message in plan.warnings:
        warn(message)
    out("[preflight] Running pre-flight checks")
    checks = common_checks()
    checks += dir_check(MANIFESTS)
    checks += file_check(f"{K8S_DIR}/kubelet.conf") + file_check(
        f"{K8S_DIR}/bootstrap-kubelet.conf"
    )
    if not plan.control_plane:
        checks += file_check(f"{DEFAULT_CERT_DIR}/ca.crt")
    checks += port_check(10250)
    run_preflight(checks, plan.ignore_preflight)
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
        _join_control_plane_prepare(plan, cluster, boot, advertise)
        local = _join_control_plane_start(plan, cluster, advertise)
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
    _wait_for_tls_bootstrap(plan)
    if plan.control_plane:
        assert local is not None
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
