"""kubeadm's flags per release, and the plan an init or join carries out (from flags or --config).

Flag availability (kubeadm-flags.json and upstream options/constant.go history):
- upload certs: --experimental-upload-certs 1.14 (1.15: deprecated alias), --upload-certs 1.15+;
- control-plane join: --experimental-control-plane 1.14 (1.15 alias), --control-plane 1.15+;
- --control-plane-endpoint on init from 1.16; --experimental-patches 1.19-1.21, --patches 1.22+.
Mixing --config with other flags (validation.ValidateMixedArguments / isAllowedFlag): allowed are
config, ignore-preflight-errors, dry-run, kubeconfig, node-name, kubeconfig-dir, the upload-certs
flag, print-join-command, rootfs, v, any skip-*; plus cri-socket until 1.21 (PR #101600 disallowed
it in 1.22) and certificate-key on 1.14 only (PR #78542 disallowed it in 1.15; v1beta1 had no
certificateKey field). "log-file" was added to the list in a later release; it is treated as
allowed from 1.26 (the exact release was not pinned).
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from .cliflags import Flag, ParsedFlags
from .decoder import DecodedConfig, parse_go_duration
from .pki import TOKEN_RE
from .versions import KubeVersion, control_plane_flag, parse_kube_version, upload_certs_flag

DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"
DEFAULT_DNS_DOMAIN = "cluster.local"
DEFAULT_BIND_PORT = 6443
DEFAULT_CERT_DIR = "/etc/kubernetes/pki"
DEFAULT_TOKEN_TTL = 24 * 3600.0
DEFAULT_DISCOVERY_TIMEOUT = 300.0
DEFAULT_TLS_BOOTSTRAP_TIMEOUT = 240.0
DEFAULT_TOKEN_USAGES = ["signing", "authentication"]
DEFAULT_TOKEN_GROUPS = ["system:bootstrappers:kubeadm:default-node-token"]
ENCRYPTION_ALGORITHMS = ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_SAN_NAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CERT_KEY_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class PlanError(Exception):
    """Invalid settings; str() is what kubeadm prints."""


GLOBAL_FLAGS = {
    "v": Flag("v", "int", short="v"),
    "rootfs": Flag("rootfs"),
    "log-file": Flag("log-file"),
    "log-file-max-size": Flag("log-file-max-size", "int"),
    "skip-headers": Flag("skip-headers", "bool"),
    "skip-log-headers": Flag("skip-log-headers", "bool"),
    "add-dir-header": Flag("add-dir-header", "bool"),
    "help": Flag("help", "bool", short="h"),
}


def _flags(*items: Flag) -> dict[str, Flag]:
    return {**GLOBAL_FLAGS, **{f.name: f for f in items}}


def init_flags(version: KubeVersion) -> dict[str, Flag]:
    """Flags of `kubeadm init` in this release."""
    items = [
        Flag("apiserver-advertise-address"),
        Flag("apiserver-bind-port", "int", default=6443),
        Flag("apiserver-cert-extra-sans", "strings"),
        Flag("cert-dir", default=DEFAULT_CERT_DIR),
        Flag("certificate-key"),
        Flag("config"),
        Flag("cri-socket"),
        Flag("dry-run", "bool"),
        Flag("feature-gates"),
        Flag("ignore-preflight-errors", "strings"),
        Flag("image-repository"),
        Flag("kubernetes-version", default="stable-1"),
        Flag("node-name"),
        Flag("pod-network-cidr"),
        Flag("service-cidr", default=DEFAULT_SERVICE_SUBNET),
        Flag("service-dns-domain", default=DEFAULT_DNS_DOMAIN),
        Flag("skip-certificate-key-print", "bool"),
        Flag("skip-phases", "strings"),
        Flag("skip-token-print", "bool"),
        Flag("token"),
        Flag("token-ttl", "duration", default=DEFAULT_TOKEN_TTL),
    ]
    if version.minor <= 15:
        items.append(Flag("experimental-upload-certs", "bool"))
    if version.minor >= 15:
        items.append(Flag("upload-certs", "bool"))
    if version.minor >= 16:
        items.append(Flag("control-plane-endpoint"))
    if 19 <= version.minor <= 21:
        items.append(Flag("experimental-patches"))
    if version.minor >= 22:
        items.append(Flag("patches"))
    return _flags(*items)


def join_flags(version: KubeVersion) -> dict[str, Flag]:
    """Flags of `kubeadm join` in this release."""
    items = [
        Flag("apiserver-advertise-address"),
        Flag("apiserver-bind-port", "int", default=6443),
        Flag("certificate-key"),
        Flag("config"),
        Flag("cri-socket"),
        Flag("discovery-file"),
        Flag("discovery-token"),
        Flag("discovery-token-ca-cert-hash", "strings"),
        Flag("discovery-token-unsafe-skip-ca-verification", "bool"),
        Flag("ignore-preflight-errors", "strings"),
        Flag("node-name"),
        Flag("skip-phases", "strings"),
        Flag("tls-bootstrap-token"),
        Flag("token"),
    ]
    if version.minor <= 15:
        items.append(Flag("experimental-control-plane", "bool"))
    if version.minor >= 15:
        items.append(Flag("control-plane", "bool"))
    if 19 <= version.minor <= 21:
        items.append(Flag("experimental-patches"))
    if version.minor >= 22:
        items.append(Flag("patches"))
    return _flags(*items)


def token_create_flags(version: KubeVersion) -> dict[str, Flag]:
    """Flags of `kubeadm token create` (--certificate-key from 1.17)."""
    items = [
        Flag("config"),
        Flag("description"),
        Flag("groups", "strings", default=DEFAULT_TOKEN_GROUPS),
        Flag("print-join-command", "bool"),
        Flag("ttl", "duration", default=DEFAULT_TOKEN_TTL),
        Flag("usages", "strings", default=DEFAULT_TOKEN_USAGES),
        Flag("kubeconfig", default="/etc/kubernetes/admin.conf"),
        Flag("dry-run", "bool"),
    ]
    if version.minor >= 17:
        items.append(Flag("certificate-key"))
    return _flags(*items)


def token_flags() -> dict[str, Flag]:
    """Flags of `kubeadm token list|delete`."""
    return _flags(
        Flag("kubeconfig", default="/etc/kubernetes/admin.conf"),
        Flag("dry-run", "bool"),
        Flag("output", short="o", default="text"),
    )


def upload_certs_phase_flags(version: KubeVersion) -> dict[str, Flag]:
    """Flags of `kubeadm init phase upload-certs`."""
    return _flags(
        Flag(upload_certs_flag(version), "bool"),
        Flag("certificate-key"),
        Flag("config"),
        Flag("kubeconfig", default="/etc/kubernetes/admin.conf"),
        Flag("skip-certificate-key-print", "bool"),
    )


def reset_flags(version: KubeVersion) -> dict[str, Flag]:
    """Flags of `kubeadm reset` (--config from 1.31, with v1beta4 ResetConfiguration)."""
    items = [
        Flag("force", "bool", short="f"),
        Flag("cert-dir", default=DEFAULT_CERT_DIR),
        Flag("cri-socket"),
        Flag("ignore-preflight-errors", "strings"),
        Flag("kubeconfig", default="/etc/kubernetes/admin.conf"),
        Flag("skip-phases", "strings"),
    ]
    if version.minor >= 31:
        items.append(Flag("config"))
    return _flags(*items)


def mixed_flag_error(parsed: ParsedFlags, version: KubeVersion) -> Optional[str]:
    """kubeadm's refusal to mix --config with flags the config file should carry, or None."""
    if not parsed.was_set("config"):
        return None
    allowed = {
        "config",
        "ignore-preflight-errors",
        "dry-run",
        "kubeconfig",
        "node-name",
        "kubeconfig-dir",
        "print-join-command",
        "rootfs",
        "v",
        upload_certs_flag(version),
    }
    if version.minor <= 21:
        allowed.add("cri-socket")
    if version.minor == 15:
        allowed.update({"upload-certs", "experimental-upload-certs"})
    if version.minor <= 14:
        allowed.add("certificate-key")
    if version.minor >= 26:
        allowed.add("log-file")
    mixed = sorted(n for n in parsed.changed if n not in allowed and not n.startswith("skip-"))
    if mixed:
        return f"can not mix '--config' with arguments [{' '.join(mixed)}]"
    return None


@dataclass
class TokenSpec:
    """One bootstrap token to create."""

    token: str
    ttl: Optional[float] = DEFAULT_TOKEN_TTL
    expires: Optional[float] = None
    usages: list[str] = field(default_factory=lambda: list(DEFAULT_TOKEN_USAGES))
    groups: list[str] = field(default_factory=lambda: list(DEFAULT_TOKEN_GROUPS))
    description: str = ""

    def expiration(self) -> Optional[float]:
        """Absolute expiry in seconds since the epoch (None: never)."""
        if self.expires is not None:
            return self.expires
        if self.ttl:
            return time.time() + self.ttl
        return None


@dataclass
class ClusterSettings:
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
    def from_dict(cls, data: dict[str, Any]) -> ClusterSettings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class InitPlan:
    """Everything `kubeadm init` will do, decided before anything is touched."""

    node_name: str
    cri_socket: str
    advertise_address: str
    bind_port: int
    cluster: ClusterSettings
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


def _extra_args(value: Any) -> dict[str, str]:
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


def _validate_node_name(name: str, where: str) -> Optional[str]:
    if _DNS1123_SUBDOMAIN.match(name) and len(name) <= 253:
        return None
    return (
        f'{where}: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
        "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )


def _valid_ip(text: str) -> bool:
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


def _validate_cluster(cluster: ClusterSettings, errors: list[str]) -> None:
    for name, value in (
        ("serviceSubnet", cluster.service_subnet),
        ("podSubnet", cluster.pod_subnet),
    ):
        if not value:
            continue
        for cidr in value.split(","):
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                errors.append(
                    f'networking.{name}: Invalid value: "{value}": couldn\'t parse subnet'
                )
    if cluster.control_plane_endpoint:
        host, port = split_endpoint(cluster.control_plane_endpoint, DEFAULT_BIND_PORT)
        if not host or not (_valid_ip(host) or _SAN_NAME.match(host)) or not 0 < port < 65536:
            errors.append(
                f'controlPlaneEndpoint: Invalid value: "{cluster.control_plane_endpoint}": '
                "must be host[:port] with a valid IP address or DNS name"
            )
    for index, san in enumerate(cluster.cert_sans):
        if not (_valid_ip(san) or _SAN_NAME.match(san)):
            errors.append(
                f'apiServer.certSANs[{index}]: Invalid value: "{san}": altname is not a valid IP '
                "address, DNS label or a DNS label with subdomain wildcards"
            )
    if cluster.encryption_algorithm not in ENCRYPTION_ALGORITHMS:
        errors.append(
            f'encryptionAlgorithm: Unsupported value: "{cluster.encryption_algorithm}": supported '
            f"values: {', '.join(repr(a) for a in ENCRYPTION_ALGORITHMS)}"
        )


def resolve_kubernetes_version(requested: str, package: KubeVersion, warnings: list[str]) -> str:
    """The control-plane version to deploy; labels fall back offline like kubeadm does.

    kubeadm fetches labels such as "stable-1" from dl.k8s.io; lab hosts have no internet, and
    kubeadm then falls back to its own version with a warning. A version older than one minor
    below kubeadm is refused.
    """
    if not requested or requested.startswith(("stable", "latest", "ci/")):
        warnings.append(
            "could not fetch a Kubernetes version from the internet: unable to get URL "
            f'"https://dl.k8s.io/release/{requested or "stable-1"}.txt": Get '
            f'"https://dl.k8s.io/release/{requested or "stable-1"}.txt": dial tcp: lookup '
            "dl.k8s.io: "
            "no such host"
        )
        warnings.append(f"falling back to the local client version: {package}")
        return str(package)
    parsed = parse_kube_version(requested)
    if parsed is None:
        raise PlanError(f'couldn\'t parse Kubernetes version "{requested}"')
    minimum = KubeVersion(package.major, package.minor - 1, 0)
    if parsed < minimum:
        raise PlanError(
            f"this version of kubeadm only supports deploying clusters with the control plane "
            f"version >= {minimum}. Current version: {parsed}"
        )
    if parsed.minor > package.minor:
        warnings.append(
            "Kubernetes version is greater than kubeadm version. Please consider to upgrade "
            f"kubeadm. Kubernetes version: {parsed}. Kubeadm version: {package.minor_text}.x"
        )
    return str(parsed)


def build_init_plan(
    parsed: ParsedFlags,
    config: Optional[DecodedConfig],
    version: KubeVersion,
    default_name: str,
    default_cri: str,
) -> InitPlan:
    """InitPlan from flags, or from the config file plus the flags allowed beside it."""
    values = parsed.values
    upload = bool(
        values.get(upload_certs_flag(version))
        or values.get("experimental-upload-certs")
        or values.get("upload-certs")
    )
    cluster = ClusterSettings()
    tokens: list[TokenSpec] = []
    plan = InitPlan(
        node_name="",
        cri_socket="",
        advertise_address="",
        bind_port=DEFAULT_BIND_PORT,
        cluster=cluster,
        tokens=tokens,
        upload_certs=upload,
        skip_token_print=bool(values.get("skip-token-print")),
        skip_certificate_key_print=bool(values.get("skip-certificate-key-print")),
        dry_run=bool(values.get("dry-run")),
        skip_phases=list(values.get("skip-phases") or []),
    )
    errors: list[str] = []
    requested_version = ""
    if config is None:
        plan.node_name = values.get("node-name") or ""
        plan.cri_socket = values.get("cri-socket") or ""
        plan.advertise_address = values.get("apiserver-advertise-address") or ""
        plan.bind_port = int(values.get("apiserver-bind-port") or DEFAULT_BIND_PORT)
        plan.certificate_key = values.get("certificate-key") or ""
        cluster.control_plane_endpoint = values.get("control-plane-endpoint") or ""
        cluster.service_subnet = values.get("service-cidr") or DEFAULT_SERVICE_SUBNET
        cluster.pod_subnet = values.get("pod-network-cidr") or ""
        cluster.dns_domain = values.get("service-dns-domain") or DEFAULT_DNS_DOMAIN
        cluster.cert_sans = list(values.get("apiserver-cert-extra-sans") or [])
        cluster.cert_dir = values.get("cert-dir") or DEFAULT_CERT_DIR
        cluster.image_repository = values.get("image-repository") or ""
        requested_version = values.get("kubernetes-version") or ""
        token = values.get("token") or ""
        if token:
            problem = validate_token(token, "token")
            if problem:
                errors.append(problem)
        tokens.append(TokenSpec(token=token, ttl=values.get("token-ttl")))
    else:
        plan.warnings.extend(config.warnings)
        init_doc = config.find("InitConfiguration")
        cluster_doc = config.find("ClusterConfiguration")
        if init_doc is None and cluster_doc is None:
            raise PlanError(
                "no InitConfiguration or ClusterConfiguration kind was found in the YAML file"
            )
        init = init_doc.data if init_doc else {}
        node_reg = init.get("nodeRegistration") or {}
        plan.node_name = node_reg.get("name") or ""
        plan.cri_socket = node_reg.get("criSocket") or ""
        plan.kubelet_extra_args = _extra_args(node_reg.get("kubeletExtraArgs"))
        plan.taints = node_reg.get("taints")
        plan.ignore_preflight = list(node_reg.get("ignorePreflightErrors") or [])
        endpoint = init.get("localAPIEndpoint") or {}
        plan.advertise_address = endpoint.get("advertiseAddress") or ""
        plan.bind_port = int(endpoint.get("bindPort") or DEFAULT_BIND_PORT)
        plan.certificate_key = init.get("certificateKey") or ""
        plan.skip_phases = list(init.get("skipPhases") or []) + plan.skip_phases
        if init.get("dryRun"):
            plan.dry_run = True
        for index, item in enumerate(init.get("bootstrapTokens") or [{}]):
            item = item or {}
            token = str(item.get("token") or "")
            if token:
                problem = validate_token(token, f"bootstrapTokens[{index}].token")
                if problem:
                    errors.append(problem)
            ttl = parse_go_duration(item["ttl"]) if item.get("ttl") else DEFAULT_TOKEN_TTL
            tokens.append(
                TokenSpec(
                    token=token,
                    ttl=ttl,
                    description=str(item.get("description") or ""),
                    usages=list(item.get("usages") or DEFAULT_TOKEN_USAGES),
                    groups=list(item.get("groups") or DEFAULT_TOKEN_GROUPS),
                )
            )
        cdoc = cluster_doc.data if cluster_doc else {}
        networking = cdoc.get("networking") or {}
        cluster.control_plane_endpoint = cdoc.get("controlPlaneEndpoint") or ""
        cluster.service_subnet = networking.get("serviceSubnet") or DEFAULT_SERVICE_SUBNET
        cluster.pod_subnet = networking.get("podSubnet") or ""
        cluster.dns_domain = networking.get("dnsDomain") or DEFAULT_DNS_DOMAIN
        cluster.cert_sans = list((cdoc.get("apiServer") or {}).get("certSANs") or [])
        cluster.cert_dir = cdoc.get("certificatesDir") or DEFAULT_CERT_DIR
        cluster.cluster_name = cdoc.get("clusterName") or "kubernetes"
        cluster.image_repository = cdoc.get("imageRepository") or ""
        cluster.encryption_algorithm = cdoc.get("encryptionAlgorithm") or "RSA-2048"
        requested_version = cdoc.get("kubernetesVersion") or ""
        kubelet_doc = config.find("KubeletConfiguration", "kubelet.config.k8s.io")
        proxy_doc = config.find("KubeProxyConfiguration", "kubeproxy.config.k8s.io")
        plan.kubelet_config = dict(kubelet_doc.data) if kubelet_doc else {}
        plan.kubeproxy_config = dict(proxy_doc.data) if proxy_doc else {}
        # Flags allowed next to --config still apply (node name and CRI socket override).
        if values.get("node-name"):
            plan.node_name = values["node-name"]
        if values.get("cri-socket"):
            plan.cri_socket = values["cri-socket"]
        if values.get("certificate-key"):
            plan.certificate_key = values["certificate-key"]
    plan.ignore_preflight = sorted(
        {*plan.ignore_preflight, *[i.lower() for i in values.get("ignore-preflight-errors") or []]}
    )
    plan.node_name = plan.node_name or default_name
    plan.cri_socket = plan.cri_socket or default_cri
    problem = _validate_node_name(plan.node_name, "nodeRegistration.name")
    if problem:
        errors.append(problem)
    if plan.advertise_address and not _valid_ip(plan.advertise_address):
        errors.append(
            f'localAPIEndpoint.advertiseAddress: Invalid value: "{plan.advertise_address}": '
            "must be a valid IP address"
        )
    if not 0 < plan.bind_port < 65536:
        errors.append(
            f"localAPIEndpoint.bindPort: Invalid value: {plan.bind_port}: port is out of range"
        )
    if plan.certificate_key and not _CERT_KEY_RE.match(plan.certificate_key):
        errors.append(
            'certificateKey: Invalid value: "<redacted>": the certificate key must be 32 bytes '
            "encoded as 64 hex characters"
        )
    _validate_cluster(cluster, errors)
    if errors:
        raise PlanError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
    cluster.kubernetes_version = resolve_kubernetes_version(
        requested_version, version, plan.warnings
    )
    return plan


def build_join_plan(
    parsed: ParsedFlags,
    config: Optional[DecodedConfig],
    version: KubeVersion,
    default_name: str,
    default_cri: str,
) -> JoinPlan:
    """JoinPlan from flags and the endpoint argument, or from a JoinConfiguration."""
    values = parsed.values
    control_flag = control_plane_flag(version)
    control = bool(
        values.get(control_flag)
        or values.get("experimental-control-plane")
        or values.get("control-plane")
    )
    discovery_timeout = float(DEFAULT_DISCOVERY_TIMEOUT)
    tls_timeout = float(DEFAULT_TLS_BOOTSTRAP_TIMEOUT)
    warnings: list[str] = []
    if config is None:
        token = values.get("token") or ""
        discovery_token = values.get("discovery-token") or token
        plan = JoinPlan(
            node_name=values.get("node-name") or "",
            cri_socket=values.get("cri-socket") or "",
            endpoint=parsed.args[0] if parsed.args else "",
            token=discovery_token,
            tls_bootstrap_token=values.get("tls-bootstrap-token") or token or discovery_token,
            ca_cert_hashes=list(values.get("discovery-token-ca-cert-hash") or []),
            unsafe_skip_ca_verification=bool(
                values.get("discovery-token-unsafe-skip-ca-verification")
            ),
            discovery_file=values.get("discovery-file") or "",
            discovery_timeout=discovery_timeout,
            tls_bootstrap_timeout=tls_timeout,
            control_plane=control,
            advertise_address=values.get("apiserver-advertise-address") or "",
            bind_port=int(values.get("apiserver-bind-port") or DEFAULT_BIND_PORT),
            certificate_key=values.get("certificate-key") or "",
            skip_phases=list(values.get("skip-phases") or []),
        )
        if len(parsed.args) > 1:
            warnings.append(
                f"[preflight] WARNING: More than one API server endpoint supplied on command line "
                f"{parsed.args}. Using the first one."
            )
    else:
        warnings.extend(config.warnings)
        doc = config.find("JoinConfiguration")
        if doc is None:
            raise PlanError("no JoinConfiguration kind was found in the YAML file")
        for other in config.documents:
            if other is not doc:
                warnings.append(
                    f"[config] WARNING: Ignored YAML document with GroupVersionKind "
                    f"{other.api_version}, Kind={other.kind}"
                )
        data = doc.data
        node_reg = data.get("nodeRegistration") or {}
        discovery = data.get("discovery") or {}
        bootstrap = discovery.get("bootstrapToken") or {}
        timeouts = data.get("timeouts") or {}
        if discovery.get("timeout"):
            discovery_timeout = parse_go_duration(discovery["timeout"]) or discovery_timeout
        if timeouts.get("discovery"):
            discovery_timeout = parse_go_duration(timeouts["discovery"]) or discovery_timeout
        if timeouts.get("tlsBootstrap"):
            tls_timeout = parse_go_duration(timeouts["tlsBootstrap"]) or tls_timeout
        control_doc = data.get("controlPlane")
        local = (control_doc or {}).get("localAPIEndpoint") or {}
        plan = JoinPlan(
            node_name=node_reg.get("name") or "",
            cri_socket=node_reg.get("criSocket") or "",
            endpoint=bootstrap.get("apiServerEndpoint") or "",
            token=bootstrap.get("token") or "",
            tls_bootstrap_token=discovery.get("tlsBootstrapToken") or bootstrap.get("token") or "",
            ca_cert_hashes=list(bootstrap.get("caCertHashes") or []),
            unsafe_skip_ca_verification=bool(bootstrap.get("unsafeSkipCAVerification")),
            discovery_file=(discovery.get("file") or {}).get("kubeConfigPath") or "",
            discovery_timeout=discovery_timeout,
            tls_bootstrap_timeout=tls_timeout,
            control_plane=control_doc is not None,
            advertise_address=local.get("advertiseAddress") or "",
            bind_port=int(local.get("bindPort") or DEFAULT_BIND_PORT),
            certificate_key=(control_doc or {}).get("certificateKey") or "",
            kubelet_extra_args=_extra_args(node_reg.get("kubeletExtraArgs")),
            taints=node_reg.get("taints"),
            ignore_preflight=list(node_reg.get("ignorePreflightErrors") or []),
            skip_phases=list(data.get("skipPhases") or []),
        )
        if values.get("node-name"):
            plan.node_name = values["node-name"]
        if values.get("cri-socket"):
            plan.cri_socket = values["cri-socket"]
        if version.minor <= 14 and values.get("certificate-key"):
            plan.certificate_key = values["certificate-key"]
        if control and control_doc is None:
            plan.control_plane = True
    plan.warnings = warnings
    plan.ignore_preflight = sorted(
        {*plan.ignore_preflight, *[i.lower() for i in values.get("ignore-preflight-errors") or []]}
    )
    plan.node_name = plan.node_name or default_name
    plan.cri_socket = plan.cri_socket or default_cri
    errors: list[str] = []
    problem = _validate_node_name(plan.node_name, "nodeRegistration.name")
    if problem:
        errors.append(problem)
    if plan.discovery_file:
        errors.append(
            "discovery.file: the sealos-lab stand-in supports token discovery only "
            "(--discovery-file is not implemented)"
        )
    elif not plan.token:
        errors.append('discovery: Invalid value: "": bootstrapToken or file must be set')
    else:
        problem = validate_token(plan.token, "discovery.bootstrapToken.token")
        if problem:
            errors.append(problem)
        if not plan.endpoint:
            errors.append("discovery.bootstrapToken.apiServerEndpoint: Required value: ")
        if not plan.ca_cert_hashes and not plan.unsafe_skip_ca_verification:
            errors.append(
                "discovery.bootstrapToken.caCertHashes: Invalid value: []string(nil): using "
                "token-based discovery without caCertHashes can be unsafe. Set "
                "unsafeSkipCAVerification as true in your kubeadm config file or pass "
                "--discovery-token-unsafe-skip-ca-verification flag to continue"
            )
    if plan.tls_bootstrap_token and plan.tls_bootstrap_token != plan.token:
        problem = validate_token(plan.tls_bootstrap_token, "discovery.tlsBootstrapToken")
        if problem:
            errors.append(problem)
    if plan.advertise_address and not _valid_ip(plan.advertise_address):
        errors.append(
            f"controlPlane.localAPIEndpoint.advertiseAddress: Invalid value: "
            f'"{plan.advertise_address}": must be a valid IP address'
        )
    if plan.certificate_key and not _CERT_KEY_RE.match(plan.certificate_key):
        errors.append(
            'controlPlane.certificateKey: Invalid value: "<redacted>": the certificate key must '
            "be 32 bytes encoded as 64 hex characters"
        )
    for index, pin in enumerate(plan.ca_cert_hashes):
        if not re.match(r"^sha256:[0-9a-fA-F]{64}$", pin):
            errors.append(
                f'discovery.bootstrapToken.caCertHashes[{index}]: Invalid value: "{pin}": invalid '
                'hash, expected "format:hex-value". Known format(s) are: sha256'
            )
    if errors:
        raise PlanError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
    return plan
