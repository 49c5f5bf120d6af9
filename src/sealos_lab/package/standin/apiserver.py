"""The stand-in kube-apiserver: HTTPS on :6443, and a small replicated object store.

Served API (JSON, Kubernetes-shaped where a client would notice):
  GET  /healthz /livez /readyz -> "ok";  GET /version
  GET  /api/v1/namespaces/kube-public/configmaps/cluster-info   (anonymous; JWS per valid token)
  GET  /api/v1/namespaces/kube-system/configmaps/NAME           (kubeadm-config, kubelet-config*)
  PUT  /api/v1/namespaces/NS/configmaps/NAME                    (admin)
  GET/PUT /api/v1/namespaces/kube-system/secrets/kubeadm-certs  (sealed by the certificate key)
  POST /api/v1/namespaces/kube-system/secrets, GET ...?type=bootstrap, DELETE .../NAME (tokens)
  POST /apis/certificates.k8s.io/v1/certificatesigningrequests  (kubelet TLS bootstrap, approved)
  GET/POST /api/v1/nodes, GET/PATCH/DELETE /api/v1/nodes/NAME, PUT /api/v1/nodes/NAME/status
  POST/GET /apis/sealos-lab.io/v1/applied                        (kubectl apply records)
  POST /apis/sealos-lab.io/v1/sync, GET .../snapshot, POST/DELETE .../peers[/NAME]  (masters)
Identities: client certificates signed by the cluster CA (admin groups, system:nodes) and
bootstrap tokens (Bearer). Several masters share state as etcd members would: each write gets a
(time, origin) version, every apiserver pushes its changes to its peers once a second, and a
restarted apiserver pulls a snapshot from a peer. Kubelet heartbeats travel as leases with an age,
so clocks of different hosts need not agree.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

import yaml

from .apiclient import ApiClient, ApiError, ConnectError
from .hostenv import log, write_private
from .pki import PkiError, csr_subject, jws_detached, sign_csr

READY_WINDOW = 10.0
SYNC_INTERVAL = 1.0
ADMIN_GROUPS = {"system:masters", "kubeadm:cluster-admins"}
API_GROUP = "sealos-lab.io"


def rfc3339(ts: float) -> str:
    """Kubernetes' timestamp format."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC3339 time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class ApiserverSettings:
    """What one apiserver needs, read from its static pod manifest and its member file."""

    node_name: str
    url: str
    bind_port: int
    cert_file: str
    key_file: str
    client_ca_file: str
    ca_key_file: str
    peer_cert_file: str
    peer_key_file: str
    state_dir: str
    kubernetes_version: str


def settings_from_manifest(manifest: Path, state_dir: Path) -> ApiserverSettings:
    """Flags of the kube-apiserver static pod manifest kubeadm wrote, plus member.json."""
    pod = yaml.safe_load(manifest.read_text())
    container = pod["spec"]["containers"][0]
    flags: dict[str, str] = {}
    for arg in container.get("command", [])[1:]:
        name, _, value = str(arg).lstrip("-").partition("=")
        flags[name] = value
    member = json.loads((state_dir / "member.json").read_text())
    image = str(container.get("image", ""))
    version = image.rsplit(":", 1)[-1] if ":" in image else ""
    ca_file = flags["client-ca-file"]
    return ApiserverSettings(
        node_name=member["name"],
        url=member["url"],
        bind_port=int(flags.get("secure-port", "6443")),
        cert_file=flags["tls-cert-file"],
        key_file=flags["tls-private-key-file"],
        client_ca_file=ca_file,
        ca_key_file=str(Path(ca_file).with_suffix(".key")),
        peer_cert_file=flags["kubelet-client-certificate"],
        peer_key_file=flags["kubelet-client-key"],
        state_dir=str(state_dir),
        kubernetes_version=version,
    )


def object_key(kind: str, namespace: str, name: str) -> str:
    """Store key of an object."""
    return f"{kind}/{namespace}/{name}"


class Store:
    """Objects with last-writer-wins versions, tombstones, and kubelet leases."""

    def __init__(self, origin: str, path: Path) -> None:
        self.origin = origin
        self.path = path
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.lseq = 0
        self.dirty = False
        self._last_ts = 0.0

    def load(self) -> None:
        """Objects persisted by an earlier run (leases are not persisted: kubelets resend them)."""
        with contextlib.suppress(FileNotFoundError):
            data = json.loads(self.path.read_text())
            for key, record in data.get("objects", {}).items():
                self.lseq += 1
                record["lseq"] = self.lseq
                self.objects[key] = record

    def save_if_dirty(self) -> None:
        """Persist objects (mode 0600: tokens live here, as in etcd)."""
        with self.lock:
            if not self.dirty:
                return
            data = {
                "objects": {
                    k: {kk: vv for kk, vv in r.items() if kk != "lseq"}
                    for k, r in self.objects.items()
                }
            }
            self.dirty = False
        write_private(self.path, json.dumps(data, sort_keys=True))

    def _next_rv(self) -> list[Any]:
        ts = max(time.time(), self._last_ts + 1e-6)
        self._last_ts = ts
        return [ts, self.origin]

    def get(self, key: str) -> Optional[dict[str, Any]]:
        with self.lock:
            record = self.objects.get(key)
            if record is None or record["deleted"]:
                return None
            return json.loads(json.dumps(record["obj"]))

    def record(self, key: str) -> Optional[dict[str, Any]]:
        with self.lock:
            return self.objects.get(key)

    def put(self, key: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.lseq += 1
            self.objects[key] = {
                "rv": self._next_rv(),
                "deleted": False,
                "obj": obj,
                "lseq": self.lseq,
            }
            self.dirty = True

    def delete(self, key: str) -> bool:
        with self.lock:
            record = self.objects.get(key)
            if record is None or record["deleted"]:
                return False
            self.lseq += 1
            self.objects[key] = {
                "rv": self._next_rv(),
                "deleted": True,
                "obj": record["obj"],
                "lseq": self.lseq,
            }
            self.dirty = True
            if key.startswith("nodes//"):
                name = key.split("/", 2)[2]
                lease = self.leases.get(name)
                if lease and lease["uid"] == record["obj"]["metadata"].get("uid"):
                    del self.leases[name]
            return True

    def items(self, kind: str, namespace: Optional[str] = None) -> list[dict[str, Any]]:
        with self.lock:
            found = []
            for key, record in self.objects.items():
                k, ns, _name = key.split("/", 2)
                if k == kind and (namespace is None or ns == namespace) and not record["deleted"]:
                    found.append(json.loads(json.dumps(record["obj"])))
            return found

    def note_heartbeat(self, name: str, uid: str, seq: int) -> None:
        with self.lock:
            lease = self.leases.get(name)
            if lease and lease["uid"] == uid and lease["seq"] >= seq:
                return
            self.lseq += 1
            self.leases[name] = {
                "uid": uid,
                "seq": seq,
                "seen": time.monotonic(),
                "lseq": self.lseq,
            }

    def lease_age(self, name: str, uid: str) -> Optional[float]:
        with self.lock:
            lease = self.leases.get(name)
            if lease is None or lease["uid"] != uid:
                return None
            return time.monotonic() - float(lease["seen"])

    def changes_since(self, lseq: int) -> dict[str, Any]:
        with self.lock:
            now = time.monotonic()
            objects = {
                k: {kk: vv for kk, vv in r.items() if kk != "lseq"}
                for k, r in self.objects.items()
                if r["lseq"] > lseq
            }
            leases = {
                n: {"uid": lease["uid"], "seq": lease["seq"], "age": now - lease["seen"]}
                for n, lease in self.leases.items()
                if lease["lseq"] > lseq
            }
            return {"origin": self.origin, "objects": objects, "leases": leases, "upto": self.lseq}

    def merge(self, data: dict[str, Any]) -> None:
        """Apply changes from a peer: newer versions win; leases only for live registrations."""
        with self.lock:
            for key, incoming in data.get("objects", {}).items():
                local = self.objects.get(key)
                if local is not None and list(local["rv"]) >= list(incoming["rv"]):
                    continue
                self.lseq += 1
                self.objects[key] = {
                    "rv": list(incoming["rv"]),
                    "deleted": bool(incoming["deleted"]),
                    "obj": incoming["obj"],
                    "lseq": self.lseq,
                }
                self._last_ts = max(self._last_ts, float(incoming["rv"][0]))
                self.dirty = True
                if incoming["deleted"] and key.startswith("nodes//"):
                    name = key.split("/", 2)[2]
                    lease = self.leases.get(name)
                    if lease and lease["uid"] == incoming["obj"]["metadata"].get("uid"):
                        del self.leases[name]
            now = time.monotonic()
            for name, incoming in data.get("leases", {}).items():
                node = self.objects.get(object_key("nodes", "", name))
                if (
                    node
                    and node["deleted"]
                    and node["obj"]["metadata"].get("uid") == incoming["uid"]
                ):
                    continue
                local = self.leases.get(name)
                seen = now - float(incoming["age"])
                if local is not None and local["uid"] == incoming["uid"]:
                    if local["seq"] >= incoming["seq"]:
                        continue
                elif local is not None and float(local["seen"]) >= seen:
                    continue
                self.lseq += 1
                self.leases[name] = {
                    "uid": incoming["uid"],
                    "seq": incoming["seq"],
                    "seen": seen,
                    "lseq": self.lseq,
                }


@dataclass
class Identity:
    """Who sent a request."""

    kind: str  # anonymous | admin | node | bootstrap
    name: str
    groups: list[str]
    token_id: str = ""


class ApiserverError(Exception):
    """An error status with a Kubernetes-style Status body."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def _forbidden(identity: Identity, verb: str, resource: str, scope: str = "cluster scope") -> Any:
    return ApiserverError(
        403,
        "Forbidden",
        f'{resource} is forbidden: User "{identity.name}" cannot {verb} resource "{resource}" '
        f'in API group "" at the {scope}',
    )


class Apiserver:
    """Request handling and replication for one stand-in apiserver."""

    def __init__(self, settings: ApiserverSettings) -> None:
        self.settings = settings
        self.store = Store(settings.node_name, Path(settings.state_dir) / "state.json")
        self.store.load()
        self.stopping = threading.Event()
        self._peer_clients: dict[str, ApiClient] = {}
        self._peer_sent: dict[str, int] = {}
        self._peer_down: set[str] = set()
        self._sync_lock = threading.Lock()
        self._resynced = False
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", re.compile(r"^/(healthz|livez|readyz)$"), self.health),
            ("GET", re.compile(r"^/version$"), self.version),
            ("GET", re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps/([^/]+)$"), self.get_cm),
            ("PUT", re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps/([^/]+)$"), self.put_cm),
            ("GET", re.compile(r"^/api/v1/namespaces/kube-system/secrets$"), self.list_tokens),
            ("POST", re.compile(r"^/api/v1/namespaces/kube-system/secrets$"), self.create_token),
            (
                "GET",
                re.compile(r"^/api/v1/namespaces/kube-system/secrets/([^/]+)$"),
                self.get_secret,
            ),
            (
                "PUT",
                re.compile(r"^/api/v1/namespaces/kube-system/secrets/([^/]+)$"),
                self.put_secret,
            ),
            (
                "DELETE",
                re.compile(r"^/api/v1/namespaces/kube-system/secrets/([^/]+)$"),
                self.del_secret,
            ),
            (
                "POST",
                re.compile(r"^/apis/certificates\.k8s\.io/v1/certificatesigningrequests$"),
                self.csr,
            ),
            ("GET", re.compile(r"^/api/v1/nodes$"), self.list_nodes),
            ("POST", re.compile(r"^/api/v1/nodes$"), self.register_node),
            ("GET", re.compile(r"^/api/v1/nodes/([^/]+)$"), self.get_node),
            ("PATCH", re.compile(r"^/api/v1/nodes/([^/]+)$"), self.patch_node),
            ("DELETE", re.compile(r"^/api/v1/nodes/([^/]+)$"), self.delete_node),
            ("PUT", re.compile(r"^/api/v1/nodes/([^/]+)/status$"), self.node_status),
            ("POST", re.compile(rf"^/apis/{API_GROUP}/v1/applied$"), self.apply),
            ("GET", re.compile(rf"^/apis/{API_GROUP}/v1/applied$"), self.list_applied),
            ("POST", re.compile(rf"^/apis/{API_GROUP}/v1/sync$"), self.sync_in),
            ("GET", re.compile(rf"^/apis/{API_GROUP}/v1/snapshot$"), self.snapshot),
            ("POST", re.compile(rf"^/apis/{API_GROUP}/v1/peers$"), self.add_peer),
            ("DELETE", re.compile(rf"^/apis/{API_GROUP}/v1/peers/([^/]+)$"), self.remove_peer),
        ]
        self.batched_writes = {self.node_status, self.sync_in}

    # identities ----------------------------------------------------------------------------

    def identify(self, peer_cert: Optional[dict[str, Any]], authorization: str) -> Identity:
        if authorization.startswith("Bearer "):
            token = authorization[7:].strip()
            token_id, _, token_secret = token.partition(".")
            secret = self.store.get(
                object_key("secrets", "kube-system", f"bootstrap-token-{token_id}")
            )
            data = (secret or {}).get("data", {})
            valid = (
                secret is not None
                and secrets.compare_digest(str(data.get("token-secret", "")), token_secret)
                and data.get("usage-bootstrap-authentication") == "true"
                and not _expired(data)
            )
            if not valid:
                raise ApiserverError(401, "Unauthorized", "Unauthorized")
            extra = [g for g in str(data.get("auth-extra-groups", "")).split(",") if g]
            return Identity(
                "bootstrap",
                f"system:bootstrap:{token_id}",
                ["system:bootstrappers", *extra],
                token_id,
            )
        if peer_cert:
            subject = dict(item[0] for item in peer_cert.get("subject", ()))
            common_name = str(subject.get("commonName", ""))
            orgs = [
                str(v)
                for rdn in peer_cert.get("subject", ())
                for k, v in rdn
                if k == "organizationName"
            ]
            if ADMIN_GROUPS.intersection(orgs):
                return Identity("admin", common_name, orgs)
            if "system:nodes" in orgs and common_name.startswith("system:node:"):
                return Identity("node", common_name, orgs)
            return Identity("user", common_name, orgs)
        return Identity("anonymous", "system:anonymous", ["system:unauthenticated"])

    # handlers -------------------------------------------------------------------------------

    def health(self, who: Identity, body: Any, query: dict[str, list[str]], _name: str) -> Any:
        return "ok"

    def version(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        from_tag = self.settings.kubernetes_version
        match = re.match(r"^v(\d+)\.(\d+)", from_tag)
        return {
            "major": match.group(1) if match else "1",
            "minor": match.group(2) if match else "",
            "gitVersion": from_tag,
            "gitTreeState": "clean",
            "compiler": "gc",
            "platform": "linux/amd64",
            "sealosLabStandIn": True,
        }

    def get_cm(
        self, who: Identity, body: Any, query: dict[str, list[str]], ns: str, name: str
    ) -> Any:
        cm = self.store.get(object_key("configmaps", ns, name))
        public = ns == "kube-public" and name == "cluster-info"
        if not public:
            allowed = who.kind == "admin" or (
                who.kind in ("bootstrap", "node") and ns == "kube-system"
            )
            if not allowed:
                raise _forbidden(who, "get", "configmaps", f'namespace "{ns}"')
        if cm is None:
            raise ApiserverError(404, "NotFound", f'configmaps "{name}" not found')
        if public:
            content = cm.get("data", {}).get("kubeconfig", "")
            for secret in self.store.items("secrets", "kube-system"):
                data = secret.get("data", {})
                if data.get("usage-bootstrap-signing") == "true" and not _expired(data):
                    cm["data"][f"jws-kubeconfig-{data['token-id']}"] = jws_detached(
                        content, str(data["token-id"]), str(data["token-secret"])
                    )
        return cm

    def put_cm(
        self, who: Identity, body: Any, query: dict[str, list[str]], ns: str, name: str
    ) -> Any:
        self._admin(who, "update", "configmaps")
        body.setdefault("metadata", {}).update({"name": name, "namespace": ns})
        self.store.put(object_key("configmaps", ns, name), body)
        return body

    def list_tokens(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        self._admin(who, "list", "secrets")
        items = [
            s
            for s in self.store.items("secrets", "kube-system")
            if s.get("type") == "bootstrap.kubernetes.io/token" and not _expired(s.get("data", {}))
        ]
        return {"kind": "SecretList", "apiVersion": "v1", "items": items}

    def create_token(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        self._admin(who, "create", "secrets")
        data = body.get("data", {})
        if not re.match(r"^[a-z0-9]{6}$", str(data.get("token-id", ""))) or not re.match(
            r"^[a-z0-9]{16}$", str(data.get("token-secret", ""))
        ):
            raise ApiserverError(422, "Invalid", "the bootstrap token is invalid")
        name = f"bootstrap-token-{data['token-id']}"
        if self.store.get(object_key("secrets", "kube-system", name)) is not None:
            raise ApiserverError(409, "AlreadyExists", f'secrets "{name}" already exists')
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "bootstrap.kubernetes.io/token",
            "metadata": {
                "name": name,
                "namespace": "kube-system",
                "creationTimestamp": rfc3339(time.time()),
            },
            "data": {str(k): str(v) for k, v in data.items()},
        }
        self.store.put(object_key("secrets", "kube-system", name), secret)
        log("apiserver", f"bootstrap token {data['token-id']} created by {who.name}")
        return {"metadata": secret["metadata"]}

    def get_secret(self, who: Identity, body: Any, query: dict[str, list[str]], name: str) -> Any:
        if name == "kubeadm-certs":
            if who.kind not in ("admin", "bootstrap"):
                raise _forbidden(who, "get", "secrets", 'namespace "kube-system"')
        else:
            self._admin(who, "get", "secrets")
        secret = self.store.get(object_key("secrets", "kube-system", name))
        if secret is None or _expired(secret.get("data", {})):
            raise ApiserverError(404, "NotFound", f'secrets "{name}" not found')
        return secret

    def put_secret(self, who: Identity, body: Any, query: dict[str, list[str]], name: str) -> Any:
        self._admin(who, "update", "secrets")
        body.setdefault("metadata", {}).update({"name": name, "namespace": "kube-system"})
        self.store.put(object_key("secrets", "kube-system", name), body)
        return {"metadata": body["metadata"]}

    def del_secret(self, who: Identity, body: Any, query: dict[str, list[str]], name: str) -> Any:
        self._admin(who, "delete", "secrets")
        if not self.store.delete(object_key("secrets", "kube-system", name)):
            raise ApiserverError(404, "NotFound", f'secrets "{name}" not found')
        return {"status": "Success"}

    def csr(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        if who.kind not in ("bootstrap", "node", "admin"):
            raise _forbidden(who, "create", "certificatesigningrequests")
        try:
            request_pem = base64.b64decode(body["spec"]["request"]).decode()
            common_name, orgs = csr_subject(request_pem)
        except (KeyError, ValueError, PkiError) as exc:
            raise ApiserverError(400, "BadRequest", f"invalid certificate request: {exc}") from None
        if not common_name.startswith("system:node:") or orgs != ["system:nodes"]:
            raise ApiserverError(
                403,
                "Forbidden",
                "only kubelet client certificates (system:node:NAME, "
                "O=system:nodes) are signed for bootstrap tokens",
            )
        if who.kind == "node" and who.name != common_name:
            raise _forbidden(who, "create", "certificatesigningrequests")
        try:
            cert = sign_csr(
                Path(self.settings.client_ca_file), Path(self.settings.ca_key_file), request_pem
            )
        except PkiError as exc:
            raise ApiserverError(500, "InternalError", str(exc)) from None
        log("apiserver", f"signed a kubelet client certificate for {common_name} ({who.name})")
        return {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "status": {
                "conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved"}],
                "certificate": base64.b64encode(cert.encode()).decode(),
            },
        }

    def _node_view(self, node: dict[str, Any]) -> dict[str, Any]:
        meta = node["metadata"]
        age = self.store.lease_age(meta["name"], str(meta.get("uid", "")))
        ready = age is not None and age <= READY_WINDOW
        heartbeat = (
            time.time() - age if age is not None else parse_rfc3339(meta["creationTimestamp"])
        )
        condition = {
            "type": "Ready",
            "status": "True" if ready else "Unknown",
            "reason": "KubeletReady" if ready else "NodeStatusUnknown",
            "message": "kubelet is posting ready status"
            if ready
            else "Kubelet stopped posting node status.",
            "lastHeartbeatTime": rfc3339(heartbeat),
        }
        node.setdefault("status", {})["conditions"] = [condition]
        return node

    def list_nodes(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        if who.kind not in ("admin", "node"):
            raise _forbidden(who, "list", "nodes")
        nodes = sorted(self.store.items("nodes", ""), key=lambda n: n["metadata"]["name"])
        return {
            "kind": "NodeList",
            "apiVersion": "v1",
            "items": [self._node_view(n) for n in nodes],
        }

    def get_node(self, who: Identity, body: Any, query: dict[str, list[str]], name: str) -> Any:
        if who.kind == "node" and who.name != f"system:node:{name}":
            raise _forbidden(who, "get", "nodes")
        if who.kind not in ("admin", "node", "bootstrap"):
            raise _forbidden(who, "get", "nodes")
        node = self.store.get(object_key("nodes", "", name))
        if node is None:
            raise ApiserverError(404, "NotFound", f'nodes "{name}" not found')
        return self._node_view(node)

    def register_node(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        name = str(body.get("metadata", {}).get("name", ""))
        if who.kind != "admin" and who.name != f"system:node:{name}":
            raise _forbidden(who, "create", "nodes")
        key = object_key("nodes", "", name)
        with self.store.lock:
            existing = self.store.get(key)
            meta = body.setdefault("metadata", {})
            if existing is not None:
                # A kubelet that restarts keeps the Node object (labels, taints, age).
                meta["labels"] = {
                    **existing["metadata"].get("labels", {}),
                    **meta.get("labels", {}),
                }
                meta["creationTimestamp"] = existing["metadata"]["creationTimestamp"]
                body["spec"] = existing.get("spec", {})
            else:
                meta["creationTimestamp"] = rfc3339(time.time())
                body.setdefault("spec", {})
            body["apiVersion"], body["kind"] = "v1", "Node"
            self.store.put(key, body)
            self.store.note_heartbeat(name, str(meta.get("uid", "")), 0)
        log("apiserver", f"node {name} registered")
        return self._node_view(body)

    def node_status(self, who: Identity, body: Any, query: dict[str, list[str]], name: str) -> Any:
        if who.kind != "admin" and who.name != f"system:node:{name}":
            raise _forbidden(who, "update", "nodes/status")
        uid = str(body.get("uid", ""))
        record = self.store.record(object_key("nodes", "", name))
        if record is not None and record["deleted"] and record["obj"]["metadata"].get("uid") == uid:
            raise ApiserverError(404, "NotFound", f'nodes "{name}" not found')
        if record is None:
            raise ApiserverError(404, "NotFound", f'nodes "{name}" not found')
        self.store.note_heartbeat(name, uid, int(body.get("seq", 0)))
        return {"status": "Success"}

    def patch_node(self, who: Identity, body: Any, query: dict[str, list[str]], name: str) -> Any:
        self._admin(who, "patch", "nodes")
        key = object_key("nodes", "", name)
        with self.store.lock:
            node = self.store.get(key)
            if node is None:
                raise ApiserverError(404, "NotFound", f'nodes "{name}" not found')
            labels = node["metadata"].setdefault("labels", {})
            labels.update(body.get("metadata", {}).get("labels", {}))
            for label, value in list(labels.items()):
                if value is None:
                    del labels[label]
            if "taints" in body.get("spec", {}):
                node.setdefault("spec", {})["taints"] = body["spec"]["taints"]
            self.store.put(key, node)
        return self._node_view(node)

    def delete_node(self, who: Identity, body: Any, query: dict[str, list[str]], name: str) -> Any:
        self._admin(who, "delete", "nodes")
        if not self.store.delete(object_key("nodes", "", name)):
            raise ApiserverError(404, "NotFound", f'nodes "{name}" not found')
        log("apiserver", f"node {name} deleted by {who.name}")
        return {"status": "Success", "details": {"name": name, "kind": "nodes"}}

    def apply(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        self._admin(who, "patch", "applied")
        meta = body.get("metadata") or {}
        key = object_key(
            "applied",
            str(meta.get("namespace") or ""),
            f"{body.get('apiVersion')}|{body.get('kind')}|{meta.get('name')}",
        )
        with self.store.lock:
            record = self.store.record(key)
            if record is None or record["deleted"]:
                result = "created"
            elif record["obj"] == body:
                return {"result": "unchanged"}
            else:
                result = "configured"
            self.store.put(key, body)
        return {"result": result}

    def list_applied(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        self._admin(who, "list", "applied")
        kinds = {k.lower() for k in query.get("kind", [])}
        items = [
            o
            for o in self.store.items("applied")
            if not kinds or str(o.get("kind", "")).lower() in kinds
        ]
        return {"items": items}

    def sync_in(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        self._admin(who, "sync", "peers")
        self.store.merge(body)
        return {"status": "Success"}

    def snapshot(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        self._admin(who, "get", "snapshot")
        return self.store.changes_since(0)

    def add_peer(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        self._admin(who, "create", "peers")
        name, url = str(body["name"]), str(body["url"])
        self.store.put(object_key("peers", "", name), {"name": name, "url": url})
        log("apiserver", f"peer {name} ({url}) added by {who.name}")
        return self.store.changes_since(0)

    def remove_peer(self, who: Identity, body: Any, query: dict[str, list[str]], name: str) -> Any:
        self._admin(who, "delete", "peers")
        self.store.delete(object_key("peers", "", name))
        log("apiserver", f"peer {name} removed by {who.name}")
        return {"status": "Success"}

    def _admin(self, who: Identity, verb: str, resource: str) -> None:
        if who.kind != "admin":
            raise _forbidden(who, verb, resource)

    # replication ----------------------------------------------------------------------------

    def _peer_client(self, url: str) -> ApiClient:
        client = self._peer_clients.get(url)
        if client is None:
            client = ApiClient(
                url,
                ca_pem=Path(self.settings.client_ca_file).read_text(),
                cert_pem=Path(self.settings.peer_cert_file).read_text(),
                key_pem=Path(self.settings.peer_key_file).read_text(),
                timeout=2.0,
            )
            self._peer_clients[url] = client
        return client

    def peers(self) -> list[dict[str, Any]]:
        return [p for p in self.store.items("peers", "") if p["name"] != self.settings.node_name]

    def replicate_once(self) -> None:
        """Push local changes to every peer; pull a snapshot once after start."""
        with self._sync_lock:
            self._replicate_locked()

    def _replicate_locked(self) -> None:
        for peer in self.peers():
            url = peer["url"]
            client = self._peer_client(url)
            if not self._resynced:
                with contextlib.suppress(ApiError, ConnectError, OSError, ValueError):
                    self.store.merge(client.call("GET", f"/apis/{API_GROUP}/v1/snapshot"))
                    self._resynced = True
            sent = self._peer_sent.get(url, 0)
            changes = self.store.changes_since(sent)
            if not changes["objects"] and not changes["leases"]:
                continue
            try:
                client.call("POST", f"/apis/{API_GROUP}/v1/sync", changes)
            except (ApiError, ConnectError, OSError) as exc:
                # Logged when a peer goes away and when it comes back, not every second.
                if url not in self._peer_down:
                    log("apiserver", f"peer {peer['name']} unreachable, will retry: {exc}")
                    self._peer_down.add(url)
                client.close()
                continue
            if url in self._peer_down:
                log("apiserver", f"peer {peer['name']} reachable again")
                self._peer_down.discard(url)
            self._peer_sent[url] = int(changes["upto"])
        if not self.peers():
            self._resynced = True
        self.store.save_if_dirty()

    def replication_loop(self) -> None:
        while not self.stopping.wait(SYNC_INTERVAL):
            try:
                self.replicate_once()
            except Exception as exc:  # the loop must outlive any single bad round
                log("apiserver", f"replication round failed: {exc!r}")


def _expired(data: dict[str, Any]) -> bool:
    expiration = data.get("expiration")
    if not expiration:
        return False
    try:
        return parse_rfc3339(str(expiration)) <= time.time()
    except ValueError:
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sealos-lab-stand-in-kube-apiserver"
    apiserver: Apiserver

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are not logged one by one (heartbeats); handlers log what matters

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
            peer = (
                self.connection.getpeercert()
                if isinstance(self.connection, ssl.SSLSocket)
                else None
            )
            who = self.apiserver.identify(peer, self.headers.get("Authorization", ""))
            for route_method, pattern, handler in self.apiserver.routes:
                match = pattern.match(parts.path)
                if match and route_method == method:
                    result = handler(who, body, query, *match.groups())
                    if method != "GET" and handler not in self.apiserver.batched_writes:
                        # Object writes reach the peers before the client hears back, as an
                        # etcd write reaches a quorum; heartbeats travel in the 1 s batches.
                        self.apiserver.replicate_once()
                    self._send(200, result)
                    return
            raise ApiserverError(
                404, "NotFound", "the server could not find the requested resource"
            )
        except ApiserverError as exc:
            self._send(
                exc.code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": str(exc),
                    "reason": exc.reason,
                    "code": exc.code,
                },
            )
        except (ValueError, KeyError, TypeError) as exc:
            self._send(
                400,
                {
                    "kind": "Status",
                    "status": "Failure",
                    "message": f"bad request: {exc}",
                    "reason": "BadRequest",
                    "code": 400,
                },
            )

    def _send(self, code: int, result: Any) -> None:
        if isinstance(result, str):
            payload, ctype = result.encode(), "text/plain; charset=utf-8"
        else:
            payload, ctype = json.dumps(result).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls_context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the connection's own thread: a slow client can't stall accept.
        request.settimeout(10)
        try:
            tls = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        tls.settimeout(120)
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


def serve(settings: ApiserverSettings) -> int:
    """Run the apiserver until SIGTERM."""
    apiserver = Apiserver(settings)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(settings.cert_file, settings.key_file)
    context.load_verify_locations(settings.client_ca_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    handler = type("Handler", (_Handler,), {"apiserver": apiserver})
    _TLSServer.address_family = socket.AF_INET
    server = _TLSServer(("0.0.0.0", settings.bind_port), handler)
    server.tls_context = context
    log(
        "apiserver",
        f"serving on 0.0.0.0:{settings.bind_port} as {settings.node_name} ({settings.url})",
    )

    def _stop(_signum: int, _frame: Any) -> None:
        apiserver.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    replicator = threading.Thread(target=apiserver.replication_loop, daemon=True)
    replicator.start()
    try:
        server.serve_forever(poll_interval=1.0)
    finally:
        apiserver.stopping.set()
        apiserver.store.save_if_dirty()
        server.server_close()
    log("apiserver", "stopped")
    return 0


def apiserver_main(argv: list[str]) -> int:
    """`kubeadm sealos-lab-apiserver --manifest FILE --state-dir DIR` (what the unit runs)."""
    manifest = state_dir = ""
    for arg in argv:
        if arg.startswith("--manifest="):
            manifest = arg.split("=", 1)[1]
        elif arg.startswith("--state-dir="):
            state_dir = arg.split("=", 1)[1]
    if not manifest or not state_dir:
        log("apiserver", "usage: sealos-lab-apiserver --manifest=FILE --state-dir=DIR")
        return 2
    try:
        settings = settings_from_manifest(Path(manifest), Path(state_dir))
    except (OSError, KeyError, ValueError, yaml.YAMLError) as exc:
        log("apiserver", f"cannot start: {manifest}: {exc}")
        return 1
    os.umask(0o077)
    return serve(settings)
