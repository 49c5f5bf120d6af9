"""The stand-in kube-apiserver's API: routes and what each answers.

Served API (JSON, Kubernetes-shaped where a client would notice):
  GET  /healthz /readyz -> "ok" (500 without an etcd quorum); GET /livez -> "ok"; GET /version
  GET  /api/v1/namespaces/kube-public/configmaps/cluster-info   (anonymous; JWS per valid token)
  GET  /api/v1/namespaces/kube-system/configmaps/NAME           (kubeadm-config, kubelet-config*)
  PUT  /api/v1/namespaces/NS/configmaps/NAME                    (admin)
  GET/PUT /api/v1/namespaces/kube-system/secrets/kubeadm-certs  (sealed by the certificate key)
  POST /api/v1/namespaces/kube-system/secrets, GET ...?type=bootstrap, DELETE .../NAME (tokens)
  POST /apis/certificates.k8s.io/v1/certificatesigningrequests  (kubelet TLS bootstrap, approved)
  GET/POST /api/v1/nodes, GET/PATCH/DELETE /api/v1/nodes/NAME, PUT /api/v1/nodes/NAME/status
  pods, the kubernetes Service and Endpoints (pods.py)
  POST/GET /apis/sealos-lab.io/v1/applied                        (kubectl apply records)
  POST /apis/sealos-lab.io/v1/sync, GET .../snapshot, POST/DELETE .../peers[/NAME]  (masters)
  GET .../members, DELETE .../members/ID, POST .../members/ID/promote  (etcd membership, for
      kubeadm and the stand-in etcdctl; membership.py)
Who may do what is decided in each handler from the request's Identity (auth.py). Writes need
an etcd quorum (membership.py): without one they fail as a real apiserver's do (500,
"etcdserver: request timed out"), /healthz says "[-]etcd failed", reads still answer.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..apiclient import parse_rfc3339, rfc3339
from ..hostenv import log
from ..pki import PkiError, csr_subject, jws_detached, sign_csr
from .auth import ApiserverError, Identity, forbidden, token_expired
from .membership import (
    LEARNER_NOT_READY,
    MEMBER_NOT_FOUND,
    NOT_A_LEARNER,
    TIMED_OUT,
    etcdctl_id,
    find_member,
    has_quorum,
    new_member,
    refuse_add,
)
from .pods import PodApi
from .replication import API_GROUP, Replicator
from .settings import ApiserverSettings
from .store import Store, object_key

READY_WINDOW = 10.0


class Apiserver(PodApi):
    """Request handling for one stand-in apiserver; its Replicator keeps the peers in step."""

    def __init__(self, settings: ApiserverSettings) -> None:
        self.settings = settings
        self.store = Store(settings.node_name, Path(settings.state_dir) / "state.json")
        self.store.load()
        self.stopping = threading.Event()
        self.replicator = Replicator(settings, self.store)
        kube_system_secrets = r"^/api/v1/namespaces/kube-system/secrets"
        nodes = r"^/api/v1/nodes"
        ours = rf"^/apis/{API_GROUP}/v1"
        by_path: dict[str, dict[str, Callable[..., Any]]] = {
            r"^/(healthz|readyz)$": {"GET": self.health},
            r"^/livez$": {"GET": self.live},
            r"^/version$": {"GET": self.version},
            r"^/api/v1/namespaces/([^/]+)/configmaps/([^/]+)$": {
                "GET": self.get_cm,
                "PUT": self.put_cm,
            },
            kube_system_secrets + "$": {"GET": self.list_tokens, "POST": self.create_token},
            kube_system_secrets + "/([^/]+)$": {
                "GET": self.get_secret,
                "PUT": self.put_secret,
                "DELETE": self.del_secret,
            },
            r"^/apis/certificates\.k8s\.io/v1/certificatesigningrequests$": {"POST": self.csr},
            nodes + "$": {"GET": self.list_nodes, "POST": self.register_node},
            nodes + "/([^/]+)$": {
                "GET": self.get_node,
                "PATCH": self.patch_node,
                "DELETE": self.delete_node,
            },
            nodes + "/([^/]+)/status$": {"PUT": self.node_status},
            ours + "/applied$": {"POST": self.apply, "GET": self.list_applied},
            ours + "/sync$": {"POST": self.sync_in},
            ours + "/snapshot$": {"GET": self.snapshot},
            ours + "/peers$": {"POST": self.add_peer},
            ours + "/peers/([^/]+)$": {"DELETE": self.remove_peer},
            ours + "/members$": {"GET": self.list_members},
            ours + "/members/([^/]+)$": {"DELETE": self.remove_member},
            ours + "/members/([^/]+)/promote$": {"POST": self.promote_member},
            **self.pod_routes(),
        }
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            (method, re.compile(path), handler)
            for path, methods in by_path.items()
            for method, handler in methods.items()
        ]
        self.batched_writes = {self.node_status, self.sync_in}
        # What etcd serves without a quorum: replication between members and its own snapshot.
        self.without_quorum = {self.sync_in}

    # etcd quorum ----------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        """The etcd members (peers objects; those from before this model read as voters, added
        before anything was seen)."""
        found = []
        for peer in self.store.items("peers", ""):
            member = {**new_member(str(peer["name"]), str(peer["url"]), False), "added": 0.0}
            member.update(peer)
            found.append(member)
        return sorted(found, key=lambda m: m["name"])

    def quorum(self) -> bool:
        """Whether a majority of the voting members is alive (probing the silent ones now)."""
        members = self.members()
        if has_quorum(members, self.replicator.alive()):
            return True
        return has_quorum(members, self.replicator.probe_now(members))

    def require_quorum(self) -> None:
        """A write without quorum fails as the real apiserver's does when etcd has none."""
        if not self.quorum():
            raise ApiserverError(500, "InternalError", TIMED_OUT)

    # handlers -------------------------------------------------------------------------------

    def health(self, who: Identity, body: Any, query: dict[str, list[str]], _name: str) -> Any:
        if not self.quorum():
            raise ApiserverError(
                500, "InternalError", "[-]etcd failed: reason withheld\nhealthz check failed"
            )
        return "ok"

    def live(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        return "ok"  # the process (and so its etcd member) runs; peers probe this

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
                raise forbidden(who, "get", "configmaps", f'namespace "{ns}"')
        if cm is None:
            raise ApiserverError(404, "NotFound", f'configmaps "{name}" not found')
        if public:
            content = cm.get("data", {}).get("kubeconfig", "")
            for secret in self.store.items("secrets", "kube-system"):
                data = secret.get("data", {})
                if data.get("usage-bootstrap-signing") == "true" and not token_expired(data):
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
            if s.get("type") == "bootstrap.kubernetes.io/token"
            and not token_expired(s.get("data", {}))
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
                raise forbidden(who, "get", "secrets", 'namespace "kube-system"')
        else:
            self._admin(who, "get", "secrets")
        secret = self.store.get(object_key("secrets", "kube-system", name))
        if secret is None or token_expired(secret.get("data", {})):
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
            raise forbidden(who, "create", "certificatesigningrequests")
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
            raise forbidden(who, "create", "certificatesigningrequests")
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
            raise forbidden(who, "list", "nodes")
        nodes = sorted(self.store.items("nodes", ""), key=lambda n: n["metadata"]["name"])
        return {
            "kind": "NodeList",
            "apiVersion": "v1",
            "items": [self._node_view(n) for n in nodes],
        }

    def get_node(self, who: Identity, body: Any, query: dict[str, list[str]], name: str) -> Any:
        if who.kind == "node" and who.name != f"system:node:{name}":
            raise forbidden(who, "get", "nodes")
        if who.kind not in ("admin", "node", "bootstrap"):
            raise forbidden(who, "get", "nodes")
        node = self.store.get(object_key("nodes", "", name))
        if node is None:
            raise ApiserverError(404, "NotFound", f'nodes "{name}" not found')
        return self._node_view(node)

    def register_node(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        name = str(body.get("metadata", {}).get("name", ""))
        if who.kind != "admin" and who.name != f"system:node:{name}":
            raise forbidden(who, "create", "nodes")
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
            raise forbidden(who, "update", "nodes/status")
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
        """`member add` (kubeadm's control-plane-join etcd step), or init's first member."""
        self._admin(who, "create", "peers")
        name, url = str(body["name"]), str(body["url"])
        learner = bool(body.get("learner", False))
        with self.store.lock:
            members = [m for m in self.members() if m["name"] != name]
            refused = refuse_add(members, self.replicator.started(members), learner)
            if refused:
                raise ApiserverError(500, "InternalError", refused)
            member = new_member(name, url, learner)
            self.store.put(object_key("peers", "", name), member)
        kind = "learner" if learner else "voting member"
        log(
            "apiserver", f"etcd member {name} ({member['peerURL']}) added as a {kind} by {who.name}"
        )
        return {**self.store.changes_since(0), "member": member}

    def remove_peer(self, who: Identity, body: Any, query: dict[str, list[str]], name: str) -> Any:
        self._admin(who, "delete", "peers")
        if not self.store.delete(object_key("peers", "", name)):
            raise ApiserverError(404, "NotFound", MEMBER_NOT_FOUND)
        log("apiserver", f"etcd member {name} removed by {who.name}")
        return {"status": "Success"}

    def list_members(self, who: Identity, body: Any, query: dict[str, list[str]]) -> Any:
        """`etcdctl member list` (alive: this member's view, as `endpoint health` would say)."""
        self._etcd_client(who, "list")
        members = self.members()
        alive, started = self.replicator.alive(), self.replicator.started(members)
        return {
            "members": [
                {
                    **m,
                    "ID": etcdctl_id(m),
                    "alive": m["name"] in alive,
                    "started": m["name"] in started,
                }
                for m in members
            ],
            "self": self.settings.node_name,
        }

    def remove_member(
        self, who: Identity, body: Any, query: dict[str, list[str]], member_id: str
    ) -> Any:
        """`etcdctl member remove ID`."""
        self._etcd_client(who, "delete")
        member = find_member(self.members(), member_id)
        if member is None:
            raise ApiserverError(404, "NotFound", MEMBER_NOT_FOUND)
        self.store.delete(object_key("peers", "", member["name"]))
        log("apiserver", f"etcd member {member['name']} ({member['id']}) removed by {who.name}")
        return {"removed": {**member, "ID": etcdctl_id(member)}}

    def promote_member(
        self, who: Identity, body: Any, query: dict[str, list[str]], member_id: str
    ) -> Any:
        """`member promote`: a learner that has caught up (its etcd is up and synced) votes."""
        self._etcd_client(who, "promote")
        with self.store.lock:
            member = find_member(self.members(), member_id)
            if member is None:
                raise ApiserverError(404, "NotFound", MEMBER_NOT_FOUND)
            if not member.get("learner"):
                raise ApiserverError(500, "InternalError", NOT_A_LEARNER)
            if member["name"] not in self.replicator.alive():
                raise ApiserverError(500, "InternalError", LEARNER_NOT_READY)
            self.store.put(object_key("peers", "", member["name"]), {**member, "learner": False})
        log("apiserver", f"etcd member {member['name']} promoted to a voting member by {who.name}")
        return {"promoted": {**member, "learner": False, "ID": etcdctl_id(member)}}

    def _etcd_client(self, who: Identity, verb: str) -> None:
        if who.kind not in ("admin", "etcd"):
            raise forbidden(who, verb, "members")

    def _admin(self, who: Identity, verb: str, resource: str) -> None:
        if who.kind != "admin":
            raise forbidden(who, verb, resource)
