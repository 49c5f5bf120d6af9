"""A control-plane node: static pod manifests, the stand-in apiserver's unit, label and taints."""

from __future__ import annotations

import json
from typing import Any, Optional

import yaml

from ..apiclient import ApiClient
from ..hostenv import (
    APISERVER_UNIT,
    daemon_reload,
    default_route_address,
    first_global_address,
    host_path,
    self_command,
    self_path,
    service_enable,
    service_restart,
    write_private,
)
from ..versions import control_plane_labels, control_plane_taints
from .common import (
    ETCD_DIR,
    K8S_DIR,
    MANIFESTS,
    STATE_DIR,
    WAIT_TIMEOUT,
    KubeadmFailure,
    kube_version,
    out,
    wait_until,
    warn,
)
from .plans import ClusterConfigFields


def _static_pod(name: str, image: str, command: list[str]) -> str:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {"sealos-lab.io/stand-in": "not run by a container runtime in the lab"},
            "labels": {"component": name, "tier": "control-plane"},
            "name": name,
            "namespace": "kube-system",
        },
        "spec": {
            "containers": [{"command": command, "image": image, "name": name}],
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
        },
    }
    return yaml.safe_dump(pod, sort_keys=False)


def _image(cluster: ClusterConfigFields, component: str, tag: str) -> str:
    version = kube_version()
    repository = cluster.image_repository or (
        "k8s.gcr.io" if version.minor < 25 else "registry.k8s.io"
    )
    return f"{repository}/{component}:{tag}"


def write_manifests(cluster: ClusterConfigFields, advertise: str, port: int) -> None:
    out(f'[control-plane] Using manifest folder "{MANIFESTS}"')
    pki = str(host_path(cluster.cert_dir))
    apiserver_cmd = [
        "kube-apiserver",
        f"--advertise-address={advertise}",
        f"--secure-port={port}",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={pki}/ca.crt",
        "--enable-bootstrap-token-auth=true",
        "--etcd-servers=https://127.0.0.1:2379",
        f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
        f"--service-account-key-file={pki}/sa.pub",
        f"--service-cluster-ip-range={cluster.service_subnet}",
        f"--tls-cert-file={pki}/apiserver.crt",
        f"--tls-private-key-file={pki}/apiserver.key",
    ]
    manifests = {
        "kube-apiserver": apiserver_cmd,
        "kube-controller-manager": [
            "kube-controller-manager",
            f"--kubeconfig={K8S_DIR}/controller-manager.conf",
        ],
        "kube-scheduler": ["kube-scheduler", f"--kubeconfig={K8S_DIR}/scheduler.conf"],
    }
    for name, command in manifests.items():
        out(f'[control-plane] Creating static Pod manifest for "{name}"')
        image = _image(cluster, name, cluster.kubernetes_version)
        write_private(host_path(f"{MANIFESTS}/{name}.yaml"), _static_pod(name, image, command))
    out(f'[etcd] Creating static Pod manifest for local etcd in "{MANIFESTS}"')
    etcd_cmd = ["etcd", f"--data-dir={ETCD_DIR}", "--sealos-lab-note=no etcd runs in the lab"]
    write_private(
        host_path(f"{MANIFESTS}/etcd.yaml"),
        _static_pod("etcd", _image(cluster, "etcd", "stand-in"), etcd_cmd),
    )


def _apiserver_unit_text() -> str:
    manifest = host_path(f"{MANIFESTS}/kube-apiserver.yaml")
    return (
        "[Unit]\n"
        "Description=sealos-lab stand-in kube-apiserver (not Kubernetes)\n"
        "Documentation=the static pod manifest /etc/kubernetes/manifests/kube-apiserver.yaml\n"
        "Wants=network-online.target\nAfter=network-online.target\n"
        f"ConditionPathExists={manifest}\n\n"
        "[Service]\n"
        f"ExecStart={self_path()} sealos-lab-apiserver --manifest={manifest} "
        f"--state-dir={host_path(STATE_DIR)}\n"
        "Restart=always\nRestartSec=2\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


def start_apiserver(node: str, advertise: str, port: int) -> None:
    member = {"name": node, "url": f"https://{advertise}:{port}"}
    write_private(host_path(f"{STATE_DIR}/member.json"), json.dumps(member))
    unit = host_path(f"/etc/systemd/system/{APISERVER_UNIT}.service")
    write_private(unit, _apiserver_unit_text(), 0o644)
    daemon_reload()
    service_enable(APISERVER_UNIT)
    argv = [
        *self_command("kubeadm"),
        "sealos-lab-apiserver",
        f"--manifest={host_path(MANIFESTS + '/kube-apiserver.yaml')}",
        f"--state-dir={host_path(STATE_DIR)}",
    ]
    service_restart(APISERVER_UNIT, argv)


def mark_control_plane(
    client: ApiClient, node: str, taints: Optional[list[dict[str, Any]]]
) -> None:
    version = kube_version()
    labels = control_plane_labels(version)
    if version.minor >= 24:
        labels = [*labels, "node.kubernetes.io/exclude-from-external-load-balancers"]
        out(
            f"[mark-control-plane] Marking the node {node} as control-plane by adding the labels: "
            f"[{' '.join(labels)}]"
        )
    elif version.minor >= 20:
        out(
            f"[mark-control-plane] Marking the node {node} as control-plane by adding the labels "
            "\"node-role.kubernetes.io/master=''\" and "
            "\"node-role.kubernetes.io/control-plane='' (deprecated)\""
        )
    else:
        out(
            f"[mark-control-plane] Marking the node {node} as control-plane by adding the label "
            "\"node-role.kubernetes.io/master=''\""
        )
    if taints is None:
        taints = [{"key": key, "effect": "NoSchedule"} for key in control_plane_taints(version)]
    shown = " ".join(f"{t.get('key')}:{t.get('effect')}" for t in taints)
    out(
        f"[mark-control-plane] Marking the node {node} as control-plane by adding the taints "
        f"[{shown}]"
    )
    patch = {"metadata": {"labels": dict.fromkeys(labels, "")}, "spec": {"taints": taints}}
    if not wait_until(
        lambda: bool(client.call("PATCH", f"/api/v1/nodes/{node}", patch)), WAIT_TIMEOUT, 0.5
    ):
        raise KubeadmFailure(
            f'error execution phase mark-control-plane: error patching node "{node}" through '
            "apiserver: timed out waiting for the condition"
        )


def detect_advertise_address() -> str:
    address = default_route_address()
    if address:
        return address
    address = first_global_address()
    if address:
        warn(
            "could not detect a default route; advertising the first global address "
            f"{address} (sealos-lab stand-in; set localAPIEndpoint.advertiseAddress to choose)"
        )
        return address
    raise KubeadmFailure("unable to select an IP from default routes.")
