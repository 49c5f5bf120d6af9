"""kubeadm configs rendered from Python data (then dumped as YAML), kubeadm commands, and parsing of
kubeadm's output. One small function per difference between kubeadm API versions.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from sealos.kubeversion import KubeVersion
from sealos.remote_paths import q

APISERVER_PORT = 6443
KUBE_PROXY_API = "kubeproxy.config.k8s.io/v1alpha1"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
# kubeadm's own defaults, written out so that slow hosts get the same budget on every version.
CONTROL_PLANE_TIMEOUT = "4m0s"
DISCOVERY_TIMEOUT = "5m0s"

Doc = dict[str, Any]


@dataclass
class ClusterSettings:
    """What the rendered configs depend on: a narrow view of the cluster spec."""

    version: KubeVersion
    apiserver: str
    vip: str
    masters: list[str]  # master IPs, first master first
    pod_cidr: str
    svc_cidr: str
    cert_sans: list[str] = field(default_factory=list)
    repo: Optional[str] = None
    cri_socket: Optional[str] = None  # the first master's; None: kubeadm's default
    cgroup_driver: Optional[str] = None  # the runtimes'; None: kubeadm's default

    @property
    def endpoint(self) -> str:
        """controlPlaneEndpoint: the apiserver name, resolved per host through /etc/hosts."""
        return f"{self.apiserver}:{APISERVER_PORT}"


@dataclass
class JoinInfo:
    """What a new member needs to join. Token and certificate key are secrets."""

    endpoint: str
    token: str = field(repr=False)
    ca_cert_hashes: list[str]
    certificate_key: Optional[str] = field(default=None, repr=False)

    def secrets(self) -> list[str]:
        """The strings a log must never show."""
        return [s for s in (self.token, self.certificate_key) if s]

    @property
    def token_id(self) -> str:
        """The token's public half (`abcdef` of `abcdef.0123456789abcdef`): names it to
        `kubeadm token delete` without giving the secret away."""
        return self.token.split(".", 1)[0]


# --- per-version differences -------------------------------------------------------------------


def _type_meta(version: KubeVersion, kind: str) -> Doc:
    return {"apiVersion": version.kubeadm_api, "kind": kind}


def _node_registration(version: KubeVersion, cri_socket: Optional[str]) -> Doc:
    # The socket's form changed too: a bare path until 1.23, a unix:// URL from 1.24 (the caller
    # gives it in the version's form: sealos.preconditions.cri_socket_value).
    return {"criSocket": cri_socket or version.default_cri_socket}


def _set_control_plane_timeout(version: KubeVersion, init: Doc, cluster: Doc, value: str) -> None:
    # v1beta4 moved apiServer.timeoutForControlPlane to InitConfiguration.timeouts.
    if version.kubeadm_api.endswith("v1beta4"):
        init.setdefault("timeouts", {})["controlPlaneComponentHealthCheck"] = value
    else:
        cluster.setdefault("apiServer", {})["timeoutForControlPlane"] = value


def _set_discovery_timeout(version: KubeVersion, join: Doc, value: str) -> None:
    # v1beta4 moved discovery.timeout to JoinConfiguration.timeouts.discovery.
    if version.kubeadm_api.endswith("v1beta4"):
        join.setdefault("timeouts", {})["discovery"] = value
    else:
        join["discovery"]["timeout"] = value


def _set_join_certificate_key(version: KubeVersion, join: Doc, key: Optional[str]) -> None:
    # v1beta1 (1.14) has no certificateKey field: there the key travels as a flag.
    if key and version.certificate_key_in_config:
        join["controlPlane"]["certificateKey"] = key


# --- documents ---------------------------------------------------------------------------------


def cert_sans(s: ClusterSettings) -> list[str]:
    """Apiserver certificate names: loopback, apiserver name, every master, the VIP, extras."""
    names = ["127.0.0.1", s.apiserver, *s.masters, s.vip, *s.cert_sans]
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def init_documents(s: ClusterSettings, advertise_address: str) -> list[Doc]:
    """InitConfiguration, ClusterConfiguration and KubeProxyConfiguration for `kubeadm init`."""
    v = s.version
    init: Doc = {
        **_type_meta(v, "InitConfiguration"),
        "localAPIEndpoint": {"advertiseAddress": advertise_address, "bindPort": APISERVER_PORT},
        "nodeRegistration": _node_registration(v, s.cri_socket),
    }
    cluster: Doc = {
        **_type_meta(v, "ClusterConfiguration"),
        "kubernetesVersion": str(v),
        "controlPlaneEndpoint": s.endpoint,
        "apiServer": {"certSANs": cert_sans(s)},
        "networking": {"podSubnet": s.pod_cidr, "serviceSubnet": s.svc_cidr},
    }
    if s.repo:
        cluster["imageRepository"] = s.repo
    _set_control_plane_timeout(v, init, cluster, CONTROL_PLANE_TIMEOUT)
    docs = [init, cluster, kube_proxy_document(s)]
    if s.cgroup_driver:
        docs.append(kubelet_document(s.cgroup_driver))
    return docs


def kubelet_document(cgroup_driver: str) -> Doc:
    """The kubelets' cgroup driver, the container runtime's: kubeadm defaults it to systemd
    from 1.22 (the kubelet to cgroupfs); a kubelet on another driver than its runtime fails."""
    return {
        "apiVersion": KUBELET_API,
        "kind": "KubeletConfiguration",
        "cgroupDriver": cgroup_driver,
    }


def kube_proxy_document(s: ClusterSettings) -> Doc:
    """kube-proxy in IPVS mode, leaving the VIP alone (else it deletes lvscare's rule)."""
    vip = ipaddress.ip_address(s.vip)
    return {
        "apiVersion": KUBE_PROXY_API,
        "kind": "KubeProxyConfiguration",
        "mode": "ipvs",
        "ipvs": {"excludeCIDRs": [f"{vip}/{vip.max_prefixlen}"]},
    }


def join_document(
    version: KubeVersion,
    info: JoinInfo,
    api_server_endpoint: str,
    control_plane_address: Optional[str] = None,
    cri_socket: Optional[str] = None,
) -> Doc:
    """JoinConfiguration for a node, or for a master when `control_plane_address` is given;
    `cri_socket` is the joining host's runtime (None: kubeadm's default)."""
    join: Doc = {
        **_type_meta(version, "JoinConfiguration"),
        "discovery": {
            "bootstrapToken": {
                "token": info.token,
                "apiServerEndpoint": api_server_endpoint,
                "caCertHashes": list(info.ca_cert_hashes),
            }
        },
        "nodeRegistration": _node_registration(version, cri_socket),
    }
    _set_discovery_timeout(version, join, DISCOVERY_TIMEOUT)
    if control_plane_address is not None:
        join["controlPlane"] = {
            "localAPIEndpoint": {
                "advertiseAddress": control_plane_address,
                "bindPort": APISERVER_PORT,
            }
        }
        _set_join_certificate_key(version, join, info.certificate_key)
    return join


def _config_docs(path: Any) -> list[Doc]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError):
        return []  # reported by validation


def config_cri_socket(path: Any) -> Optional[str]:
    """The criSocket a user's kubeadm config (file `path`) gives its InitConfiguration."""
    for doc in _config_docs(path):
        if doc.get("kind") == "InitConfiguration":
            socket = (doc.get("nodeRegistration") or {}).get("criSocket")
            return str(socket) if socket else None
    return None


def config_cgroup_driver(path: Any) -> Optional[str]:
    """The cgroupDriver of a user's kubeadm config's KubeletConfiguration, if it sets one."""
    for doc in _config_docs(path):
        if doc.get("kind") == "KubeletConfiguration" and doc.get("cgroupDriver"):
            return str(doc["cgroupDriver"])
    return None


def with_kubelet_document(config: bytes, cgroup_driver: Optional[str]) -> tuple[bytes, str]:
    """A user's kubeadm config, plus a KubeletConfiguration with the runtime's cgroup driver when
    it has none (what sealos renders too); the note says what was added."""
    text = config.decode()
    kinds = {d.get("kind") for d in yaml.safe_load_all(text) if isinstance(d, dict)}
    if cgroup_driver is None or "KubeletConfiguration" in kinds:
        return config, ""
    extra = dump([kubelet_document(cgroup_driver)])
    joined = text if text.endswith("\n") else text + "\n"
    return (joined + extra).encode(), f" + KubeletConfiguration cgroupDriver: {cgroup_driver}"


def dump(docs: list[Doc]) -> str:
    """Several documents as one YAML stream."""
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, explicit_start=True)


# --- commands ----------------------------------------------------------------------------------


def init_command(version: KubeVersion, config_path: str) -> str:
    """`kubeadm init` with the config and the version's upload-certs flag."""
    return f"kubeadm init --config {q(config_path)} {version.upload_certs_flag}"


def join_with_config_command() -> str:
    """`kubeadm join` reading its JoinConfiguration (which holds the token) from stdin.

    The file is created with umask 077 and removed afterwards, also when the session is cut.
    """
    return (
        "umask 077; f=$(mktemp /tmp/sealos-join.XXXXXX) || exit 1; "
        "trap 'rm -f \"$f\"' EXIT; trap 'rm -f \"$f\"; exit 129' HUP INT TERM; "
        'cat > "$f" && kubeadm join --config "$f"'
    )


def join_command_1_14_control_plane(
    version: KubeVersion,
    endpoint: str,
    ca_hashes: list[str],
    advertise: str,
    cri_socket: Optional[str] = None,
) -> str:
    """Control-plane join on 1.14: flags only, secrets read from stdin into shell variables.

    v1beta1 has no certificateKey field and 1.14 refuses to mix --config with --certificate-key,
    so token and key must be kubeadm flags; reading them from stdin keeps them out of the SSH
    command line and our log (they are still briefly in kubeadm's argv on the host).
    """
    hashes = " ".join(f"--discovery-token-ca-cert-hash {q(h)}" for h in ca_hashes)
    return (
        "IFS= read -r token && IFS= read -r key && "
        f'kubeadm join {q(endpoint)} --token "$token" {hashes} {version.control_plane_flag} '
        f'--certificate-key "$key" --apiserver-advertise-address {q(advertise)} '
        f"--apiserver-bind-port {APISERVER_PORT}"
        + (f" --cri-socket {q(cri_socket)}" if cri_socket else "")
    )


def token_create_command() -> str:
    """A fresh bootstrap token, printed as a worker join command."""
    return "kubeadm token create --print-join-command"


def token_delete_command(token_ids: list[str]) -> str:
    """Delete bootstrap tokens by their IDs (never the secret half: argv is public)."""
    return "kubeadm token delete " + " ".join(q(t) for t in token_ids)


def upload_certs_command(version: KubeVersion, config_path: Optional[str]) -> str:
    """Re-upload control-plane certificates under a new key (printed on the last line)."""
    config = f" --config {q(config_path)}" if config_path else ""
    return f"kubeadm init phase upload-certs {version.upload_certs_flag}{config}"


# --- output parsing ----------------------------------------------------------------------------

_TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def parse_join_commands(output: str) -> Optional[JoinInfo]:
    """The join info in `kubeadm init` or `kubeadm token create --print-join-command` output.

    Reads every `kubeadm join` command (lines continued with a backslash); the control-plane
    one adds the certificate key. None when there is no join command.
    """
    text = re.sub(r"\\\s*\n", " ", output)
    info: Optional[JoinInfo] = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("kubeadm join "):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        parsed = _parse_join_words(words[2:])
        if parsed is None:
            continue
        if info is None:
            info = parsed
        elif parsed.certificate_key and not info.certificate_key:
            info.certificate_key = parsed.certificate_key
    return info


def _parse_join_words(words: list[str]) -> Optional[JoinInfo]:
    endpoint = ""
    token = ""
    hashes: list[str] = []
    key: Optional[str] = None
    i = 0
    while i < len(words):
        w = words[i]
        name, eq, inline = w.partition("=")
        value = inline if eq else (words[i + 1] if i + 1 < len(words) else "")
        takes_value = name in {"--token", "--discovery-token-ca-cert-hash", "--certificate-key"}
        if name == "--token":
            token = value
        elif name == "--discovery-token-ca-cert-hash":
            hashes.append(value)
        elif name == "--certificate-key":
            key = value
        elif not w.startswith("-") and not endpoint:
            endpoint = w
        i += 2 if takes_value and not eq else 1
    if not endpoint or not _TOKEN.match(token) or not hashes:
        return None
    if key is not None and not _HEX64.match(key):
        key = None
    return JoinInfo(endpoint=endpoint, token=token, ca_cert_hashes=hashes, certificate_key=key)


def parse_certificate_key(output: str) -> Optional[str]:
    """The key `kubeadm init phase upload-certs` prints on its last line."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if lines and _HEX64.match(lines[-1]):
        return lines[-1]
    return None
