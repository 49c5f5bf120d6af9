"""`kubeadm init`: the phases in kubeadm's order, and its closing text with the join commands."""

from __future__ import annotations

import sys
import time

import yaml

from ..pki import kubeconfig_document, new_bootstrap_token, new_certificate_key, spki_pin
from ..versions import kubelet_config_map_name, shows_root_kubeconfig_hint, upload_certs_flag
from .addons import apply_kube_proxy
from .certs import (
    generate_leaf_certs,
    server_endpoint,
    upload_cert_bundle,
    write_control_plane_kubeconfigs,
)
from .common import (
    K8S_DIR,
    MANIFESTS,
    WAIT_TIMEOUT,
    KubeadmFailure,
    admin_client,
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
from .kubelet_start import kubelet_config_yaml, kubelet_healthy, start_kubelet
from .plans import InitPlan, TokenSpec
from .preflight import announce_image_pull, init_preflight, require_manageable_host
from .token import join_command, token_secret


def run_init(plan: InitPlan) -> int:
    """kubeadm init."""
    version = kube_version()
    cluster = plan.cluster
    if not plan.dry_run:
        require_manageable_host()
    out(f"[init] Using Kubernetes version: {cluster.kubernetes_version}")
    for message in plan.warnings:
        warn(message)
    init_preflight(plan)
    advertise = plan.advertise_address or detect_advertise_address()
    if plan.dry_run:
        out(
            "[dryrun] The configuration was accepted; the sealos-lab stand-in changes nothing in "
            "a dry run"
        )
        out(
            "[dryrun] Finished dry-running successfully. Above are the resources that would be "
            "created."
        )
        return 0
    announce_image_pull(cluster, plan.ignore_preflight)
    out(f'[certs] Using certificateDir folder "{cluster.cert_dir}"')
    generate_leaf_certs(cluster, plan.node_name, advertise, shared_exist=False)
    write_control_plane_kubeconfigs(cluster, plan.node_name, advertise, plan.bind_port, True)
    start_kubelet(
        plan.node_name,
        plan.cri_socket,
        plan.kubelet_extra_args,
        kubelet_config_yaml(cluster, plan.kubelet_config),
    )
    write_manifests(cluster, advertise, plan.bind_port)
    out(
        "[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods "
        f'from directory "{MANIFESTS}". This can take up to 4m0s'
    )
    started = time.monotonic()
    start_apiserver(plan.node_name, advertise, plan.bind_port)
    client = admin_client(f"https://{advertise}:{plan.bind_port}", cluster)
    if not wait_until(
        lambda: client.call("GET", "/healthz") == "ok" and kubelet_healthy(), WAIT_TIMEOUT
    ):
        raise KubeadmFailure(
            "error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster\n"
            "\nUnfortunately, an error has occurred:\n\ttimed out waiting for the condition\n\n"
            "This error is likely caused by:\n\t- The kubelet is not running\n"
            "\t- The kubelet is unhealthy due to a misconfiguration of the node in some way\n\n"
            "If you are on a systemd-powered system, you can try to troubleshoot the error with "
            "the following commands:\n\t- 'systemctl status kubelet'\n\t- 'journalctl -xeu kubelet'"
        )
    out(
        "[apiclient] All control plane components are healthy after "
        f"{time.monotonic() - started:.6f} seconds"
    )
    out(
        '[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the '
        '"kube-system" Namespace'
    )
    cluster_yaml = yaml.safe_dump(cluster.to_dict(), sort_keys=True)
    client.call(
        "PUT",
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        {"data": {"ClusterConfiguration": cluster_yaml}},
    )
    map_name = kubelet_config_map_name(version)
    out(
        f'[kubelet] Creating a ConfigMap "{map_name}" in namespace kube-system with the '
        "configuration for the kubelets in the cluster"
    )
    client.call(
        "PUT",
        f"/api/v1/namespaces/kube-system/configmaps/{map_name}",
        {"data": {"kubelet": kubelet_config_yaml(cluster, plan.kubelet_config)}},
    )
    client.call(
        "POST",
        "/apis/sealos-lab.io/v1/peers",
        {"name": plan.node_name, "url": f"https://{advertise}:{plan.bind_port}"},
    )
    key = plan.certificate_key
    if plan.upload_certs:
        key = key or new_certificate_key()
        out(
            '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the '
            '"kube-system" Namespace'
        )
        upload_cert_bundle(client, cluster, key)
        out("[upload-certs] Using certificate key:")
        out(key if not plan.skip_certificate_key_print else "<value withheld>")
    else:
        out(f"[upload-certs] Skipping phase. Please see --{upload_certs_flag(version)}")
    mark_control_plane(client, plan.node_name, plan.taints)
    tokens = plan.tokens or [TokenSpec(token="")]
    for spec in tokens:
        spec.token = spec.token or new_bootstrap_token()
        if not plan.skip_token_print:
            out(f"[bootstrap-token] Using token: {spec.token}")
    out("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
    for spec in tokens:
        client.call("POST", "/api/v1/namespaces/kube-system/secrets", token_secret(spec))
    out("[bootstrap-token] configured RBAC rules to allow Node Bootstrap tokens to get nodes")
    out(
        "[bootstrap-token] configured RBAC rules to allow Node Bootstrap tokens to post CSRs in "
        "order for nodes to get long term certificate credentials"
    )
    out(
        "[bootstrap-token] configured RBAC rules to allow the csrapprover controller "
        "automatically approve CSRs from a Node Bootstrap Token"
    )
    out(
        "[bootstrap-token] configured RBAC rules to allow certificate rotation for all node "
        "client certificates in the cluster"
    )
    out('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace')
    endpoint = server_endpoint(cluster, advertise, plan.bind_port)
    ca_pem = pki_path(cluster, "ca.crt").read_text()
    info = kubeconfig_document(f"https://{endpoint}", ca_pem, "", cluster="")
    info_doc = yaml.safe_load(info)
    info_doc["users"] = None
    info_doc["contexts"] = None
    info_doc["current-context"] = ""
    client.call(
        "PUT",
        "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        {"data": {"kubeconfig": yaml.safe_dump(info_doc, sort_keys=True)}},
    )
    out(
        f'[kubelet-finalize] Updating "{K8S_DIR}/kubelet.conf" to point to a rotatable kubelet '
        "client certificate and key"
    )
    out("[addons] Applied essential addon: CoreDNS")
    apply_kube_proxy(client, cluster, plan.kubeproxy_config, endpoint)
    client.close()
    pin = spki_pin(ca_pem)
    token = tokens[0].token if not plan.skip_token_print else "<value withheld>"
    shown_key = (
        key
        if (key and not plan.skip_certificate_key_print)
        else ("<value withheld>" if key else "")
    )
    _print_init_done(
        bool(cluster.control_plane_endpoint),
        plan.upload_certs,
        join_command(endpoint, token, pin, True, shown_key if plan.upload_certs else ""),
        join_command(endpoint, token, pin),
    )
    return 0


def _print_init_done(
    endpoint_set: bool, upload: bool, cp_command: str, worker_command: str
) -> None:
    version = kube_version()
    lines = [
        "",
        "Your Kubernetes control-plane has initialized successfully!",
        "",
        "To start using your cluster, you need to run the following as a regular user:",
        "",
        "  mkdir -p $HOME/.kube",
        f"  sudo cp -i {K8S_DIR}/admin.conf $HOME/.kube/config",
        "  sudo chown $(id -u):$(id -g) $HOME/.kube/config",
        "",
    ]
    if shows_root_kubeconfig_hint(version):
        lines += [
            "Alternatively, if you are the root user, you can run:",
            "",
            f"  export KUBECONFIG={K8S_DIR}/admin.conf",
            "",
        ]
    lines += [
        "You should now deploy a pod network to the cluster.",
        'Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:',
        "  https://kubernetes.io/docs/concepts/cluster-administration/addons/",
        "",
    ]
    text = "\n".join(lines) + "\n"
    if endpoint_set:
        if upload:
            text += (
                "You can now join any number of the control-plane node running the following "
                f"command on each as root:\n\n  {cp_command}\n\n"
                "Please note that the certificate-key gives access to cluster sensitive data, "
                "keep it secret!\n"
                "As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you "
                "can use\n"
                f'"kubeadm init phase upload-certs --{upload_certs_flag(version)}" to reload '
                "certs afterward.\n\n"
            )
        else:
            text += (
                "You can now join any number of control-plane nodes by copying certificate "
                "authorities\n"
                "and service account keys on each node and then running the following as root:\n\n"
                f"  {cp_command}\n\n"
            )
    text += (
        "Then you can join any number of worker nodes by running the following on each as root:\n\n"
    )
    text += worker_command + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()
