"""What every kubeadm subcommand uses: host paths, output, KubeadmFailure, waiting, --config.

Also the client with admin credentials that token, upload-certs and the phases use.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ..apiclient import ApiClient, ApiError, ConnectError
from ..cliflags import ParsedFlags
from ..decoder import ConfigError, DecodedConfig, decode_config
from ..embedded import PACKAGE_VERSION, load_schemas
from ..hostenv import host_path
from ..pki import PkiError, load_kubeconfig
from ..versions import KubeVersion, parse_kube_version
from .plans import ClusterConfigFields

K8S_DIR = "/etc/kubernetes"
MANIFESTS = "/etc/kubernetes/manifests"
KUBELET_DIR = "/var/lib/kubelet"
ETCD_DIR = "/var/lib/etcd"
STATE_DIR = "/var/lib/etcd/standin"
WAIT_TIMEOUT = 240.0
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


def kube_version() -> KubeVersion:
    parsed = parse_kube_version(PACKAGE_VERSION)
    assert parsed is not None, PACKAGE_VERSION
    return parsed


def wait_until(what: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
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


def env_seconds(name: str, default: float) -> float:
    """A timeout default that tests may shorten (never used when a config sets the value)."""
    with contextlib.suppress(ValueError):
        return float(os.environ.get(name, default))
    return default


def load_config(parsed: ParsedFlags) -> Optional[DecodedConfig]:
    path = parsed.values.get("config") or ""
    if not path:
        return None
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise KubeadmFailure(f'unable to read config from "{path}" : {exc}') from None
    try:
        decoded = decode_config(text, load_schemas(), kube_version())
    except ConfigError as exc:
        if exc.hint:
            sys.stderr.write(f"# {exc.hint}\n")
        raise KubeadmFailure(str(exc)) from None
    return decoded


def pki_path(cluster: ClusterConfigFields, name: str) -> Path:
    return host_path(cluster.cert_dir) / name


def admin_client(server: str, cluster: ClusterConfigFields, conf: str = "admin.conf") -> ApiClient:
    config = load_kubeconfig(host_path(f"{K8S_DIR}/{conf}"))
    return ApiClient(
        server,
        ca_pem=pki_path(cluster, "ca.crt").read_text(),
        cert_pem=config.cert_pem,
        key_pem=config.key_pem,
        timeout=10.0,
    )


def kubeconfig_path(parsed: ParsedFlags) -> Path:
    if parsed.was_set("kubeconfig"):
        return Path(parsed.values["kubeconfig"])
    default = host_path(f"{K8S_DIR}/admin.conf")
    if default.exists():
        return default
    if os.environ.get("KUBECONFIG"):
        return Path(os.environ["KUBECONFIG"].split(":")[0])
    return Path.home() / ".kube" / "config"


def cluster_client(parsed: ParsedFlags) -> tuple[ApiClient, Any]:
    path = kubeconfig_path(parsed)
    try:
        config = load_kubeconfig(path)
    except (OSError, PkiError) as exc:
        raise KubeadmFailure(f"failed to load admin kubeconfig: open {path}: {exc}") from None
    return ApiClient.from_kubeconfig(config), config
