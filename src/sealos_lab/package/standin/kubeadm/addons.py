"""kubeadm's kube-proxy addon: the ConfigMap `kube-system/kube-proxy` (config.conf and
kubeconfig.conf, as kubeadm writes them) and the DaemonSet's record. The stand-in kubelet of each
node runs the DaemonSet's pod from them (kube_proxy.py)."""

from __future__ import annotations

from typing import Any

import yaml

from ..apiclient import ApiClient
from .common import out
from .plans import ClusterConfigFields

KUBE_PROXY_CONFIG_DIR = "/var/lib/kube-proxy"
SERVICE_ACCOUNT_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"


def kube_proxy_config(cluster: ClusterConfigFields, given: dict[str, Any]) -> dict[str, Any]:
    """config.conf: the user's KubeProxyConfiguration over kubeadm's defaults."""
    config: dict[str, Any] = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "bindAddress": "0.0.0.0",
        "clientConnection": {"kubeconfig": f"{KUBE_PROXY_CONFIG_DIR}/kubeconfig.conf"},
        "clusterCIDR": cluster.pod_subnet,
        "mode": "",
    }
    config.update({k: v for k, v in given.items() if k not in ("apiVersion", "kind")})
    return config


def apply_kube_proxy(
    client: ApiClient, cluster: ClusterConfigFields, given: dict[str, Any], endpoint: str
) -> None:
    """The addon phase's kube-proxy part: ConfigMap and DaemonSet."""
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "default",
                "cluster": {
                    "certificate-authority": SERVICE_ACCOUNT_CA,
                    "server": f"https://{endpoint}",
                },
            }
        ],
        "contexts": [
            {
                "name": "default",
                "context": {"cluster": "default", "namespace": "default", "user": "default"},
            }
        ],
        "current-context": "default",
        "users": [
            {
                "name": "default",
                "user": {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
            }
        ],
    }
    data = {
        "config.conf": yaml.safe_dump(kube_proxy_config(cluster, given), sort_keys=True),
        "kubeconfig.conf": yaml.safe_dump(kubeconfig, sort_keys=False),
    }
    client.call(
        "PUT",
        "/api/v1/namespaces/kube-system/configmaps/kube-proxy",
        {"metadata": {"labels": {"app": "kube-proxy"}}, "data": data},
    )
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": "kube-proxy",
            "namespace": "kube-system",
            "labels": {"k8s-app": "kube-proxy"},
        },
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
            "template": {
                "metadata": {"labels": {"k8s-app": "kube-proxy"}},
                "spec": {"hostNetwork": True, "priorityClassName": "system-node-critical"},
            },
        },
    }
    client.call("POST", "/apis/sealos-lab.io/v1/applied", daemonset)
    out("[addons] Applied essential addon: kube-proxy")
