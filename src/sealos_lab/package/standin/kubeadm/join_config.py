"""`kubeadm join`'s settings from flags or --config (JoinConfiguration), checked as kubeadm does.

The config was already decoded strictly (decoder.py); here are kubeadm's semantic checks:
discovery (token, endpoint, CA pins), node name, advertise address, certificate key.
"""

from __future__ import annotations

import re
from typing import Callable, Optional, Union

from ..cliflags import ParsedFlags
from ..decoder import DecodedConfig, parse_go_duration
from ..versions import KubeVersion, control_plane_flag
from .plans import (
    CERT_KEY_RE,
    DEFAULT_BIND_PORT,
    DEFAULT_DISCOVERY_TIMEOUT,
    DEFAULT_TLS_BOOTSTRAP_TIMEOUT,
    JoinPlan,
    PlanError,
    apply_flags_beside_config,
    extra_args_dict,
    is_valid_ip,
    raise_plan_errors,
    settle_node_registration,
    validate_token,
)


def build_join_plan(
    parsed: ParsedFlags,
    config: Optional[DecodedConfig],
    version: KubeVersion,
    default_name: str,
    default_cri: Union[str, Callable[[], str]],
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
            kubelet_extra_args=extra_args_dict(node_reg.get("kubeletExtraArgs")),
            taints=node_reg.get("taints"),
            ignore_preflight=list(node_reg.get("ignorePreflightErrors") or []),
            skip_phases=list(data.get("skipPhases") or []),
        )
        apply_flags_beside_config(plan, values)
        if version.minor <= 14 and values.get("certificate-key"):
            plan.certificate_key = values["certificate-key"]
        if control and control_doc is None:
            plan.control_plane = True
    plan.warnings = warnings
    errors: list[str] = []
    settle_node_registration(plan, values, default_name, default_cri, errors)
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
    if plan.advertise_address and not is_valid_ip(plan.advertise_address):
        errors.append(
            f"controlPlane.localAPIEndpoint.advertiseAddress: Invalid value: "
            f'"{plan.advertise_address}": must be a valid IP address'
        )
    if plan.certificate_key and not CERT_KEY_RE.match(plan.certificate_key):
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
    raise_plan_errors(errors)
    return plan
