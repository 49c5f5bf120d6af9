"""The kubelet stand-in: `kubelet --version`, and the node agent its systemd unit runs.

As the real kubelet: without /var/lib/kubelet/config.yaml it exits 1 (systemd restarts it every
10 s until kubeadm has configured the node); with a bootstrap kubeconfig and no kubeconfig it does
the TLS bootstrap (CSR signed by the cluster, /var/lib/kubelet/pki/kubelet-client-current.pem);
then it registers its Node and reports every second to the server of /etc/kubernetes/kubelet.conf,
resolving that name through the system resolver each time (so on a node it goes through the VIP).
It serves /healthz on 127.0.0.1:10248 and :10250. Host-network pods (static pods, kube-proxy's)
run as host processes: see pods.py and kube_proxy.py.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import platform
import secrets
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import yaml

from .apiclient import ApiClient, ApiError, ConnectError
from .embedded import PACKAGE_VERSION
from .hostenv import header_line, log, node_hostname, write_private
from .kube_proxy import kube_proxy_main, start_pods
from .kubelet_preconditions import kubelet_startup_problem
from .pki import PkiError, kubeconfig_document, load_kubeconfig, make_csr, new_keys
from .versions import container_runtime_version, parse_kube_version

HEARTBEAT_INTERVAL = 1.0
NODE_STATUS_UPDATE_RETRY = 5  # the kubelet's nodeStatusUpdateRetry
_VALUE_FLAGS = {
    "kubeconfig",
    "bootstrap-kubeconfig",
    "config",
    "hostname-override",
    "node-ip",
    "cert-dir",
    "cgroup-driver",
    "network-plugin",
    "pod-infra-container-image",
    "container-runtime",
    "container-runtime-endpoint",
    "resolv-conf",
    "node-labels",
    "v",
    "root-dir",
}


def parse_kubelet_flags(argv: list[str]) -> dict[str, str]:
    """--name=value / --name value pairs (unknown flags are kept; the stand-in ignores them)."""
    flags: dict[str, str] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if not arg.startswith("-"):
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq and name in _VALUE_FLAGS and index < len(argv):
            value = argv[index]
            index += 1
        flags[name] = value if eq or name in _VALUE_FLAGS else (value or "true")
    return flags


class _Healthz(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200 if self.path.startswith("/healthz") else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _serve_healthz(address: str, port: int) -> Optional[ThreadingHTTPServer]:
    try:
        server = ThreadingHTTPServer((address, port), _Healthz)
    except OSError as exc:
        log("kubelet", f"cannot listen on {address}:{port}: {exc}")
        return None
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 5.0}, daemon=True
    ).start()
    return server


def _os_image() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return "Linux"


def _tls_bootstrap(bootstrap_conf: Path, kubeconfig: Path, cert_dir: Path, node: str) -> None:
    """Get a client certificate with the bootstrap token and write kubelet.conf pointing at it."""
    boot = load_kubeconfig(bootstrap_conf)
    key_path = cert_dir / "kubelet-client.key.tmp"
    new_keys([(key_path, "ECDSA-P256")])
    csr = make_csr(key_path, f"system:node:{node}", ["system:nodes"])
    client = ApiClient.from_kubeconfig(boot)
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {
            "request": base64.b64encode(csr.encode()).decode(),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "key encipherment", "client auth"],
        },
    }
    try:
        answer = client.call(
            "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", body
        )
    finally:
        client.close()
    cert = base64.b64decode(answer["status"]["certificate"]).decode()
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
    pem_path = cert_dir / f"kubelet-client-{stamp}.pem"
    write_private(pem_path, cert + key_path.read_text())
    key_path.unlink()
    current = cert_dir / "kubelet-client-current.pem"
    with contextlib.suppress(FileNotFoundError):
        current.unlink()
    current.symlink_to(pem_path.name)
    assert boot.ca_pem is not None
    write_private(
        kubeconfig,
        kubeconfig_document(
            boot.server,
            boot.ca_pem,
            "default-auth",
            cluster="default-cluster",
            context="default-context",
            cert_file=str(current),
            key_file=str(current),
        ),
    )


class NodeAgent:
    """Registers the node and posts its status every second."""

    def __init__(self, node: str, kubeconfig: Path, node_ip: str) -> None:
        self.node = node
        self.kubeconfig = kubeconfig
        self.node_ip = node_ip
        self.uid = f"{time.time():.6f}-{secrets.token_hex(4)}"
        self.seq = 0
        self.registered = False
        self.stop = threading.Event()
        self._last_problem = ""

    def _node_object(self, address: str) -> dict[str, Any]:
        version = parse_kube_version(PACKAGE_VERSION)
        runtime = container_runtime_version(version) if version else "stand-in://"
        return {
            "metadata": {
                "name": self.node,
                "uid": self.uid,
                "labels": {
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                },
            },
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": address},
                    {"type": "Hostname", "address": self.node},
                ],
                "nodeInfo": {
                    "kubeletVersion": PACKAGE_VERSION,
                    "kubeProxyVersion": PACKAGE_VERSION,
                    "osImage": _os_image(),
                    "kernelVersion": platform.release(),
                    "containerRuntimeVersion": runtime,
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        }

    def _problem(self, text: str) -> None:
        if text != self._last_problem:
            log("kubelet", text)
            self._last_problem = text

    def beat(self, client: ApiClient, server: str) -> bool:
        """One status update, as the kubelet's updateNodeStatus: up to NODE_STATUS_UPDATE_RETRY
        tries at once, the connection dropped after a failed try from the second on
        (onRepeatedHeartbeatFailure closes the kubelet's connections), so a retry can land on
        another apiserver behind the VIP. Whether it got through."""
        for attempt in range(NODE_STATUS_UPDATE_RETRY):
            try:
                client.ensure_connection()
                if not self.registered:
                    address = self.node_ip or client.local_address() or "127.0.0.1"
                    client.call("POST", "/api/v1/nodes", self._node_object(address))
                    self.registered = True
                    log("kubelet", f'Successfully registered node "{self.node}"')
                else:
                    self.seq += 1
                    body = {"uid": self.uid, "seq": self.seq}
                    client.call("PUT", f"/api/v1/nodes/{self.node}/status", body)
            except ApiError as exc:
                what = (
                    "Unable to register node"
                    if not self.registered
                    else "Error updating node status"
                )
                self._problem(f"{what} with API server, will retry: {exc}")
                if attempt > 0:
                    client.close()
                continue
            except ConnectError as exc:
                client.close()
                self._problem(f'Error updating node status, will retry: Get "{server}": {exc}')
                continue
            except Exception as exc:  # a failed update never ends the kubelet
                client.close()
                self._problem(f"Error updating node status, will retry: {exc!r}")
                continue
            if self._last_problem:
                log("kubelet", f"reporting to {server} again")
                self._last_problem = ""
            return True
        return False

    def run(self) -> None:
        config = load_kubeconfig(self.kubeconfig)
        client = ApiClient.from_kubeconfig(config, timeout=3.0)
        log(
            "kubelet",
            f"node {self.node}: reporting to {config.server} every {HEARTBEAT_INTERVAL:g}s",
        )
        while not self.stop.is_set():
            self.beat(client, config.server)
            self.stop.wait(HEARTBEAT_INTERVAL)
        client.close()


def kubelet_main(argv: list[str]) -> int:
    """kubelet [--version] [flags]."""
    if argv[:1] == ["sealos-lab-kube-proxy"]:
        return kube_proxy_main(argv[1:])
    if "--version" in argv or "--version=true" in argv:
        print(f"Kubernetes {PACKAGE_VERSION} (sealos-lab stand-in)")
        return 0
    if "-h" in argv or "--help" in argv:
        print(
            "kubelet (sealos-lab stand-in): registers the node and reports it Ready; runs "
            "host-network pods as host processes."
        )
        print(
            "Flags read: --kubeconfig --bootstrap-kubeconfig --config --hostname-override --node-ip"
        )
        return 0
    sys.stderr.write(header_line() + "\n")
    flags = parse_kubelet_flags(argv)
    config_path = Path(flags.get("config", "/var/lib/kubelet/config.yaml"))
    if not config_path.exists():
        log(
            "kubelet",
            f'"command failed" err="failed to load kubelet config file, path: {config_path}, '
            "error: "
            f"failed to load Kubelet config file {config_path}, error failed to read kubelet "
            "config "
            f'file \\"{config_path}\\", error: open {config_path}: no such file or directory"',
        )
        return 1
    kubelet_config: Any = None
    with contextlib.suppress(yaml.YAMLError, OSError):
        kubelet_config = yaml.safe_load(config_path.read_text())
    version = parse_kube_version(PACKAGE_VERSION)
    if version is not None:
        refusal = kubelet_startup_problem(
            flags, kubelet_config if isinstance(kubelet_config, dict) else {}, version
        )
        if refusal:
            log("kubelet", f'"command failed" err="{refusal}"')
            return 1
    node = (flags.get("hostname-override") or node_hostname()).lower()
    kubeconfig = Path(flags.get("kubeconfig", "/etc/kubernetes/kubelet.conf"))
    bootstrap = Path(flags.get("bootstrap-kubeconfig", "/etc/kubernetes/bootstrap-kubelet.conf"))
    cert_dir = Path(flags.get("cert-dir", str(config_path.parent / "pki")))
    agent = NodeAgent(node, kubeconfig, flags.get("node-ip", ""))

    def _stop(_signum: int, _frame: Any) -> None:
        agent.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Served for the life of the process by daemon threads (which keep the servers referenced).
    _serve_healthz("127.0.0.1", 10248)
    _serve_healthz("0.0.0.0", 10250)
    atexit.register(start_pods(node, config_path, kubeconfig, agent.stop))
    while not kubeconfig.exists() and not agent.stop.is_set():
        if not bootstrap.exists():
            log(
                "kubelet",
                '"command failed" err="failed to run Kubelet: unable to load bootstrap '
                "kubeconfig: "
                f'stat {bootstrap}: no such file or directory"',
            )
            return 1
        try:
            _tls_bootstrap(bootstrap, kubeconfig, cert_dir, node)
            log("kubelet", f"TLS bootstrap done: client certificate for system:node:{node}")
        except (ApiError, ConnectError, PkiError, OSError, KeyError) as exc:
            log("kubelet", f"TLS bootstrap failed, will retry: {exc}")
            agent.stop.wait(2.0)
    try:
        agent.run()
    except (PkiError, OSError) as exc:
        log("kubelet", f'"command failed" err="invalid kubeconfig {kubeconfig}: {exc}"')
        return 1
    return 0
