"""`kubeadm init`'s settings from flags or --config, checked as kubeadm checks them.

InitConfiguration and ClusterConfiguration (plus KubeletConfiguration, KubeProxyConfiguration);
the config was already decoded strictly (decoder.py); here are kubeadm's semantic checks.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Callable, Optional, Union

from ..cliflags import ParsedFlags
from ..decoder import DecodedConfig
from ..versions import KubeVersion, parse_kube_version, upload_certs_flag
from .plans import (
    CERT_KEY_RE,
    DEFAULT_BIND_PORT,
    DEFAULT_CERT_DIR,
    DEFAULT_DNS_DOMAIN,
    DEFAULT_SERVICE_SUBNET,
    ClusterConfigFields,
    InitPlan,
    PlanError,
    TokenSpec,
    apply_flags_beside_config,
    extra_args_dict,
    is_valid_ip,
    raise_plan_errors,
    settle_node_registration,
    split_endpoint,
    validate_token,
)

ENCRYPTION_ALGORITHMS = ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384")
_SAN_NAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _validate_cluster(cluster: ClusterConfigFields, errors: list[str]) -> None:
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
        if not host or not (is_valid_ip(host) or _SAN_NAME.match(host)) or not 0 < port < 65536:
            errors.append(
                f'controlPlaneEndpoint: Invalid value: "{cluster.control_plane_endpoint}": '
                "must be host[:port] with a valid IP address or DNS name"
            )
    for index, san in enumerate(cluster.cert_sans):
        if not (is_valid_ip(san) or _SAN_NAME.match(san)):
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
    default_cri: Union[str, Callable[[], str]],
) -> InitPlan:
    """InitPlan from flags, or from the config file plus the flags allowed beside it."""
    values = parsed.values
    upload = bool(
        values.get(upload_certs_flag(version))
        or values.get("experimental-upload-certs")
        or values.get("upload-certs")
    )
    cluster = ClusterConfigFields()
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
        plan.kubelet_extra_args = extra_args_dict(node_reg.get("kubeletExtraArgs"))
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
            tokens.append(TokenSpec.from_config(item, token))
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
        apply_flags_beside_config(plan, values)
        if values.get("certificate-key"):
            plan.certificate_key = values["certificate-key"]
    settle_node_registration(plan, values, default_name, default_cri, errors)
    if plan.advertise_address and not is_valid_ip(plan.advertise_address):
        errors.append(
            f'localAPIEndpoint.advertiseAddress: Invalid value: "{plan.advertise_address}": '
            "must be a valid IP address"
        )
    if not 0 < plan.bind_port < 65536:
        errors.append(
            f"localAPIEndpoint.bindPort: Invalid value: {plan.bind_port}: port is out of range"
        )
    if plan.certificate_key and not CERT_KEY_RE.match(plan.certificate_key):
        errors.append(
            'certificateKey: Invalid value: "<redacted>": the certificate key must be 32 bytes '
            "encoded as 64 hex characters"
        )
    _validate_cluster(cluster, errors)
    raise_plan_errors(errors)
    cluster.kubernetes_version = resolve_kubernetes_version(
        requested_version, version, plan.warnings
    )
    return plan
