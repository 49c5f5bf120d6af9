"""`kubeadm reset`: stop the services, leave the peers, delete what init or join wrote."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys

from ..apiclient import ApiClient, ApiError, ConnectError
from ..cliflags import ParsedFlags
from ..hostenv import (
    APISERVER_UNIT,
    KUBELET_UNIT,
    daemon_reload,
    host_path,
    service_enable,
    service_stop,
)
from ..pki import PkiError, load_kubeconfig
from ..versions import writes_super_admin_conf
from .common import (
    ETCD_DIR,
    K8S_DIR,
    KUBELET_DIR,
    MANIFESTS,
    STATE_DIR,
    KubeadmFailure,
    kube_version,
    load_config,
    out,
    warn,
)
from .plans import DEFAULT_CERT_DIR
from .preflight import require_manageable_host


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
    """kubeadm reset removes this master's etcd member through a peer; without an etcd quorum
    that fails, and reset warns and goes on (as real kubeadm's removeetcdmember phase does)."""
    try:
        state = json.loads(host_path(f"{STATE_DIR}/state.json").read_text())
        member = json.loads(host_path(f"{STATE_DIR}/member.json").read_text())
        admin = load_kubeconfig(host_path(f"{K8S_DIR}/admin.conf"))
    except (OSError, ValueError, PkiError):
        return
    peers = [
        record["obj"]
        for key, record in state.get("objects", {}).items()
        if key.startswith("peers//") and not record.get("deleted")
    ]
    others = [p for p in peers if p["name"] != member["name"]]
    if not others:
        return  # the only remaining member: nothing to remove it from
    problem = "no etcd member reachable"
    for peer in others:
        client = ApiClient(
            peer["url"],
            ca_pem=admin.ca_pem,
            cert_pem=admin.cert_pem,
            key_pem=admin.key_pem,
            timeout=10.0,
        )
        try:
            client.call("DELETE", f"/apis/sealos-lab.io/v1/peers/{member['name']}")
            return
        except ApiError as exc:
            problem = str(exc)
            if exc.status != 500:
                break  # the member is gone already (404) or we may not (403): no retry
        except (ConnectError, OSError) as exc:
            problem = str(exc)
        finally:
            client.close()
    warn(
        f"[reset] Failed to remove etcd member: {problem}, please manually remove this etcd "
        "member using etcdctl"
    )


def run_reset(parsed: ParsedFlags) -> int:
    """kubeadm reset [-f]."""
    version = kube_version()
    require_manageable_host()
    load_config(parsed)  # 1.31+: a ResetConfiguration is decoded strictly like any config
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
