"""Who sent a request to the stand-in apiserver, and the errors it answers with.

Identities: client certificates signed by the cluster CA (admin groups, system:nodes, other
users) and bootstrap tokens (Bearer, checked against their Secret); anyone else is anonymous.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Optional

from ..apiclient import parse_rfc3339
from .store import Store, object_key

ADMIN_GROUPS = {"system:masters", "kubeadm:cluster-admins"}
ETCD_CA_NAME = "etcd-ca"  # the CN kubeadm (and the stand-in) gives the etcd CA


@dataclass
class Identity:
    """Who sent a request."""

    kind: str  # anonymous | admin | node | bootstrap | etcd | user
    name: str
    groups: list[str]
    token_id: str = ""


class ApiserverError(Exception):
    """An error status with a Kubernetes-style Status body."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def forbidden(identity: Identity, verb: str, resource: str, scope: str = "cluster scope") -> Any:
    """The 403 a user gets for a verb on a resource it may not use."""
    return ApiserverError(
        403,
        "Forbidden",
        f'{resource} is forbidden: User "{identity.name}" cannot {verb} resource "{resource}" '
        f'in API group "" at the {scope}',
    )


def token_expired(data: dict[str, Any]) -> bool:
    """Whether a bootstrap token Secret's data is past its expiration (unreadable: expired)."""
    expiration = data.get("expiration")
    if not expiration:
        return False
    try:
        return parse_rfc3339(str(expiration)) <= time.time()
    except ValueError:
        return True


def identify(store: Store, peer_cert: Optional[dict[str, Any]], authorization: str) -> Identity:
    """The identity of a request: its bearer token, else its client certificate, else anonymous."""
    if authorization.startswith("Bearer "):
        token = authorization[7:].strip()
        token_id, _, token_secret = token.partition(".")
        secret = store.get(object_key("secrets", "kube-system", f"bootstrap-token-{token_id}"))
        data = (secret or {}).get("data", {})
        valid = (
            secret is not None
            and secrets.compare_digest(str(data.get("token-secret", "")), token_secret)
            and data.get("usage-bootstrap-authentication") == "true"
            and not token_expired(data)
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
        issuer = dict(item[0] for item in peer_cert.get("issuer", ()))
        subject = dict(item[0] for item in peer_cert.get("subject", ()))
        if issuer.get("commonName") == ETCD_CA_NAME:
            # An etcd client (etcdctl with /etc/kubernetes/pki/etcd/*): etcd's API, nothing else.
            return Identity("etcd", str(subject.get("commonName", "")), [])
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
