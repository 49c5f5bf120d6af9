"""What an init or join will do (InitPlan, JoinPlan), kubeadm's defaults, and shared checks."""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from ..decoder import parse_go_duration
from ..pki import TOKEN_RE

DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"
DEFAULT_DNS_DOMAIN = "cluster.local"
DEFAULT_BIND_PORT = 6443
DEFAULT_CERT_DIR = "/etc/kubernetes/pki"
DEFAULT_TOKEN_TTL = 24 * 3600.0
DEFAULT_DISCOVERY_TIMEOUT = 300.0
DEFAULT_TLS_BOOTSTRAP_TIMEOUT = 240.0
DEFAULT_TOKEN_USAGES = ["signing", "authentication"]
DEFAULT_TOKEN_GROUPS = ["system:bootstrappers:kubeadm:default-node-token"]
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
CERT_KEY_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class PlanError(Exception):
    """Invalid settings; str() is what kubeadm prints."""


@dataclass
class TokenSpec:
    """One bootstrap token to create."""

    token: str
    ttl: Optional[float] = DEFAULT_TOKEN_TTL
    expires: Optional[float] = None
    usages: list[str] = field(default_factory=lambda: list(DEFAULT_TOKEN_USAGES))
    groups: list[str] = field(default_factory=lambda: list(DEFAULT_TOKEN_GROUPS))
    description: str = ""

    @classmethod
    def from_config(cls, item: dict[str, Any], token: str) -> TokenSpec:
        """One of InitConfiguration's bootstrapTokens, with kubeadm's defaults."""
        return cls(
            token=token,
            ttl=parse_go_duration(item["ttl"]) if item.get("ttl") else DEFAULT_TOKEN_TTL,
            description=str(item.get("description") or ""),
            usages=list(item.get("usages") or DEFAULT_TOKEN_USAGES),
            groups=list(item.get("groups") or DEFAULT_TOKEN_GROUPS),
        )

    def expiration(self) -> Optional[float]:
        """Absolute expiry in seconds since the epoch (None: never)."""
        if self.expires is not None:
            return self.expires
        if self.ttl:
            return time.time() + self.ttl
        return None


@dataclass
class ClusterConfigFields:
    """ClusterConfiguration fields the stand-ins act on (kept in the kubeadm-config ConfigMap)."""

    control_plane_endpoint: str = ""
    kubernetes_version: str = ""
    service_subnet: str = DEFAULT_SERVICE_SUBNET
    pod_subnet: str = ""
    dns_domain: str = DEFAULT_DNS_DOMAIN
    cert_sans: list[str] = field(default_factory=list)
    cert_dir: str = DEFAULT_CERT_DIR
    cluster_name: str = "kubernetes"
    image_repository: str = ""
    encryption_algorithm: str = "RSA-2048"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterConfigFields:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class InitPlan:
    """Everything `kubeadm init` will do, decided before anything is touched."""

    node_name: str
    cri_socket: str
    advertise_address: str
    bind_port: int
    cluster: ClusterConfigFields
    tokens: list[TokenSpec]
    kubelet_extra_args: dict[str, str] = field(default_factory=dict)
    taints: Optional[list[dict[str, Any]]] = None
    ignore_preflight: list[str] = field(default_factory=list)
    certificate_key: str = ""
    upload_certs: bool = False
    skip_token_print: bool = False
    skip_certificate_key_print: bool = False
    dry_run: bool = False
    skip_phases: list[str] = field(default_factory=list)
    kubelet_config: dict[str, Any] = field(default_factory=dict)
    kubeproxy_config: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class JoinPlan:
    """Everything `kubeadm join` will do."""

    node_name: str
    cri_socket: str
    endpoint: str
    token: str
    tls_bootstrap_token: str
    ca_cert_hashes: list[str]
    unsafe_skip_ca_verification: bool
    discovery_file: str
    discovery_timeout: float
    tls_bootstrap_timeout: float
    control_plane: bool
    advertise_address: str = ""
    bind_port: int = DEFAULT_BIND_PORT
    certificate_key: str = ""
    kubelet_extra_args: dict[str, str] = field(default_factory=dict)
    taints: Optional[list[dict[str, Any]]] = None
    ignore_preflight: list[str] = field(default_factory=list)
    skip_phases: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def extra_args_dict(value: Any) -> dict[str, str]:
    """kubeletExtraArgs as a dict (v1beta4 made it a list of {name, value})."""
    if isinstance(value, list):
        return {str(item.get("name")): str(item.get("value", "")) for item in value if item}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {}


def _redact(token: str) -> str:
    token_id = token.split(".", 1)[0]
    return f"{token_id}.<redacted>" if "." in token else "<redacted>"


def validate_token(token: str, where: str) -> Optional[str]:
    """kubeadm's error for a malformed bootstrap token (the secret part is not echoed)."""
    if TOKEN_RE.match(token):
        return None
    return f'{where}: Invalid value: "{_redact(token)}": the bootstrap token is invalid'


def validate_node_name(name: str, where: str) -> Optional[str]:
    if _DNS1123_SUBDOMAIN.match(name) and len(name) <= 253:
        return None
    return (
        f'{where}: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
        "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )


def is_valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def split_endpoint(endpoint: str, default_port: int) -> tuple[str, int]:
    """(host, port) of "host[:port]" / "[v6]:port"."""
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = endpoint.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return endpoint, default_port


def apply_flags_beside_config(plan: Union[InitPlan, JoinPlan], values: dict[str, Any]) -> None:
    """Flags allowed next to --config still apply: node name and CRI socket override the file."""
    if values.get("node-name"):
        plan.node_name = values["node-name"]
    if values.get("cri-socket"):
        plan.cri_socket = values["cri-socket"]


def settle_node_registration(
    plan: Union[InitPlan, JoinPlan],
    values: dict[str, Any],
    default_name: str,
    default_cri: Union[str, Callable[[], str]],
    errors: list[str],
) -> None:
    """Preflight errors to ignore (file and flag), node name and CRI socket defaults; name check.

    default_cri may be a function: kubeadm detects the runtime's socket only when none is set."""
    plan.ignore_preflight = sorted(
        {*plan.ignore_preflight, *[i.lower() for i in values.get("ignore-preflight-errors") or []]}
    )
    plan.node_name = plan.node_name or default_name
    if not plan.cri_socket:
        plan.cri_socket = default_cri if isinstance(default_cri, str) else default_cri()
    problem = validate_node_name(plan.node_name, "nodeRegistration.name")
    if problem:
        errors.append(problem)


def raise_plan_errors(errors: list[str]) -> None:
    """PlanError with kubeadm's wording for one error or a list of them; nothing when none."""
    if errors:
        raise PlanError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
