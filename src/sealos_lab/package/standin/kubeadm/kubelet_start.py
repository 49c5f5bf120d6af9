"""kubelet-start: the kubelet's flags file and config, starting its service, its TLS bootstrap."""

from __future__ import annotations

import contextlib
import urllib.request
from typing import Any

import yaml

from ..apiclient import ApiClient
from ..hostenv import (
    KUBELET_UNIT,
    ServiceError,
    host_path,
    node_hostname,
    self_command,
    service_restart,
    write_private,
)
from ..hostprobe import host_probe
from ..pki import load_kubeconfig
from .common import (
    K8S_DIR,
    KUBELET_DIR,
    MANIFESTS,
    KubeadmFailure,
    env_seconds,
    kube_version,
    out,
    wait_until,
    warn,
)
from .plans import ClusterConfigFields, JoinPlan
from .preflight import is_docker_socket


def docker_cgroup_driver_flag() -> list[str]:
    """Up to 1.21 kubeadm matched the kubelet to docker's cgroup driver (`docker info -f
    {{.CgroupDriver}}`, removed by PR #99647 in 1.22), warning when it could not ask."""
    code, output = host_probe().run(["docker", "info", "-f", "{{.CgroupDriver}}"])
    if code != 0 or not output.strip():
        warn(
            "cannot automatically assign a '--cgroup-driver' value when starting the Kubelet: "
            f"cgroup driver is not defined in 'docker info': {output.strip()}"
        )
        return []
    return [f"--cgroup-driver={output.strip()}"]


def _kubelet_flags(node: str, cri_socket: str, extra: dict[str, str]) -> list[str]:
    """kubeadm-flags.env: docker's own flags up to 1.23 (network plugin, cgroup driver up to
    1.21), a remote runtime's endpoint otherwise."""
    version = kube_version()
    if version.minor <= 23:
        pause = "3.1" if version.minor <= 16 else "3.2" if version.minor <= 20 else "3.5"
        if is_docker_socket(cri_socket):
            flags = ["--network-plugin=cni"]
            if version.minor <= 21:
                flags += docker_cgroup_driver_flag()
        else:
            flags = ["--container-runtime=remote", f"--container-runtime-endpoint={cri_socket}"]
        flags.append(f"--pod-infra-container-image=k8s.gcr.io/pause:{pause}")
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


def kubelet_config_yaml(cluster: ClusterConfigFields, user: dict[str, Any]) -> str:
    import ipaddress

    version = kube_version()
    network = ipaddress.ip_network(cluster.service_subnet.split(",")[0].strip(), strict=False)
    # The cgroup driver: the KubeletConfiguration's when given; else "systemd" from 1.22 (kubeadm
    # docs, "Configuring a cgroup driver"); before, left unset (the kubelet's default, cgroupfs).
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"cacheTTL": "0s", "enabled": True},
            "x509": {"clientCAFile": f"{cluster.cert_dir}/ca.crt"},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [str(network.network_address + 10)],
        "clusterDomain": cluster.dns_domain,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "rotateCertificates": True,
        "staticPodPath": MANIFESTS,
    }
    if version.minor >= 22:
        config["cgroupDriver"] = "systemd"
    config.update({k: v for k, v in user.items() if k not in ("apiVersion", "kind")})
    return yaml.safe_dump(config, sort_keys=True)


def start_kubelet(node: str, cri_socket: str, extra: dict[str, str], kubelet_config: str) -> None:
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


def kubelet_healthy() -> bool:
    with urllib.request.urlopen("http://127.0.0.1:10248/healthz", timeout=2) as answer:
        return bool(answer.status == 200)


def wait_for_tls_bootstrap(plan: JoinPlan) -> None:
    """Wait until the kubelet has its client certificate and the node is registered."""
    timeout = plan.tls_bootstrap_timeout
    if timeout == 240.0:
        timeout = env_seconds("SEALOS_STANDIN_TLS_BOOTSTRAP_TIMEOUT", timeout)
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

    if not wait_until(registered, timeout, 0.5):
        raise KubeadmFailure(
            "error execution phase kubelet-start: error uploading crisocket: timed out waiting "
            "for the condition"
            if kube_version().minor <= 21
            else "error execution phase kubelet-start: timed out waiting for the condition"
        )
    with contextlib.suppress(FileNotFoundError):
        host_path(f"{K8S_DIR}/bootstrap-kubelet.conf").unlink()
