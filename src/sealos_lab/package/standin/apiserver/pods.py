"""Pods and the `kubernetes` Service of the stand-in apiserver.

Pods are the kubelets' records of the pods they run (the stand-in kubelet runs kube-proxy's pod
of the DaemonSet kubeadm's addon phase made); deleting one makes its kubelet start it again, as
the DaemonSet controller would. The `kubernetes` Service and its Endpoints are computed as the
real apiserver keeps them: the first address of the service subnet, the masters' addresses.
  GET/POST /api/v1/namespaces/NS/pods  (?labelSelector=k=v,...&fieldSelector=spec.nodeName=N)
  GET/DELETE /api/v1/namespaces/NS/pods/NAME
  GET /api/v1/namespaces/default/services/kubernetes, .../endpoints/kubernetes
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from typing import Any, Callable
from urllib.parse import urlsplit

import yaml

from ..apiclient import rfc3339
from .auth import ApiserverError, Identity, forbidden
from .store import Store, object_key

KUBERNETES_SERVICE_SUBNET_DEFAULT = "10.96.0.0/12"


def _pod_selector(text: str) -> dict[str, str]:
    """k=v,k2=v2 (the equality form kubectl sends)."""
    pairs: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise ApiserverError(400, "BadRequest", f"unable to parse requirement: {part!r}")
        pairs[key.strip().rstrip("=")] = value.strip().lstrip("=")
    return pairs


def _pod_field(pod: dict[str, Any], path: str) -> str:
    value: Any = pod
    for part in path.split("."):
        value = value.get(part, {}) if isinstance(value, dict) else {}
    return value if isinstance(value, str) else ""


class PodApi:
    """Handlers for pods and the kubernetes Service; mixed into the Apiserver."""

    store: Store

    def pod_routes(self) -> dict[str, dict[str, Callable[..., Any]]]:
        """Path patterns -> method -> handler, for the Apiserver's route table."""
        return {
            r"^/api/v1/namespaces/([^/]+)/pods$": {"GET": self.list_pods, "POST": self.create_pod},
            r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)$": {
                "GET": self.get_pod,
                "DELETE": self.delete_pod,
            },
            r"^/api/v1/namespaces/default/services/kubernetes$": {"GET": self.kubernetes_service},
            r"^/api/v1/namespaces/default/endpoints/kubernetes$": {
                "GET": self.kubernetes_endpoints
            },
        }

    @staticmethod
    def _may(who: Identity, verb: str, node: str = "") -> None:
        """Admins do anything; a kubelet only with pods bound to its own node."""
        if who.kind == "admin":
            return
        if who.kind == "node" and (not node or who.name == f"system:node:{node}"):
            return
        raise forbidden(who, verb, "pods")

    def list_pods(self, who: Identity, body: Any, query: dict[str, list[str]], ns: str) -> Any:
        self._may(who, "list")
        labels = _pod_selector((query.get("labelSelector") or [""])[0])
        fields = _pod_selector((query.get("fieldSelector") or [""])[0])
        items = [
            pod
            for pod in self.store.items("pods", None if ns == "*" else ns)
            if all(pod["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
            and all(_pod_field(pod, k) == v for k, v in fields.items())
        ]
        items.sort(key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
        return {"kind": "PodList", "apiVersion": "v1", "items": items}

    def create_pod(self, who: Identity, body: Any, query: dict[str, list[str]], ns: str) -> Any:
        meta = body.setdefault("metadata", {})
        node = str(body.get("spec", {}).get("nodeName", ""))
        self._may(who, "create", node or "?")
        name = str(meta.get("name") or "")
        if not name:
            prefix = str(meta.get("generateName") or "")
            if not prefix:
                raise ApiserverError(422, "Invalid", "metadata.name: Required value")
            name = prefix + secrets.token_hex(3)[:5]
        key = object_key("pods", ns, name)
        with self.store.lock:
            if self.store.get(key) is not None:
                raise ApiserverError(409, "AlreadyExists", f'pods "{name}" already exists')
            meta.update(
                {
                    "name": name,
                    "namespace": ns,
                    "uid": f"{time.time():.6f}-{secrets.token_hex(4)}",
                    "creationTimestamp": rfc3339(time.time()),
                }
            )
            body["apiVersion"], body["kind"] = "v1", "Pod"
            self.store.put(key, body)
        return body

    def _pod(self, ns: str, name: str) -> dict[str, Any]:
        pod = self.store.get(object_key("pods", ns, name))
        if pod is None:
            raise ApiserverError(404, "NotFound", f'pods "{name}" not found')
        return pod

    def get_pod(
        self, who: Identity, body: Any, query: dict[str, list[str]], ns: str, name: str
    ) -> Any:
        pod = self._pod(ns, name)
        self._may(who, "get", _pod_field(pod, "spec.nodeName") or "?")
        return pod

    def delete_pod(
        self, who: Identity, body: Any, query: dict[str, list[str]], ns: str, name: str
    ) -> Any:
        pod = self._pod(ns, name)
        self._may(who, "delete", _pod_field(pod, "spec.nodeName") or "?")
        self.store.delete(object_key("pods", ns, name))
        return pod

    def _service_ip(self) -> str:
        subnet = KUBERNETES_SERVICE_SUBNET_DEFAULT
        cm = self.store.get(object_key("configmaps", "kube-system", "kubeadm-config"))
        if cm is not None:
            cluster = yaml.safe_load(cm.get("data", {}).get("ClusterConfiguration", "")) or {}
            subnet = (cluster.get("networking") or {}).get("serviceSubnet") or subnet
        network = ipaddress.ip_network(str(subnet).split(",")[0].strip(), strict=False)
        return str(network.network_address + 1)

    def kubernetes_service(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        self._may(who, "get")
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {
                "clusterIP": self._service_ip(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            },
        }

    def kubernetes_endpoints(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        self._may(who, "get")
        addresses, port = [], 6443
        for peer in sorted(self.store.items("peers", ""), key=lambda p: str(p["name"])):
            url = urlsplit(str(peer["url"]))
            addresses.append({"ip": url.hostname})
            port = url.port or port
        return {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [{"addresses": addresses, "ports": [{"name": "https", "port": port}]}],
        }
