"""kube-proxy in the lab: the DaemonSet's pod that the stand-in kubelet runs on its node, and the
stand-in kube-proxy that pod runs (`kubelet sealos-lab-kube-proxy`, a sealos-lab stand-in).

The pod: once kubeadm's addon phase made the `kube-system/kube-proxy` ConfigMap, each kubelet
creates a Pod `kube-proxy-XXXXX` bound to its node and runs it as a host process (pods.py: a
copy of /etc/hosts taken at its start). Deleting that Pod (`kubectl -n kube-system delete pod
-l k8s-app=kube-proxy --field-selector spec.nodeName=NODE`) makes the kubelet stop the process
and start a new pod, as the DaemonSet controller and the kubelet would.

The proxy: it reads the `kubernetes` Service and its Endpoints from the server of the
ConfigMap's kubeconfig.conf (`--master`; it authenticates with the node's credentials where the
real one has a service account token), resolving the name through its own /etc/hosts, and
programs the service as kube-proxy does, so clean meets what real clusters leave behind:
- IPVS mode (asked for, and the kernel has IPVS): the `kube-ipvs0` dummy link holding the
  cluster IP, and an IPVS virtual server CLUSTER_IP:443 over the masters (masquerade);
- otherwise iptables mode, written with nft as iptables-nft writes it: `table ip nat` with the
  chains KUBE-SERVICES, KUBE-SVC-*, KUBE-SEP-*, KUBE-MARK-MASQ, KUBE-POSTROUTING, jumped to from
  PREROUTING/OUTPUT/POSTROUTING.
It serves /healthz on :10256: 200 while it has reached the apiserver within the last 10 s.
Rules point only at the masters' addresses the apiserver lists (lab addresses in the lab).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from .apiclient import ApiClient, ApiError, ConnectError
from .embedded import PACKAGE_VERSION
from .hostenv import header_line, host_path, log, self_command, write_private
from .pki import PkiError, load_kubeconfig
from .pods import PodProcess, StaticPods, image_problem, manifest_dir_of
from .versions import parse_kube_version

KUBE_PROXY_LABEL = "k8s-app=kube-proxy"
PROXY_SYNC_INTERVAL = 2.0
HEALTHZ_PORT = 10256
HEALTHZ_WINDOW = 10.0
IPVS_LINK = "kube-ipvs0"
SVC_CHAIN = "KUBE-SVC-NPX46M4PTMTKRN6Y"  # kube-proxy's chain name of default/kubernetes:https


# --- the pod, on the kubelet's side ------------------------------------------------------------


class KubeProxyPod:
    """The kube-proxy DaemonSet's pod on this node: created, run, restarted when deleted."""

    def __init__(self, node: str, kubeconfig: Path) -> None:
        self.node = node
        self.kubeconfig = kubeconfig
        self.client: Optional[ApiClient] = None
        self.pod: Optional[dict[str, Any]] = None
        self.process: Optional[PodProcess] = None
        self._said = ""
        self._retry_at = 0.0

    def _say(self, text: str) -> None:
        if text != self._said:
            log("kubelet", f"kube-proxy pod: {text}")
            self._said = text

    def _path(self, name: str = "") -> str:
        base = "/api/v1/namespaces/kube-system/pods"
        return f"{base}/{name}" if name else base

    def sync(self) -> None:
        """One tick: follow the ConfigMap and this node's pod; never raises."""
        try:
            if self.client is None:
                self.client = ApiClient.from_kubeconfig(
                    load_kubeconfig(self.kubeconfig), timeout=3.0
                )
            self._sync(self.client)
        except ConnectError as exc:
            if self.client is not None:
                self.client.close()
            self._say(f"apiserver unreachable, the running pod stays as it is: {exc}")
        except (ApiError, PkiError, OSError, KeyError, ValueError, yaml.YAMLError) as exc:
            self._say(f"will retry: {exc}")
        if self.process is not None:
            self.process.restart_if_exited()

    def _sync(self, client: ApiClient) -> None:
        try:
            cm = client.call("GET", "/api/v1/namespaces/kube-system/configmaps/kube-proxy")
        except ApiError as exc:
            if exc.status != 404:
                raise
            cm = None
        if cm is None:
            self.stop("the kube-proxy addon is not there")
            return
        if self.pod is not None:
            try:
                client.call("GET", self._path(self.pod["metadata"]["name"]))
                return
            except ApiError as exc:
                if exc.status != 404:
                    raise
            self.stop(f"pod {self.pod['metadata']['name']} was deleted")
        if time.monotonic() < self._retry_at:
            return
        query = f"?labelSelector={KUBE_PROXY_LABEL}&fieldSelector=spec.nodeName={self.node}"
        existing = client.call("GET", self._path() + query).get("items") or []
        image = self._image(client)
        problem = image_problem(image)
        if problem:
            self._say(problem)
            self._retry_at = time.monotonic() + 10.0
            return
        pod = existing[0] if existing else self._create(client, image)
        self._start(pod, cm)

    def _image(self, client: ApiClient) -> str:
        """The DaemonSet's image, as kubeadm sets it: REPOSITORY/kube-proxy:VERSION."""
        cm = client.call("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        cluster = yaml.safe_load(cm.get("data", {}).get("ClusterConfiguration", "")) or {}
        tag = str(cluster.get("kubernetesVersion") or PACKAGE_VERSION)
        version = parse_kube_version(tag) or parse_kube_version(PACKAGE_VERSION)
        old = version is not None and version.minor < 25
        repository = cluster.get("imageRepository") or ("k8s.gcr.io" if old else "registry.k8s.io")
        return f"{repository}/kube-proxy:{tag}"

    def _create(self, client: ApiClient, image: str) -> dict[str, Any]:
        body = {
            "metadata": {
                "generateName": "kube-proxy-",
                "namespace": "kube-system",
                "labels": {"k8s-app": "kube-proxy"},
                "annotations": {
                    "sealos-lab.io/stand-in": "run by the stand-in kubelet as a host process"
                },
            },
            "spec": {
                "nodeName": self.node,
                "hostNetwork": True,
                "containers": [{"name": "kube-proxy", "image": image}],
            },
        }
        return dict(client.call("POST", self._path(), body))

    def _start(self, pod: dict[str, Any], cm: dict[str, Any]) -> None:
        data = cm.get("data") or {}
        server = ""
        with contextlib.suppress(yaml.YAMLError, KeyError, IndexError, TypeError):
            proxy_kubeconfig = yaml.safe_load(data.get("kubeconfig.conf", "")) or {}
            server = str(proxy_kubeconfig["clusters"][0]["cluster"]["server"])
        uid = str(pod["metadata"]["uid"]).replace(".", "-")
        process = PodProcess(
            f"kube-system/{pod['metadata']['name']}",
            uid,
            "kube-proxy",
            [
                *self_command("kubelet"),
                "sealos-lab-kube-proxy",
                f"--config={host_path(f'/var/lib/kubelet/pods/{uid}')}/config.conf",
                f"--hostname-override={self.node}",
                f"--kubeconfig={self.kubeconfig}",
                f"--master={server}",
            ],
        )
        write_private(process.pod_dir / "config.conf", data.get("config.conf", ""), 0o644)
        process.start()
        self.pod, self.process = pod, process
        self._say(f"running pod {pod['metadata']['name']} (server {server})")

    def stop(self, why: str) -> None:
        """Stop the pod's process (the Pod object is left to whoever deleted it)."""
        if self.process is not None:
            self.process.stop(why)
        self.process, self.pod = None, None


def start_pods(
    node: str, config_path: Path, kubeconfig: Path, stop: threading.Event
) -> Callable[[], None]:
    """Run the node's pods (static pods, and kube-proxy's once the node has its kubeconfig) in a
    thread, every second; returns what stops them (the kubelet calls it when it ends)."""
    static = StaticPods(manifest_dir_of(config_path), node)
    proxy = KubeProxyPod(node, kubeconfig)

    def loop() -> None:
        while not stop.is_set():
            static.sync()
            if kubeconfig.exists():
                proxy.sync()
            stop.wait(1.0)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def shutdown() -> None:
        stop.set()
        thread.join(15)
        static.stop_all("the kubelet stops")
        proxy.stop("the kubelet stops")

    return shutdown


# --- the proxy itself ----------------------------------------------------------------------------


def _proxy_run(argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


def ipvs_usable() -> bool:
    """The kernel has IPVS (and ipvsadm is there to program it)."""
    return Path("/proc/net/ip_vs").exists() and shutil.which("ipvsadm") is not None


def _sep_chain(address: str) -> str:
    digest = hashlib.sha256(f"default/kubernetes:https{address}".encode()).digest()
    return "KUBE-SEP-" + base64.b32encode(digest).decode()[:16]


def sync_ipvs(cluster_ip: str, endpoints: list[str]) -> str:
    """kube-ipvs0 with the cluster IP, and the virtual server over the endpoints; "" or what
    failed."""
    if _proxy_run(["ip", "link", "show", IPVS_LINK]).returncode != 0:
        _proxy_run(["ip", "link", "add", IPVS_LINK, "type", "dummy"])
    _proxy_run(["ip", "addr", "replace", f"{cluster_ip}/32", "dev", IPVS_LINK])
    service = f"{cluster_ip}:443"
    listed = _proxy_run(["ipvsadm", "-Ln", "-t", service])
    if listed.returncode != 0:
        _proxy_run(["ipvsadm", "-A", "-t", service, "-s", "rr"])
        listed = _proxy_run(["ipvsadm", "-Ln", "-t", service])
    have = {line.split()[1] for line in listed.stdout.splitlines() if line.strip().startswith("->")}
    have.discard("RemoteAddress:Port")
    for endpoint in endpoints:
        if endpoint not in have:
            _proxy_run(["ipvsadm", "-a", "-t", service, "-r", endpoint, "-m"])
    for endpoint in have - set(endpoints):
        _proxy_run(["ipvsadm", "-d", "-t", service, "-r", endpoint])
    if _proxy_run(["ipvsadm", "-Ln", "-t", service]).returncode != 0:
        return f"no IPVS virtual server {service} after adding it"
    return ""


def nft_script(cluster_ip: str, endpoints: list[str], existing_chains: set[str]) -> str:
    """The nat table's kube-proxy part for one service, as iptables-nft would hold it."""
    lines = ["add table ip nat"]
    for chain, hook, priority in (
        ("PREROUTING", "prerouting", -100),
        ("OUTPUT", "output", -100),
        ("POSTROUTING", "postrouting", 100),
    ):
        lines.append(f"add chain ip nat {chain} {{ type nat hook {hook} priority {priority} ; }}")
    seps = {_sep_chain(e): e for e in endpoints}
    ours = ["KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", SVC_CHAIN, *seps]
    for chain in ours:
        lines += [f"add chain ip nat {chain}", f"flush chain ip nat {chain}"]
    for chain, target in (
        ("PREROUTING", "KUBE-SERVICES"),
        ("OUTPUT", "KUBE-SERVICES"),
        ("POSTROUTING", "KUBE-POSTROUTING"),
    ):
        if "KUBE-SERVICES" not in existing_chains:
            lines.append(f"add rule ip nat {chain} jump {target}")
    lines.append("add rule ip nat KUBE-MARK-MASQ meta mark set mark or 0x4000")
    lines.append("add rule ip nat KUBE-POSTROUTING mark and 0x4000 == 0x4000 masquerade")
    lines.append(
        f"add rule ip nat KUBE-SERVICES ip daddr {cluster_ip} tcp dport 443 jump {SVC_CHAIN}"
    )
    if seps:
        vmap = ", ".join(f"{i} : jump {chain}" for i, chain in enumerate(seps))
        lines.append(f"add rule ip nat {SVC_CHAIN} numgen random mod {len(seps)} vmap {{ {vmap} }}")
    for chain, endpoint in seps.items():
        lines.append(f"add rule ip nat {chain} jump KUBE-MARK-MASQ")
        lines.append(f"add rule ip nat {chain} meta l4proto tcp dnat to {endpoint}")
    for chain in sorted(existing_chains):
        if chain.startswith("KUBE-SEP-") and chain not in seps:
            lines.append(f"delete chain ip nat {chain}")
    return "\n".join(lines) + "\n"


def sync_nft(cluster_ip: str, endpoints: list[str]) -> str:
    """Apply nft_script; "" or the error nft printed."""
    listed = _proxy_run(["nft", "list", "table", "ip", "nat"])
    existing = {
        line.split()[1]
        for line in listed.stdout.splitlines()
        if line.strip().startswith("chain ") and len(line.split()) > 1
    }
    result = _proxy_run(["nft", "-f", "-"], nft_script(cluster_ip, endpoints, existing))
    return result.stderr.strip() if result.returncode != 0 else ""


class _ProxyHealth(BaseHTTPRequestHandler):
    last_sync = 0.0

    def do_GET(self) -> None:
        fresh = time.time() - _ProxyHealth.last_sync <= HEALTHZ_WINDOW
        body = json.dumps(
            {"lastUpdated": _ProxyHealth.last_sync, "currentTime": time.time()}
        ).encode()
        self.send_response(200 if fresh and self.path.startswith("/healthz") else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def kube_proxy_main(argv: list[str]) -> int:
    """kubelet sealos-lab-kube-proxy --config= --hostname-override= --kubeconfig= --master=."""
    sys.stderr.write(header_line().replace(" kubelet ", " kube-proxy ") + "\n")
    flags = dict(a.lstrip("-").partition("=")[::2] for a in argv if a.startswith("--"))
    config: dict[str, Any] = {}
    with contextlib.suppress(OSError, yaml.YAMLError):
        config = yaml.safe_load(Path(flags.get("config", "")).read_text()) or {}
    try:
        credentials = load_kubeconfig(Path(flags["kubeconfig"]))
    except (KeyError, OSError, PkiError) as exc:
        log("kube-proxy", f"invalid kubeconfig: {exc}")
        return 1
    server = flags.get("master") or credentials.server
    client = ApiClient(
        server,
        ca_pem=credentials.ca_pem,
        cert_pem=credentials.cert_pem,
        key_pem=credentials.key_pem,
        timeout=3.0,
    )
    mode = str(config.get("mode") or "iptables")
    if mode == "ipvs" and not ipvs_usable():
        log("kube-proxy", "Can't use the IPVS proxier (no IPVS in this kernel): using iptables")
        mode = "iptables"
    log(
        "kube-proxy",
        f"sealos-lab stand-in kube-proxy for node {flags.get('hostname-override')}: {mode} "
        f"mode, apiserver {server} (credentials: the node's)",
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with contextlib.suppress(OSError):
        health = ThreadingHTTPServer(("0.0.0.0", HEALTHZ_PORT), _ProxyHealth)
        health.daemon_threads = True
        threading.Thread(target=health.serve_forever, daemon=True).start()
    applied: Optional[tuple[str, list[str]]] = None
    problem = ""
    while not stop.is_set():
        try:
            service = client.call("GET", "/api/v1/namespaces/default/services/kubernetes")
            endpoints_obj = client.call("GET", "/api/v1/namespaces/default/endpoints/kubernetes")
            cluster_ip = str(service["spec"]["clusterIP"])
            endpoints = sorted(
                f"{a['ip']}:{p['port']}"
                for subset in endpoints_obj.get("subsets") or []
                for a in subset.get("addresses") or []
                for p in subset.get("ports") or []
            )
            if applied != (cluster_ip, endpoints):
                error = (
                    sync_ipvs(cluster_ip, endpoints)
                    if mode == "ipvs"
                    else sync_nft(cluster_ip, endpoints)
                )
                log("kube-proxy", f"{cluster_ip}:443 -> {', '.join(endpoints)} {error}".strip())
                applied = None if error else (cluster_ip, endpoints)
            _ProxyHealth.last_sync = time.time()
            if problem:
                log("kube-proxy", f"reached {server} again")
                problem = ""
        except (ConnectError, ApiError, KeyError, TypeError) as exc:
            client.close()
            text = f"Failed to list the kubernetes service from {server}: {exc}"
            if text != problem:
                log("kube-proxy", text)
                problem = text
        stop.wait(PROXY_SYNC_INTERVAL)
    client.close()
    return 0
