"""The kubeadm stand-in: init, join, token, init phase upload-certs, reset, version.

Output follows real kubeadm of the package's release (phase lines, the init success text with its
two join commands, error texts); paths printed are the real ones even in test mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import traceback
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from .apiclient import ApiClient, ApiError, ConnectError, split_server
from .apiserver import apiserver_main, parse_rfc3339, rfc3339
from .cliflags import Flag, FlagError, ParsedFlags, parse_flags
from .decoder import ConfigError, DecodedConfig, decode_config, format_go_duration
from .embedded import PACKAGE_VERSION, load_schemas
from .hostenv import (
    APISERVER_UNIT,
    KUBELET_UNIT,
    ServiceError,
    daemon_reload,
    default_route_address,
    first_global_address,
    header_line,
    host_path,
    node_hostname,
    port_in_use,
    self_command,
    self_path,
    service_enable,
    service_restart,
    service_stop,
    standin_root,
    systemd_usable,
    without_systemd,
    write_private,
)
from .kubeadm_config import (
    DEFAULT_BIND_PORT,
    DEFAULT_CERT_DIR,
    ClusterSettings,
    InitPlan,
    JoinPlan,
    PlanError,
    TokenSpec,
    build_init_plan,
    build_join_plan,
    init_flags,
    join_flags,
    mixed_flag_error,
    reset_flags,
    split_endpoint,
    token_create_flags,
    token_flags,
    upload_certs_phase_flags,
    validate_token,
)
from .pki import (
    PkiError,
    issue_cert,
    jws_valid,
    kubeconfig_document,
    load_kubeconfig,
    make_ca,
    new_bootstrap_token,
    new_certificate_key,
    new_keys,
    parse_kubeconfig,
    public_key_pem,
    seal,
    spki_pin,
    unseal,
)
from .versions import (
    KubeVersion,
    admin_group,
    checks_duplicate_node_name,
    control_plane_flag,
    control_plane_labels,
    control_plane_taints,
    default_cri_socket,
    deprecated_ha_aliases,
    discovery_fails_fast,
    join_line_indent,
    kubelet_config_map_name,
    parse_kube_version,
    shows_root_kubeconfig_hint,
    upload_certs_flag,
    version_info,
    version_info_struct,
    writes_super_admin_conf,
)

K8S_DIR = "/etc/kubernetes"
MANIFESTS = "/etc/kubernetes/manifests"
KUBELET_DIR = "/var/lib/kubelet"
ETCD_DIR = "/var/lib/etcd"
STATE_DIR = "/var/lib/etcd/standin"
WAIT_TIMEOUT = 240.0
DISCOVERY_RETRY = 5.0
SHARED_CERTS = [
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
]
STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"


class KubeadmFailure(Exception):
    """kubeadm gives up; str() is printed on stderr, exit code 1."""


def out(line: str = "") -> None:
    """A line on stdout, flushed (callers read it live over SSH)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    """A klog warning line on stderr."""
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
    sys.stderr.write(f"W{stamp} {os.getpid():7d} kubeadm.go] {message}\n")
    sys.stderr.flush()


def _version() -> KubeVersion:
    parsed = parse_kube_version(PACKAGE_VERSION)
    assert parsed is not None, PACKAGE_VERSION
    return parsed


def _wait(what: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if what():
                return True
        except (ApiError, ConnectError, OSError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _env_seconds(name: str, default: float) -> float:
    """A timeout default that tests may shorten (never used when a config sets the value)."""
    with contextlib.suppress(ValueError):
        return float(os.environ.get(name, default))
    return default


# preflight -----------------------------------------------------------------------------------


def require_manageable_host() -> None:
    """Refuse to change a host whose services the stand-ins can't manage.

    Lab hosts run systemd; tests set SEALOS_STANDIN_ROOT and SEALOS_STANDIN_NO_SYSTEMD=1 together.
    Anything else (a developer machine without systemd, or a half-set test mode) is refused
    before a single file is written.
    """
    if standin_root() and not without_systemd():
        raise KubeadmFailure(
            "SEALOS_STANDIN_ROOT is set but SEALOS_STANDIN_NO_SYSTEMD is not: test mode needs both "
            "(set SEALOS_STANDIN_NO_SYSTEMD=1)"
        )
    if not systemd_usable():
        raise KubeadmFailure(
            "this host does not run systemd, which the sealos-lab stand-ins use for the kubelet "
            "and "
            "the apiserver: run them on a lab host, or set SEALOS_STANDIN_ROOT=DIR and "
            "SEALOS_STANDIN_NO_SYSTEMD=1 for test mode"
        )


def run_preflight(checks: list[tuple[str, str, bool]], ignored: list[str]) -> None:
    """Print warnings, fail on errors not ignored (kubeadm's preflight output)."""
    ignore = {i.lower() for i in ignored}
    fatal = []
    for name, message, is_error in checks:
        if is_error and "all" not in ignore and name.lower() not in ignore:
            fatal.append(f"\t[ERROR {name}]: {message}")
        else:
            sys.stderr.write(f"\t[WARNING {name}]: {message}\n")
    if fatal:
        raise KubeadmFailure(
            "error execution phase preflight: [preflight] Some fatal errors occurred:\n"
            + "\n".join(fatal)
            + "\n[preflight] If you know what you are doing, you can make a check non-fatal with "
            "`--ignore-preflight-errors=...`"
        )


def _file_check(path: str) -> list[tuple[str, str, bool]]:
    if host_path(path).exists():
        name = "FileAvailable-" + path.replace("/", "-")
        return [(name, f"{path} already exists", True)]
    return []


def _dir_check(path: str) -> list[tuple[str, str, bool]]:
    target = host_path(path)
    if target.is_dir() and any(target.iterdir()):
        return [("DirAvailable-" + path.replace("/", "-"), f"{path} is not empty", True)]
    return []


def _port_check(port: int) -> list[tuple[str, str, bool]]:
    return [(f"Port-{port}", f"Port {port} is in use", True)] if port_in_use(port) else []


def _common_checks() -> list[tuple[str, str, bool]]:
    checks: list[tuple[str, str, bool]] = []
    if os.geteuid() != 0:
        checks.append(("IsPrivilegedUser", "user is not running as root", True))
    unit = host_path("/etc/systemd/system/kubelet.service")
    if not unit.exists() and not Path("/lib/systemd/system/kubelet.service").exists():
        checks.append(
            (
                "Service-Kubelet",
                "kubelet service is not enabled, please run 'systemctl enable kubelet.service'",
                False,
            )
        )
    return checks


# files kubeadm writes ------------------------------------------------------------------------


def _pki(cluster: ClusterSettings, name: str) -> Path:
    return host_path(cluster.cert_dir) / name


def _apiserver_sans(
    cluster: ClusterSettings, node: str, advertise: str
) -> tuple[list[str], list[str]]:
    import ipaddress

    network = ipaddress.ip_network(cluster.service_subnet.split(",")[0].strip(), strict=False)
    service_ip = str(network.network_address + 1)
    names = [
        node,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{cluster.dns_domain}",
    ]
    ips = [service_ip, advertise]
    extra = list(cluster.cert_sans)
    if cluster.control_plane_endpoint:
        extra.append(split_endpoint(cluster.control_plane_endpoint, DEFAULT_BIND_PORT)[0])
    for san in extra:
        try:
            ipaddress.ip_address(san)
        except ValueError:
            if san not in names:
                names.append(san)
        else:
            if san not in ips:
                ips.append(san)
    return names, ips


def _server_endpoint(cluster: ClusterSettings, advertise: str, port: int) -> str:
    """host:port the cluster is reached at (controlPlaneEndpoint, else this node)."""
    if cluster.control_plane_endpoint:
        host, cpe_port = split_endpoint(cluster.control_plane_endpoint, port)
        return f"{host}:{cpe_port}"
    return f"{advertise}:{port}"


def _write_kubeconfig(
    name: str, cluster: ClusterSettings, server: str, user: str, orgs: list[str], key_path: Path
) -> None:
    """Issue a client certificate and write /etc/kubernetes/<name> with it embedded."""
    cert_path = key_path.with_suffix(".crt")
    issue_cert(
        _pki(cluster, "ca.crt"),
        _pki(cluster, "ca.key"),
        key_path,
        cert_path,
        user,
        orgs,
    )
    document = kubeconfig_document(
        f"https://{server}",
        _pki(cluster, "ca.crt").read_text(),
        user,
        cluster=cluster.cluster_name,
        cert_pem=cert_path.read_text(),
        key_pem=key_path.read_text(),
    )
    write_private(host_path(f"{K8S_DIR}/{name}"), document)
    key_path.unlink()
    cert_path.unlink()


def _generate_leaf_certs(
    cluster: ClusterSettings, node: str, advertise: str, shared_exist: bool
) -> None:
    """apiserver, apiserver-kubelet-client, front-proxy-client (+ the CAs when not shared)."""
    version = _version()
    algorithm = cluster.encryption_algorithm
    keys = [
        (_pki(cluster, "apiserver.key"), algorithm),
        (_pki(cluster, "apiserver-kubelet-client.key"), algorithm),
        (_pki(cluster, "front-proxy-client.key"), algorithm),
    ]
    if not shared_exist:
        keys += [
            (_pki(cluster, "ca.key"), algorithm),
            (_pki(cluster, "front-proxy-ca.key"), algorithm),
            (_pki(cluster, "etcd/ca.key"), algorithm),
            (_pki(cluster, "sa.key"), "RSA-2048"),
        ]
    new_keys(keys)
    if not shared_exist:
        out('[certs] Generating "ca" certificate and key')
        make_ca(_pki(cluster, "ca.key"), _pki(cluster, "ca.crt"), "kubernetes")
    names, ips = _apiserver_sans(cluster, node, advertise)
    out('[certs] Generating "apiserver" certificate and key')
    out(
        f"[certs] apiserver serving cert is signed for DNS names [{' '.join(names)}] and IPs "
        f"[{' '.join(ips)}]"
    )
    issue_cert(
        _pki(cluster, "ca.crt"),
        _pki(cluster, "ca.key"),
        _pki(cluster, "apiserver.key"),
        _pki(cluster, "apiserver.crt"),
        "kube-apiserver",
        server=True,
        client=False,
        dns_names=names,
        ip_addresses=ips,
    )
    out('[certs] Generating "apiserver-kubelet-client" certificate and key')
    issue_cert(
        _pki(cluster, "ca.crt"),
        _pki(cluster, "ca.key"),
        _pki(cluster, "apiserver-kubelet-client.key"),
        _pki(cluster, "apiserver-kubelet-client.crt"),
        "kube-apiserver-kubelet-client",
        [admin_group(version)],
    )
    if not shared_exist:
        out('[certs] Generating "front-proxy-ca" certificate and key')
        make_ca(
            _pki(cluster, "front-proxy-ca.key"),
            _pki(cluster, "front-proxy-ca.crt"),
            "front-proxy-ca",
        )
    out('[certs] Generating "front-proxy-client" certificate and key')
    issue_cert(
        _pki(cluster, "front-proxy-ca.crt"),
        _pki(cluster, "front-proxy-ca.key"),
        _pki(cluster, "front-proxy-client.key"),
        _pki(cluster, "front-proxy-client.crt"),
        "front-proxy-client",
    )
    if not shared_exist:
        out('[certs] Generating "etcd/ca" certificate and key')
        make_ca(_pki(cluster, "etcd/ca.key"), _pki(cluster, "etcd/ca.crt"), "etcd-ca")
        out("[certs] sealos-lab stand-in: no etcd runs; the apiservers replicate their own state")
        out('[certs] Generating "sa" key and public key')
        write_private(_pki(cluster, "sa.pub"), public_key_pem(_pki(cluster, "sa.key")), 0o644)
    else:
        out(f'[certs] Valid certificates and keys now exist in "{cluster.cert_dir}"')
        out('[certs] Using the existing "sa" key')


def _write_control_plane_kubeconfigs(
    cluster: ClusterSettings, node: str, advertise: str, port: int, with_kubelet: bool
) -> None:
    version = _version()
    server = _server_endpoint(cluster, advertise, port)
    local = f"{advertise}:{port}"
    out(f'[kubeconfig] Using kubeconfig folder "{K8S_DIR}"')
    algorithm = cluster.encryption_algorithm
    wanted = [("admin.conf", server, "kubernetes-admin", [admin_group(version)])]
    if writes_super_admin_conf(version) and with_kubelet:
        wanted.append(("super-admin.conf", server, "kubernetes-super-admin", ["system:masters"]))
    if with_kubelet:
        wanted.append(("kubelet.conf", server, f"system:node:{node}", ["system:nodes"]))
    wanted += [
        ("controller-manager.conf", local, "system:kube-controller-manager", []),
        ("scheduler.conf", local, "system:kube-scheduler", []),
    ]
    key_dir = host_path(f"{K8S_DIR}/.kubeconfig-keys")
    new_keys([(key_dir / f"{name}.key", algorithm) for name, _s, _u, _o in wanted])
    for name, srv, user, orgs in wanted:
        out(f'[kubeconfig] Writing "{name}" kubeconfig file')
        _write_kubeconfig(name, cluster, srv, user, orgs, key_dir / f"{name}.key")
    shutil.rmtree(key_dir, ignore_errors=True)


def _static_pod(name: str, image: str, command: list[str]) -> str:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {"sealos-lab.io/stand-in": "not run by a container runtime in the lab"},
            "labels": {"component": name, "tier": "control-plane"},
            "name": name,
            "namespace": "kube-system",
        },
        "spec": {
            "containers": [{"command": command, "image": image, "name": name}],
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
        },
    }
    return yaml.safe_dump(pod, sort_keys=False)


def _image(cluster: ClusterSettings, component: str, tag: str) -> str:
    version = _version()
    repository = cluster.image_repository or (
        "k8s.gcr.io" if version.minor < 25 else "registry.k8s.io"
    )
    return f"{repository}/{component}:{tag}"


def _write_manifests(cluster: ClusterSettings, advertise: str, port: int) -> None:
    out(f'[control-plane] Using manifest folder "{MANIFESTS}"')
    pki = str(host_path(cluster.cert_dir))
    apiserver_cmd = [
        "kube-apiserver",
        f"--advertise-address={advertise}",
        f"--secure-port={port}",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={pki}/ca.crt",
        "--enable-bootstrap-token-auth=true",
        "--etcd-servers=https://127.0.0.1:2379",
        f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
        f"--service-account-key-file={pki}/sa.pub",
        f"--service-cluster-ip-range={cluster.service_subnet}",
        f"--tls-cert-file={pki}/apiserver.crt",
        f"--tls-private-key-file={pki}/apiserver.key",
    ]
    manifests = {
        "kube-apiserver": apiserver_cmd,
        "kube-controller-manager": [
            "kube-controller-manager",
            f"--kubeconfig={K8S_DIR}/controller-manager.conf",
        ],
        "kube-scheduler": ["kube-scheduler", f"--kubeconfig={K8S_DIR}/scheduler.conf"],
    }
    for name, command in manifests.items():
        out(f'[control-plane] Creating static Pod manifest for "{name}"')
        image = _image(cluster, name, cluster.kubernetes_version)
        write_private(host_path(f"{MANIFESTS}/{name}.yaml"), _static_pod(name, image, command))
    out(f'[etcd] Creating static Pod manifest for local etcd in "{MANIFESTS}"')
    etcd_cmd = ["etcd", f"--data-dir={ETCD_DIR}", "--sealos-lab-note=no etcd runs in the lab"]
    write_private(
        host_path(f"{MANIFESTS}/etcd.yaml"),
        _static_pod("etcd", _image(cluster, "etcd", "stand-in"), etcd_cmd),
    )


def _apiserver_unit_text() -> str:
    manifest = host_path(f"{MANIFESTS}/kube-apiserver.yaml")
    return (
        "[Unit]\n"
        "Description=sealos-lab stand-in kube-apiserver (not Kubernetes)\n"
        "Documentation=the static pod manifest /etc/kubernetes/manifests/kube-apiserver.yaml\n"
        "Wants=network-online.target\nAfter=network-online.target\n"
        f"ConditionPathExists={manifest}\n\n"
        "[Service]\n"
        f"ExecStart={self_path()} sealos-lab-apiserver --manifest={manifest} "
        f"--state-dir={host_path(STATE_DIR)}\n"
        "Restart=always\nRestartSec=2\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


def _start_apiserver(node: str, advertise: str, port: int) -> None:
    member = {"name": node, "url": f"https://{advertise}:{port}"}
    write_private(host_path(f"{STATE_DIR}/member.json"), json.dumps(member))
    unit = host_path(f"/etc/systemd/system/{APISERVER_UNIT}.service")
    write_private(unit, _apiserver_unit_text(), 0o644)
    daemon_reload()
    service_enable(APISERVER_UNIT)
    argv = [
        *self_command("kubeadm"),
        "sealos-lab-apiserver",
        f"--manifest={host_path(MANIFESTS + '/kube-apiserver.yaml')}",
        f"--state-dir={host_path(STATE_DIR)}",
    ]
    service_restart(APISERVER_UNIT, argv)


def _kubelet_flags(node: str, cri_socket: str, extra: dict[str, str]) -> list[str]:
    version = _version()
    if version.minor <= 23:
        pause = "3.1" if version.minor <= 16 else "3.2" if version.minor <= 20 else "3.5"
        flags = [
            "--cgroup-driver=cgroupfs" if version.minor <= 21 else "--cgroup-driver=systemd",
            "--network-plugin=cni",
            f"--pod-infra-container-image=k8s.gcr.io/pause:{pause}",
        ]
        if "docker" not in cri_socket and "dockershim" not in cri_socket:
            flags += ["--container-runtime=remote", f"--container-runtime-endpoint={cri_socket}"]
    else:
        pause = "3.7" if version.minor <= 25 else "3.9" if version.minor <= 29 else "3.10"
        flags = [
            f"--container-runtime-endpoint={cri_socket}",
            f"--pod-infra-container-image=registry.k8s.io/pause:{pause}",
        ]
    if node != node_hostname():
        flags.append(f"--hostname-override={node}")
    flags += [f"--{key}={value}" for key, value in extra.items()]
    return flags


def _kubelet_config(cluster: ClusterSettings, user: dict[str, Any]) -> str:
    import ipaddress

    version = _version()
    network = ipaddress.ip_network(cluster.service_subnet.split(",")[0].strip(), strict=False)
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"cacheTTL": "0s", "enabled": True},
            "x509": {"clientCAFile": f"{cluster.cert_dir}/ca.crt"},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs" if version.minor <= 21 else "systemd",
        "clusterDNS": [str(network.network_address + 10)],
        "clusterDomain": cluster.dns_domain,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "rotateCertificates": True,
        "staticPodPath": MANIFESTS,
    }
    config.update({k: v for k, v in user.items() if k not in ("apiVersion", "kind")})
    return yaml.safe_dump(config, sort_keys=True)


def _start_kubelet(node: str, cri_socket: str, extra: dict[str, str], kubelet_config: str) -> None:
    out(
        "[kubelet-start] Writing kubelet environment file with flags to file "
        f'"{KUBELET_DIR}/kubeadm-flags.env"'
    )
    flags = _kubelet_flags(node, cri_socket, extra)
    write_private(
        host_path(f"{KUBELET_DIR}/kubeadm-flags.env"),
        f'KUBELET_KUBEADM_ARGS="{" ".join(flags)}"\n',
        0o644,
    )
    out(f'[kubelet-start] Writing kubelet configuration to file "{KUBELET_DIR}/config.yaml"')
    write_private(host_path(f"{KUBELET_DIR}/config.yaml"), kubelet_config, 0o644)
    out("[kubelet-start] Starting the kubelet")
    argv = [
        *self_command("kubelet"),
        f"--bootstrap-kubeconfig={host_path(K8S_DIR + '/bootstrap-kubelet.conf')}",
        f"--kubeconfig={host_path(K8S_DIR + '/kubelet.conf')}",
        f"--config={host_path(KUBELET_DIR + '/config.yaml')}",
        *flags,
    ]
    try:
        service_restart(KUBELET_UNIT, argv)
    except ServiceError as exc:
        out(f"[kubelet-start] WARNING: unable to start the kubelet service: [{exc}]")
        out("[kubelet-start] Please ensure kubelet is reloaded and running manually.")


def _kubelet_healthy() -> bool:
    with urllib.request.urlopen("http://127.0.0.1:10248/healthz", timeout=2) as answer:
        return bool(answer.status == 200)


def _admin_client(server: str, cluster: ClusterSettings, conf: str = "admin.conf") -> ApiClient:
    config = load_kubeconfig(host_path(f"{K8S_DIR}/{conf}"))
    return ApiClient(
        server,
        ca_pem=_pki(cluster, "ca.crt").read_text(),
        cert_pem=config.cert_pem,
        key_pem=config.key_pem,
        timeout=10.0,
    )


def _mark_control_plane(
    client: ApiClient, node: str, taints: Optional[list[dict[str, Any]]]
) -> None:
    version = _version()
    labels = control_plane_labels(version)
    if version.minor >= 24:
        labels = [*labels, "node.kubernetes.io/exclude-from-external-load-balancers"]
        out(
            f"[mark-control-plane] Marking the node {node} as control-plane by adding the labels: "
            f"[{' '.join(labels)}]"
        )
    elif version.minor >= 20:
        out(
            f"[mark-control-plane] Marking the node {node} as control-plane by adding the labels "
            "\"node-role.kubernetes.io/master=''\" and "
            "\"node-role.kubernetes.io/control-plane='' (deprecated)\""
        )
    else:
        out(
            f"[mark-control-plane] Marking the node {node} as control-plane by adding the label "
            "\"node-role.kubernetes.io/master=''\""
        )
    if taints is None:
        taints = [{"key": key, "effect": "NoSchedule"} for key in control_plane_taints(version)]
    shown = " ".join(f"{t.get('key')}:{t.get('effect')}" for t in taints)
    out(
        f"[mark-control-plane] Marking the node {node} as control-plane by adding the taints "
        f"[{shown}]"
    )
    patch = {"metadata": {"labels": dict.fromkeys(labels, "")}, "spec": {"taints": taints}}
    if not _wait(
        lambda: bool(client.call("PATCH", f"/api/v1/nodes/{node}", patch)), WAIT_TIMEOUT, 0.5
    ):
        raise KubeadmFailure(
            f'error execution phase mark-control-plane: error patching node "{node}" through '
            "apiserver: timed out waiting for the condition"
        )


def _token_secret(spec: TokenSpec) -> dict[str, Any]:
    token_id, secret = spec.token.split(".")
    data: dict[str, Any] = {
        "token-id": token_id,
        "token-secret": secret,
        "auth-extra-groups": ",".join(spec.groups),
        "description": spec.description or "",
    }
    for usage in spec.usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    expiration = spec.expiration()
    if expiration is not None:
        data["expiration"] = rfc3339(expiration)
    return {"data": data}


def _join_command(
    endpoint: str, token: str, pin: str, control_plane: bool = False, key: str = ""
) -> str:
    version = _version()
    indent = join_line_indent(version)
    command = (
        f"kubeadm join {endpoint} --token {token} \\\n{indent}--discovery-token-ca-cert-hash {pin} "
    )
    if control_plane:
        command += f"\\\n{indent}--{control_plane_flag(version)} "
        if key:
            command += f"--certificate-key {key}"
    return command


def _print_init_done(
    endpoint_set: bool, upload: bool, cp_command: str, worker_command: str
) -> None:
    version = _version()
    lines = [
        "",
        "Your Kubernetes control-plane has initialized successfully!",
        "",
        "To start using your cluster, you need to run the following as a regular user:",
        "",
        "  mkdir -p $HOME/.kube",
        f"  sudo cp -i {K8S_DIR}/admin.conf $HOME/.kube/config",
        "  sudo chown $(id -u):$(id -g) $HOME/.kube/config",
        "",
    ]
    if shows_root_kubeconfig_hint(version):
        lines += [
            "Alternatively, if you are the root user, you can run:",
            "",
            f"  export KUBECONFIG={K8S_DIR}/admin.conf",
            "",
        ]
    lines += [
        "You should now deploy a pod network to the cluster.",
        'Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:',
        "  https://kubernetes.io/docs/concepts/cluster-administration/addons/",
        "",
    ]
    text = "\n".join(lines) + "\n"
    if endpoint_set:
        if upload:
            text += (
                "You can now join any number of the control-plane node running the following "
                f"command on each as root:\n\n  {cp_command}\n\n"
                "Please note that the certificate-key gives access to cluster sensitive data, "
                "keep it secret!\n"
                "As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you "
                "can use\n"
                f'"kubeadm init phase upload-certs --{upload_certs_flag(version)}" to reload '
                "certs afterward.\n\n"
            )
        else:
            text += (
                "You can now join any number of control-plane nodes by copying certificate "
                "authorities\n"
                "and service account keys on each node and then running the following as root:\n\n"
                f"  {cp_command}\n\n"
            )
    text += (
        "Then you can join any number of worker nodes by running the following on each as root:\n\n"
    )
    text += worker_command + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()


def _upload_certs(client: ApiClient, cluster: ClusterSettings, key: str) -> None:
    bundle = {name: _pki(cluster, name).read_text() for name in SHARED_CERTS}
    sealed = seal(key, json.dumps(bundle).encode())
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "data": {"sealed": sealed, "expiration": rfc3339(time.time() + 2 * 3600)},
    }
    client.call("PUT", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs", secret)


def _detect_advertise() -> str:
    address = default_route_address()
    if address:
        return address
    address = first_global_address()
    if address:
        warn(
            "could not detect a default route; advertising the first global address "
            f"{address} (sealos-lab stand-in; set localAPIEndpoint.advertiseAddress to choose)"
        )
        return address
    raise KubeadmFailure("unable to select an IP from default routes.")


def run_init(plan: InitPlan) -> int:
    """kubeadm init."""
    version = _version()
    cluster = plan.cluster
    if not plan.dry_run:
        require_manageable_host()
    out(f"[init] Using Kubernetes version: {cluster.kubernetes_version}")
    for message in plan.warnings:
        warn(message)
    out("[preflight] Running pre-flight checks")
    checks = _common_checks()
    checks += _port_check(plan.bind_port) + _port_check(10250)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        checks += _file_check(f"{MANIFESTS}/{name}.yaml")
    checks += _dir_check(ETCD_DIR)
    run_preflight(checks, plan.ignore_preflight)
    advertise = plan.advertise_address or _detect_advertise()
    if plan.dry_run:
        out(
            "[dryrun] The configuration was accepted; the sealos-lab stand-in changes nothing in "
            "a dry run"
        )
        out(
            "[dryrun] Finished dry-running successfully. Above are the resources that would be "
            "created."
        )
        return 0
    out("[preflight] Pulling images required for setting up a Kubernetes cluster")
    out(
        "[preflight] This might take a minute or two, depending on the speed of your internet "
        "connection"
    )
    out(
        "[preflight] You can also perform this action in beforehand using 'kubeadm config images "
        "pull'"
    )
    out(f'[certs] Using certificateDir folder "{cluster.cert_dir}"')
    _generate_leaf_certs(cluster, plan.node_name, advertise, shared_exist=False)
    _write_control_plane_kubeconfigs(cluster, plan.node_name, advertise, plan.bind_port, True)
    _start_kubelet(
        plan.node_name,
        plan.cri_socket,
        plan.kubelet_extra_args,
        _kubelet_config(cluster, plan.kubelet_config),
    )
    _write_manifests(cluster, advertise, plan.bind_port)
    out(
        "[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods "
        f'from directory "{MANIFESTS}". This can take up to 4m0s'
    )
    started = time.monotonic()
    _start_apiserver(plan.node_name, advertise, plan.bind_port)
    client = _admin_client(f"https://{advertise}:{plan.bind_port}", cluster)
    if not _wait(
        lambda: client.call("GET", "/healthz") == "ok" and _kubelet_healthy(), WAIT_TIMEOUT
    ):
        raise KubeadmFailure(
            "error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster\n"
            "\nUnfortunately, an error has occurred:\n\ttimed out waiting for the condition\n\n"
            "This error is likely caused by:\n\t- The kubelet is not running\n"
            "\t- The kubelet is unhealthy due to a misconfiguration of the node in some way\n\n"
            "If you are on a systemd-powered system, you can try to troubleshoot the error with "
            "the following commands:\n\t- 'systemctl status kubelet'\n\t- 'journalctl -xeu kubelet'"
        )
    out(
        "[apiclient] All control plane components are healthy after "
        f"{time.monotonic() - started:.6f} seconds"
    )
    out(
        '[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the '
        '"kube-system" Namespace'
    )
    cluster_yaml = yaml.safe_dump(cluster.to_dict(), sort_keys=True)
    client.call(
        "PUT",
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        {"data": {"ClusterConfiguration": cluster_yaml}},
    )
    map_name = kubelet_config_map_name(version)
    out(
        f'[kubelet] Creating a ConfigMap "{map_name}" in namespace kube-system with the '
        "configuration for the kubelets in the cluster"
    )
    client.call(
        "PUT",
        f"/api/v1/namespaces/kube-system/configmaps/{map_name}",
        {"data": {"kubelet": _kubelet_config(cluster, plan.kubelet_config)}},
    )
    client.call(
        "POST",
        "/apis/sealos-lab.io/v1/peers",
        {"name": plan.node_name, "url": f"https://{advertise}:{plan.bind_port}"},
    )
    key = plan.certificate_key
    if plan.upload_certs:
        key = key or new_certificate_key()
        out(
            '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the '
            '"kube-system" Namespace'
        )
        _upload_certs(client, cluster, key)
        out("[upload-certs] Using certificate key:")
        out(key if not plan.skip_certificate_key_print else "<value withheld>")
    else:
        out(f"[upload-certs] Skipping phase. Please see --{upload_certs_flag(version)}")
    _mark_control_plane(client, plan.node_name, plan.taints)
    tokens = plan.tokens or [TokenSpec(token="")]
    for spec in tokens:
        spec.token = spec.token or new_bootstrap_token()
        if not plan.skip_token_print:
            out(f"[bootstrap-token] Using token: {spec.token}")
    out("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
    for spec in tokens:
        client.call("POST", "/api/v1/namespaces/kube-system/secrets", _token_secret(spec))
    out("[bootstrap-token] configured RBAC rules to allow Node Bootstrap tokens to get nodes")
    out(
        "[bootstrap-token] configured RBAC rules to allow Node Bootstrap tokens to post CSRs in "
        "order for nodes to get long term certificate credentials"
    )
    out(
        "[bootstrap-token] configured RBAC rules to allow the csrapprover controller "
        "automatically approve CSRs from a Node Bootstrap Token"
    )
    out(
        "[bootstrap-token] configured RBAC rules to allow certificate rotation for all node "
        "client certificates in the cluster"
    )
    out('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace')
    endpoint = _server_endpoint(cluster, advertise, plan.bind_port)
    ca_pem = _pki(cluster, "ca.crt").read_text()
    info = kubeconfig_document(f"https://{endpoint}", ca_pem, "", cluster="")
    info_doc = yaml.safe_load(info)
    info_doc["users"] = None
    info_doc["contexts"] = None
    info_doc["current-context"] = ""
    client.call(
        "PUT",
        "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        {"data": {"kubeconfig": yaml.safe_dump(info_doc, sort_keys=True)}},
    )
    out(
        f'[kubelet-finalize] Updating "{K8S_DIR}/kubelet.conf" to point to a rotatable kubelet '
        "client certificate and key"
    )
    out("[addons] Applied essential addon: CoreDNS")
    out("[addons] Applied essential addon: kube-proxy")
    client.close()
    pin = spki_pin(ca_pem)
    token = tokens[0].token if not plan.skip_token_print else "<value withheld>"
    shown_key = (
        key
        if (key and not plan.skip_certificate_key_print)
        else ("<value withheld>" if key else "")
    )
    _print_init_done(
        bool(cluster.control_plane_endpoint),
        plan.upload_certs,
        _join_command(endpoint, token, pin, True, shown_key if plan.upload_certs else ""),
        _join_command(endpoint, token, pin),
    )
    return 0


# join ----------------------------------------------------------------------------------------


class _Retry(Exception):
    """A discovery error kubeadm retries until the discovery timeout."""


def _discover(plan: JoinPlan) -> tuple[str, str]:
    """(kubeconfig text of cluster-info, CA PEM), validated like kubeadm's token discovery."""
    version = _version()
    token_id, _, token_secret = plan.token.partition(".")
    endpoint = plan.endpoint
    timeout = plan.discovery_timeout
    if timeout == 300.0:
        timeout = _env_seconds("SEALOS_STANDIN_DISCOVERY_TIMEOUT", timeout)
    deadline = time.monotonic() + timeout
    path = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    last_error = ""
    fail_fast = discovery_fails_fast(version)
    while True:
        try:
            insecure = ApiClient(f"https://{endpoint}", insecure=True, timeout=10.0)
            try:
                info = insecure.call("GET", path)
            finally:
                insecure.close()
            data = info.get("data", {})
            content = str(data.get("kubeconfig", ""))
            signature = data.get(f"jws-kubeconfig-{token_id}")
            if not signature:
                if fail_fast:
                    raise _Retry(
                        "could not find a JWS signature in the cluster-info ConfigMap for token "
                        f'ID "{token_id}"'
                    )
                raise _Retry(
                    f'token id "{token_id}" is invalid for this cluster or it has expired. Use '
                    '"kubeadm token create" on the control-plane node to create a new valid token'
                )
            if not jws_valid(str(signature), content, token_id, token_secret):
                message = (
                    "failed to verify JWS signature of received cluster info object, "
                    "can't trust this API Server"
                )
                if fail_fast:
                    raise KubeadmFailure(
                        "error execution phase preflight: couldn't validate the identity of the "
                        f"API Server: {message}"
                    )
                raise _Retry(message)
            ca_pem = parse_kubeconfig(content, Path("/")).ca_pem or ""
            if plan.unsafe_skip_ca_verification and not plan.ca_cert_hashes:
                return content, ca_pem
            pin = spki_pin(ca_pem)
            if pin.lower() not in [h.lower() for h in plan.ca_cert_hashes]:
                message = (
                    "cluster CA found in cluster-info ConfigMap is invalid: "
                    f'none of the public keys "{pin}" are pinned'
                )
                if fail_fast:
                    raise KubeadmFailure(
                        "error execution phase preflight: couldn't validate the identity of the "
                        f"API Server: {message}"
                    )
                raise _Retry(message)
            secure = ApiClient(f"https://{endpoint}", ca_pem=ca_pem, timeout=10.0)
            try:
                again = secure.call("GET", path)
            finally:
                secure.close()
            if again.get("data", {}).get("kubeconfig") != content:
                raise KubeadmFailure(
                    "error execution phase preflight: couldn't validate the identity of the API "
                    "Server: "
                    "the second kubeconfig from the cluster-info ConfigMap (using validated TLS) "
                    "was different from the first"
                )
            return content, ca_pem
        except (ConnectError, ApiError) as exc:
            last_error = f'Get "https://{endpoint}{path}?timeout=10s": {exc}'
            if isinstance(exc, ApiError):
                last_error = f"failed to request the cluster-info ConfigMap: {exc}"
        except _Retry as exc:
            last_error = str(exc)
        except PkiError as exc:
            last_error = f"failed to parse cluster CA from the cluster-info ConfigMap: {exc}"
        if time.monotonic() >= deadline:
            if fail_fast:
                detail = last_error
            else:
                waited = format_go_duration(timeout)
                detail = f"abort connecting to API servers after timeout of {waited}"
            raise KubeadmFailure(
                "error execution phase preflight: couldn't validate the identity of the API "
                f"Server: {detail}"
            )
        time.sleep(max(0.0, min(DISCOVERY_RETRY, deadline - time.monotonic())))


def _bootstrap_kubeconfig(cluster_info: str, token: str) -> str:
    info = parse_kubeconfig(cluster_info, Path("/"))
    assert info.ca_pem is not None
    return kubeconfig_document(
        info.server,
        info.ca_pem,
        "tls-bootstrap-token-user",
        cluster=info.cluster_name or "kubernetes",
        context="tls-bootstrap-token-user@kubernetes",
        token=token,
    )


def _fetch_cluster_config(boot: ApiClient) -> tuple[ClusterSettings, str]:
    version = _version()
    path = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
    problem = ""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            cm = boot.call("GET", path)
            cluster = ClusterSettings.from_dict(yaml.safe_load(cm["data"]["ClusterConfiguration"]))
            kubelet_cm = boot.call(
                "GET",
                f"/api/v1/namespaces/kube-system/configmaps/{kubelet_config_map_name(version)}",
            )
            return cluster, str(kubelet_cm["data"]["kubelet"])
        except (ConnectError, ApiError) as exc:
            problem = f'Get "{boot.server}{path}?timeout=10s": {exc}'
            boot.close()
        if time.monotonic() >= deadline:
            raise KubeadmFailure(
                "error execution phase preflight: unable to fetch the kubeadm-config ConfigMap: "
                f"failed to get config map: {problem}"
            )
        time.sleep(1.0)


def _join_control_plane_prepare(
    plan: JoinPlan, cluster: ClusterSettings, boot: ApiClient, advertise: str
) -> None:
    out("[preflight] Running pre-flight checks before initializing the new control plane instance")
    if not cluster.control_plane_endpoint:
        raise KubeadmFailure(
            "error execution phase preflight: \nOne or more conditions for hosting a new control "
            "plane instance is not satisfied.\n\nunable to add a new control plane instance to a "
            "cluster that doesn't have a stable controlPlaneEndpoint address\n\nPlease ensure "
            "that:\n"
            "* The cluster has a stable controlPlaneEndpoint address.\n"
            "* The certificates that must be shared among control plane instances are provided.\n"
        )
    checks = _port_check(plan.bind_port) + _dir_check(ETCD_DIR)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        checks += _file_check(f"{MANIFESTS}/{name}.yaml")
    run_preflight(checks, plan.ignore_preflight)
    out("[preflight] Pulling images required for setting up a Kubernetes cluster")
    out(
        "[preflight] This might take a minute or two, depending on the speed of your internet "
        "connection"
    )
    out(
        "[preflight] You can also perform this action in beforehand using 'kubeadm config images "
        "pull'"
    )
    if plan.certificate_key:
        out(
            '[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the '
            '"kube-system" Namespace'
        )
        try:
            secret = boot.call("GET", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
            bundle = json.loads(unseal(plan.certificate_key, secret["data"]["sealed"]))
        except ApiError as exc:
            raise KubeadmFailure(
                "error execution phase control-plane-prepare/download-certs: error downloading "
                f"certs: error downloading the secret: {exc}"
            ) from None
        except PkiError as exc:
            raise KubeadmFailure(
                "error execution phase control-plane-prepare/download-certs: error downloading "
                f"certs: {exc}"
            ) from None
        for name, pem in bundle.items():
            write_private(_pki(cluster, name), pem, 0o600 if name.endswith(".key") else 0o644)
    else:
        missing = [n for n in SHARED_CERTS if not _pki(cluster, n).exists()]
        if missing:
            path = f"{cluster.cert_dir}/{missing[0]}"
            raise KubeadmFailure(
                "error execution phase control-plane-prepare/certs: error creating PKI assets: "
                f"failure loading {missing[0]}: couldn't load the certificate file {path}: "
                f"open {path}: no such file or directory"
            )
    out(f'[certs] Using certificateDir folder "{cluster.cert_dir}"')
    _generate_leaf_certs(cluster, plan.node_name, advertise, shared_exist=True)
    out("[kubeconfig] Generating kubeconfig files")
    _write_control_plane_kubeconfigs(cluster, plan.node_name, advertise, plan.bind_port, False)
    _write_manifests(cluster, advertise, plan.bind_port)


def _join_control_plane_start(
    plan: JoinPlan, cluster: ClusterSettings, advertise: str
) -> ApiClient:
    """Register this apiserver as a peer (as a new etcd member), seed its state, start it."""
    out("[check-etcd] Checking that the etcd cluster is healthy")
    url = f"https://{advertise}:{plan.bind_port}"
    seed = _admin_client(f"https://{plan.endpoint}", cluster)
    try:
        snapshot = seed.call(
            "POST", "/apis/sealos-lab.io/v1/peers", {"name": plan.node_name, "url": url}
        )
    except (ApiError, ConnectError) as exc:
        raise KubeadmFailure(
            f"error execution phase check-etcd: etcd cluster is not healthy: {exc}"
        ) from None
    finally:
        seed.close()
    state = {"objects": snapshot.get("objects", {})}
    write_private(host_path(f"{STATE_DIR}/state.json"), json.dumps(state))
    out("[etcd] Announced new etcd member joining to the existing etcd cluster")
    out('[etcd] Creating static Pod manifest for "etcd"')
    out("[etcd] Waiting for the new etcd member to join the cluster. This can take up to 40s")
    _start_apiserver(plan.node_name, advertise, plan.bind_port)
    local = _admin_client(url, cluster)
    if not _wait(lambda: local.call("GET", "/healthz") == "ok", WAIT_TIMEOUT):
        raise KubeadmFailure(
            "error execution phase control-plane-join/etcd: timed out waiting for the condition"
        )
    return local


def _wait_for_tls_bootstrap(plan: JoinPlan) -> None:
    timeout = plan.tls_bootstrap_timeout
    if timeout == 240.0:
        timeout = _env_seconds("SEALOS_STANDIN_TLS_BOOTSTRAP_TIMEOUT", timeout)
    kubelet_conf = host_path(f"{K8S_DIR}/kubelet.conf")

    def registered() -> bool:
        if not kubelet_conf.exists():
            return False
        client = ApiClient.from_kubeconfig(load_kubeconfig(kubelet_conf), timeout=5.0)
        try:
            client.call("GET", f"/api/v1/nodes/{plan.node_name}")
        finally:
            client.close()
        return True

    if not _wait(registered, timeout, 0.5):
        raise KubeadmFailure(
            "error execution phase kubelet-start: error uploading crisocket: timed out waiting "
            "for the condition"
            if _version().minor <= 21
            else "error execution phase kubelet-start: timed out waiting for the condition"
        )
    with contextlib.suppress(FileNotFoundError):
        host_path(f"{K8S_DIR}/bootstrap-kubelet.conf").unlink()


def run_join(plan: JoinPlan) -> int:
    """kubeadm join."""
    version = _version()
    require_manageable_host()
    for message in plan.warnings:
        warn(message)
    out("[preflight] Running pre-flight checks")
    checks = _common_checks()
    checks += _dir_check(MANIFESTS)
    checks += _file_check(f"{K8S_DIR}/kubelet.conf") + _file_check(
        f"{K8S_DIR}/bootstrap-kubelet.conf"
    )
    if not plan.control_plane:
        checks += _file_check(f"{DEFAULT_CERT_DIR}/ca.crt")
    checks += _port_check(10250)
    run_preflight(checks, plan.ignore_preflight)
    cluster_info, _ca_pem = _discover(plan)
    boot_conf = _bootstrap_kubeconfig(cluster_info, plan.tls_bootstrap_token)
    boot = ApiClient.from_kubeconfig(parse_kubeconfig(boot_conf, Path("/")))
    out("[preflight] Reading configuration from the cluster...")
    out(
        "[preflight] FYI: You can look at this config file with 'kubectl -n kube-system get cm "
        "kubeadm-config -o yaml'"
    )
    cluster, kubelet_config = _fetch_cluster_config(boot)
    advertise = ""
    local: Optional[ApiClient] = None
    if plan.control_plane:
        advertise = plan.advertise_address or _detect_advertise()
        _join_control_plane_prepare(plan, cluster, boot, advertise)
        local = _join_control_plane_start(plan, cluster, advertise)
    if checks_duplicate_node_name(version):
        with contextlib.suppress(ApiError):
            node = boot.call("GET", f"/api/v1/nodes/{plan.node_name}")
            ready = [
                c for c in node.get("status", {}).get("conditions", []) if c.get("type") == "Ready"
            ]
            if ready and ready[0].get("status") == "True":
                raise KubeadmFailure(
                    f'error execution phase kubelet-start: a Node with name "{plan.node_name}" and '
                    'status "Ready" already exists in the cluster. You must delete the existing '
                    "Node "
                    "or change the name of this new joining Node"
                )
    boot.close()
    write_private(host_path(f"{K8S_DIR}/bootstrap-kubelet.conf"), boot_conf)
    host_path(MANIFESTS).mkdir(parents=True, exist_ok=True)
    _start_kubelet(plan.node_name, plan.cri_socket, plan.kubelet_extra_args, kubelet_config)
    out("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap...")
    _wait_for_tls_bootstrap(plan)
    if plan.control_plane:
        assert local is not None
        out(
            '[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the '
            '"kube-system" Namespace'
        )
        _mark_control_plane(local, plan.node_name, plan.taints)
        local.close()
        out("")
        out("This node has joined the cluster and a new control plane instance was created:")
        out("")
        out("* Certificate signing request was sent to apiserver and approval was received.")
        out("* The Kubelet was informed of the new secure connection details.")
        out("* Control plane label and taint were applied to the new node.")
        out("* The Kubernetes control plane instances scaled up.")
        out("* A new etcd member was added to the local/stacked etcd cluster.")
        out("")
        out(
            "To start administering your cluster from this node, you need to run the following "
            "as a regular user:"
        )
        out("")
        out("\tmkdir -p $HOME/.kube")
        out(f"\tsudo cp -i {K8S_DIR}/admin.conf $HOME/.kube/config")
        out("\tsudo chown $(id -u):$(id -g) $HOME/.kube/config")
        out("")
        out("Run 'kubectl get nodes' to see this node join the cluster.")
        out("")
    else:
        out("")
        out("This node has joined the cluster:")
        out("* Certificate signing request was sent to apiserver and a response was received.")
        out("* The Kubelet was informed of the new secure connection details.")
        out("")
        out("Run 'kubectl get nodes' on the control-plane to see this node join the cluster.")
        out("")
    return 0


# token, upload-certs, reset, version ---------------------------------------------------------


def _kubeconfig_path(parsed: ParsedFlags) -> Path:
    if parsed.was_set("kubeconfig"):
        return Path(parsed.values["kubeconfig"])
    default = host_path(f"{K8S_DIR}/admin.conf")
    if default.exists():
        return default
    if os.environ.get("KUBECONFIG"):
        return Path(os.environ["KUBECONFIG"].split(":")[0])
    return Path.home() / ".kube" / "config"


def _cluster_client(parsed: ParsedFlags) -> tuple[ApiClient, Any]:
    path = _kubeconfig_path(parsed)
    try:
        config = load_kubeconfig(path)
    except (OSError, PkiError) as exc:
        raise KubeadmFailure(f"failed to load admin kubeconfig: open {path}: {exc}") from None
    return ApiClient.from_kubeconfig(config), config


def run_token_create(parsed: ParsedFlags) -> int:
    """kubeadm token create [TOKEN] [--print-join-command]."""
    config = _load_config(parsed)
    token = parsed.args[0] if parsed.args else ""
    if config is not None:
        init = config.find("InitConfiguration")
        items = (init.data.get("bootstrapTokens") if init else None) or [{}]
        token = token or str(items[0].get("token") or "")
    if token:
        problem = validate_token(token, "token")
        if problem:
            raise KubeadmFailure(problem)
    spec = TokenSpec(
        token=token or new_bootstrap_token(),
        ttl=parsed.values.get("ttl"),
        usages=list(parsed.values.get("usages") or []),
        groups=list(parsed.values.get("groups") or []),
        description=parsed.values.get("description") or "",
    )
    client, kubeconfig = _cluster_client(parsed)
    try:
        client.call("POST", "/api/v1/namespaces/kube-system/secrets", _token_secret(spec))
    except (ApiError, ConnectError) as exc:
        token_id = spec.token.split(".")[0]
        raise KubeadmFailure(
            f"failed to create or update bootstrap token with name bootstrap-token-{token_id}: "
            "unable to create Secret: Post "
            f'"{client.server}/api/v1/namespaces/kube-system/secrets?timeout=10s": {exc}'
        ) from None
    finally:
        client.close()
    if not parsed.values.get("print-join-command"):
        if parsed.values.get("certificate-key"):
            raise KubeadmFailure("cannot use --certificate-key without --print-join-command")
        out(spec.token)
        return 0
    host, port = split_server(kubeconfig.server)
    pin = spki_pin(kubeconfig.ca_pem or "")
    key = parsed.values.get("certificate-key") or ""
    command = _join_command(f"{host}:{port}", spec.token, pin, bool(key), key)
    command = command.replace("\\\n", "").replace("\t", "")
    out(command)
    return 0


def run_token_list(parsed: ParsedFlags) -> int:
    """kubeadm token list."""
    client, _config = _cluster_client(parsed)
    try:
        secrets_list = client.call("GET", "/api/v1/namespaces/kube-system/secrets?type=bootstrap")
    except (ApiError, ConnectError) as exc:
        raise KubeadmFailure(f"failed to list bootstrap tokens: {exc}") from None
    finally:
        client.close()
    rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
    for secret in secrets_list.get("items", []):
        data = secret.get("data", {})
        expires = data.get("expiration", "")
        ttl = "<forever>"
        if expires:
            remaining = parse_rfc3339(expires) - time.time()
            ttl = f"{int(remaining // 3600)}h" if remaining >= 3600 else f"{int(remaining // 60)}m"
        usages = ",".join(
            sorted(k[len("usage-bootstrap-") :] for k in data if k.startswith("usage-bootstrap-"))
        )
        rows.append(
            [
                f"{data.get('token-id')}.{data.get('token-secret')}",
                ttl,
                expires or "<never>",
                usages,
                data.get("description") or "<none>",
                data.get("auth-extra-groups", ""),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "   " + row[-1])
    return 0


def run_token_delete(parsed: ParsedFlags) -> int:
    """kubeadm token delete TOKEN_ID|TOKEN..."""
    if not parsed.args:
        raise KubeadmFailure(
            "missing subcommand; 'token delete' is missing token of form \"[a-z0-9]{6}\""
        )
    client, _config = _cluster_client(parsed)
    try:
        for item in parsed.args:
            token_id = item.split(".")[0]
            try:
                client.call(
                    "DELETE", f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{token_id}"
                )
            except ApiError as exc:
                raise KubeadmFailure(
                    f'failed to delete bootstrap token "{token_id}": {exc}'
                ) from None
            out(f'bootstrap token "{token_id}" deleted')
    finally:
        client.close()
    return 0


def run_upload_certs_phase(parsed: ParsedFlags) -> int:
    """kubeadm init phase upload-certs --upload-certs (1.14: --experimental-upload-certs)."""
    version = _version()
    config = _load_config(parsed)
    if not parsed.values.get(upload_certs_flag(version)):
        out(f"[upload-certs] Skipping phase. Please see --{upload_certs_flag(version)}")
        return 0
    key = parsed.values.get("certificate-key") or ""
    cert_dir = DEFAULT_CERT_DIR
    if config is not None:
        init = config.find("InitConfiguration")
        key = key or str((init.data.get("certificateKey") if init else "") or "")
        cluster_doc = config.find("ClusterConfiguration")
        if cluster_doc and cluster_doc.data.get("certificatesDir"):
            cert_dir = str(cluster_doc.data["certificatesDir"])
    if key and (len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key)):
        raise KubeadmFailure(
            "error execution phase upload-certs: error uploading certs: error decoding "
            "certificate key: invalid certificate key"
        )
    key = key or new_certificate_key()
    client, _kubeconfig = _cluster_client(parsed)
    out(
        '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" '
        "Namespace"
    )
    try:
        _upload_certs(client, ClusterSettings(cert_dir=cert_dir), key)
    except (ApiError, ConnectError, OSError) as exc:
        raise KubeadmFailure(
            f"error execution phase upload-certs: error uploading certs: {exc}"
        ) from None
    finally:
        client.close()
    out("[upload-certs] Using certificate key:")
    out(key if not parsed.values.get("skip-certificate-key-print") else "<value withheld>")
    return 0


def _remove_contents(path: str) -> None:
    target = host_path(path)
    if not target.is_dir():
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                child.unlink()


def _leave_peers() -> None:
    """Tell the other apiservers this member is gone (kubeadm reset removes the etcd member)."""
    try:
        state = json.loads(host_path(f"{STATE_DIR}/state.json").read_text())
        member = json.loads(host_path(f"{STATE_DIR}/member.json").read_text())
        admin = load_kubeconfig(host_path(f"{K8S_DIR}/admin.conf"))
    except (OSError, ValueError, PkiError):
        return
    for key, record in state.get("objects", {}).items():
        if not key.startswith("peers//") or record.get("deleted"):
            continue
        peer = record["obj"]
        if peer["name"] == member["name"]:
            continue
        client = ApiClient(
            peer["url"],
            ca_pem=admin.ca_pem,
            cert_pem=admin.cert_pem,
            key_pem=admin.key_pem,
            timeout=3.0,
        )
        with contextlib.suppress(ApiError, ConnectError, OSError):
            client.call("DELETE", f"/apis/sealos-lab.io/v1/peers/{member['name']}")
            client.close()
            return
        client.close()


def run_reset(parsed: ParsedFlags) -> int:
    """kubeadm reset [-f]."""
    version = _version()
    require_manageable_host()
    _load_config(parsed)  # 1.31+: a ResetConfiguration is decoded strictly like any config
    control_plane = host_path(f"{MANIFESTS}/kube-apiserver.yaml").exists()
    if host_path(f"{K8S_DIR}/admin.conf").exists():
        out("[reset] Reading configuration from the cluster...")
        out(
            "[reset] FYI: You can look at this config file with 'kubectl -n kube-system get cm "
            "kubeadm-config -o yaml'"
        )
    else:
        warn(
            "[reset] Unable to fetch the kubeadm-config ConfigMap from cluster: failed to get "
            "config map: "
            f"open {K8S_DIR}/admin.conf: no such file or directory"
        )
    if not parsed.values.get("force"):
        out(
            "[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will "
            "be reverted."
        )
        sys.stdout.write("[reset] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise KubeadmFailure("aborted reset operation")
    out("[preflight] Running pre-flight checks")
    if control_plane:
        node = ""
        with contextlib.suppress(OSError, ValueError):
            node = json.loads(host_path(f"{STATE_DIR}/member.json").read_text())["name"]
        out(
            f'[reset] Removing info for node "{node}" from the ConfigMap "kubeadm-config" in the '
            '"kube-system" Namespace'
        )
        _leave_peers()
    out("[reset] Stopping the kubelet service")
    service_stop(KUBELET_UNIT)
    out(f"[reset] Stopping the sealos-lab stand-in apiserver ({APISERVER_UNIT}.service)")
    service_stop(APISERVER_UNIT)
    service_enable(APISERVER_UNIT, False)
    unit = host_path(f"/etc/systemd/system/{APISERVER_UNIT}.service")
    with contextlib.suppress(FileNotFoundError):
        unit.unlink()
    daemon_reload()
    out(f'[reset] Unmounting mounted directories in "{KUBELET_DIR}"')
    cert_dir = parsed.values.get("cert-dir") or DEFAULT_CERT_DIR
    out(f"[reset] Deleting contents of config directories: [{MANIFESTS} {cert_dir}]")
    _remove_contents(MANIFESTS)
    _remove_contents(cert_dir)
    files = [
        "admin.conf",
        "kubelet.conf",
        "bootstrap-kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ]
    if writes_super_admin_conf(version):
        files.insert(1, "super-admin.conf")
    out(f"[reset] Deleting files: [{' '.join(f'{K8S_DIR}/{f}' for f in files)}]")
    for name in files:
        with contextlib.suppress(FileNotFoundError):
            host_path(f"{K8S_DIR}/{name}").unlink()
    stateful = [ETCD_DIR, KUBELET_DIR]
    if version.minor <= 23:
        stateful.append("/var/lib/dockershim")
    stateful += ["/var/run/kubernetes", "/var/lib/cni"]
    out(f"[reset] Deleting contents of stateful directories: [{' '.join(stateful)}]")
    for path in stateful:
        _remove_contents(path)
    out("")
    out("The reset process does not clean CNI configuration. To do so, remove /etc/cni/net.d")
    out("")
    out("The reset process does not reset or clean up iptables rules or IPVS tables.")
    out('If you wish to reset iptables, you must do so manually by using the "iptables" command.')
    out("")
    out("If your cluster was setup to utilize IPVS, run ipvsadm --clear (or similar)")
    out("to reset your system's IPVS tables.")
    out("")
    out("The reset process does not clean your kubeconfig files and you must remove them manually.")
    out("Please, check the contents of the $HOME/.kube/config file.")
    return 0


def run_version(parsed: ParsedFlags) -> int:
    """kubeadm version [-o short|json|yaml]."""
    version = _version()
    output = parsed.values.get("output") or ""
    if output == "short":
        out(str(version))
    elif output == "json":
        out(json.dumps({"clientVersion": version_info(version)}, indent=2))
    elif output == "yaml":
        out(yaml.safe_dump({"clientVersion": version_info(version)}, sort_keys=False).rstrip())
    elif output == "":
        out(f"kubeadm version: &{version_info_struct(version)} (sealos-lab stand-in)")
    else:
        raise KubeadmFailure(f"invalid output format: {output}")
    return 0


# command line --------------------------------------------------------------------------------


def _load_config(parsed: ParsedFlags) -> Optional[DecodedConfig]:
    path = parsed.values.get("config") or ""
    if not path:
        return None
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise KubeadmFailure(f'unable to read config from "{path}" : {exc}') from None
    try:
        decoded = decode_config(text, load_schemas(), _version())
    except ConfigError as exc:
        if exc.hint:
            sys.stderr.write(f"# {exc.hint}\n")
        raise KubeadmFailure(str(exc)) from None
    return decoded


def _usage() -> str:
    return (
        "kubeadm (sealos-lab stand-in): easily bootstrap a secure Kubernetes cluster\n\n"
        "Usage:\n  kubeadm [command]\n\nAvailable Commands:\n"
        "  init        Run this command in order to set up the Kubernetes control plane\n"
        "  join        Run this on any machine you wish to join an existing cluster\n"
        "  reset       Performs a best effort revert of changes made to this host by 'kubeadm "
        "init' or 'kubeadm join'\n"
        "  token       Manage bootstrap tokens\n"
        "  version     Print the version of kubeadm\n"
    )


def _deprecation_notes(parsed: ParsedFlags, version: KubeVersion) -> None:
    for alias in deprecated_ha_aliases(version):
        if parsed.was_set(alias):
            new = alias.replace("experimental-", "")
            sys.stderr.write(f"Flag --{alias} has been deprecated, use --{new} instead\n")


def _command_words(argv: list[str], version: KubeVersion) -> list[str]:
    """Positional words of argv, skipping the values of flags that take one (as cobra does)."""
    specs: dict[str, Flag] = {}
    for table in (
        init_flags(version),
        join_flags(version),
        token_create_flags(version),
        token_flags(),
        reset_flags(version),
        upload_certs_phase_flags(version),
    ):
        specs.update(table)
    takes_value = {n for n, f in specs.items() if f.kind != "bool"}
    takes_value |= {f.short for f in specs.values() if f.short and f.kind != "bool"}
    words: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            words.extend(argv[index:])
            break
        if arg.startswith("-") and len(arg) > 1:
            name = arg.lstrip("-")
            if "=" not in name and name in takes_value:
                index += 1
            continue
        words.append(arg)
    return words


def kubeadm_main(argv: list[str]) -> int:
    """Entry point of the kubeadm stand-in."""
    if argv[:1] == ["sealos-lab-apiserver"]:
        return apiserver_main(argv[1:])
    sys.stderr.write(header_line() + "\n")
    version = _version()
    words = _command_words(argv, version)
    try:
        if not words or words[0] in ("help",) or (not words and ("-h" in argv or "--help" in argv)):
            out(_usage())
            return 0
        command = words[0]
        rest = list(argv)
        rest.remove(command)
        if command == "init" and len(words) >= 3 and words[1] == "phase":
            if words[2] != "upload-certs":
                raise KubeadmFailure(
                    'the sealos-lab stand-in implements only the "upload-certs" phase, not '
                    f'"{words[2]}"'
                )
            rest.remove("phase")
            rest.remove("upload-certs")
            parsed = parse_flags(rest, upload_certs_phase_flags(version))
            problem = mixed_flag_error(parsed, version)
            if problem:
                raise KubeadmFailure(problem)
            return run_upload_certs_phase(parsed)
        if command == "init":
            parsed = parse_flags(rest, init_flags(version))
            if parsed.values.get("help"):
                out("Run this command in order to set up the Kubernetes control plane")
                return 0
            _deprecation_notes(parsed, version)
            if parsed.args:
                raise KubeadmFailure(f'unknown command "{parsed.args[0]}" for "kubeadm init"')
            problem = mixed_flag_error(parsed, version)
            if problem:
                raise KubeadmFailure(problem)
            config = _load_config(parsed)
            plan = build_init_plan(
                parsed,
                config,
                version,
                node_hostname(),
                default_cri_socket(load_schemas()["flags"], version),
            )
            return run_init(plan)
        if command == "join":
            parsed = parse_flags(rest, join_flags(version))
            if parsed.values.get("help"):
                out("Run this on any machine you wish to join an existing cluster")
                return 0
            _deprecation_notes(parsed, version)
            problem = mixed_flag_error(parsed, version)
            if problem:
                raise KubeadmFailure(problem)
            config = _load_config(parsed)
            join_plan = build_join_plan(
                parsed,
                config,
                version,
                node_hostname(),
                default_cri_socket(load_schemas()["flags"], version),
            )
            return run_join(join_plan)
        if command == "token":
            sub = words[1] if len(words) > 1 else ""
            if sub:
                rest.remove(sub)
            if sub == "create":
                parsed = parse_flags(rest, token_create_flags(version))
                problem = mixed_flag_error(parsed, version)
                if problem:
                    raise KubeadmFailure(problem)
                return run_token_create(parsed)
            if sub == "list":
                return run_token_list(parse_flags(rest, token_flags()))
            if sub == "delete":
                return run_token_delete(parse_flags(rest, token_flags()))
            raise KubeadmFailure(
                f'unknown command "{sub}" for "kubeadm token"'
                if sub
                else 'missing subcommand; "token" is not meant to be run on its own'
            )
        if command == "reset":
            return run_reset(parse_flags(rest, reset_flags(version)))
        if command == "version":
            return run_version(
                parse_flags(rest, {**token_flags(), "output": Flag("output", short="o")})
            )
        raise KubeadmFailure(
            f'unknown command "{command}" for "kubeadm"\nRun \'kubeadm --help\' for usage.'
        )
    except FlagError as exc:
        sys.stderr.write(f"{exc}\n{STACK_HINT}\n")
        return 1
    except (KubeadmFailure, PlanError, ServiceError) as exc:
        sys.stderr.write(f"{exc}\n{STACK_HINT}\n")
        return 1
    except PkiError as exc:
        sys.stderr.write(f"{exc}\n{STACK_HINT}\n")
        return 1
    except Exception as exc:  # a user sees one line, as from kubeadm; -v=5 shows the trace
        if _verbosity(argv) >= 5:
            traceback.print_exc()
        sys.stderr.write(f"{exc.__class__.__name__}: {exc}\n{STACK_HINT}\n")
        return 1


def _verbosity(argv: list[str]) -> int:
    for index, arg in enumerate(argv):
        for prefix in ("--v=", "-v="):
            if arg.startswith(prefix) and arg[len(prefix) :].isdigit():
                return int(arg[len(prefix) :])
        if arg in ("-v", "--v") and index + 1 < len(argv) and argv[index + 1].isdigit():
            return int(argv[index + 1])
    return 0
