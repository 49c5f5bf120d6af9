"""The PKI kubeadm writes: CAs, leaf certificates, control-plane kubeconfigs, kubeadm-certs."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ..apiclient import ApiClient, ApiError, rfc3339
from ..hostenv import host_path, write_private
from ..pki import (
    PkiError,
    issue_cert,
    kubeconfig_document,
    make_ca,
    new_keys,
    public_key_pem,
    seal,
    unseal,
)
from ..versions import admin_group, writes_super_admin_conf
from .common import K8S_DIR, KubeadmFailure, kube_version, out, pki_path
from .plans import DEFAULT_BIND_PORT, ClusterConfigFields, split_endpoint

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


def apiserver_sans(
    cluster: ClusterConfigFields, node: str, advertise: str
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


def server_endpoint(cluster: ClusterConfigFields, advertise: str, port: int) -> str:
    """host:port the cluster is reached at (controlPlaneEndpoint, else this node)."""
    if cluster.control_plane_endpoint:
        host, cpe_port = split_endpoint(cluster.control_plane_endpoint, port)
        return f"{host}:{cpe_port}"
    return f"{advertise}:{port}"


def _write_kubeconfig(
    name: str, cluster: ClusterConfigFields, server: str, user: str, orgs: list[str], key_path: Path
) -> None:
    """Issue a client certificate and write /etc/kubernetes/<name> with it embedded."""
    cert_path = key_path.with_suffix(".crt")
    issue_cert(
        pki_path(cluster, "ca.crt"),
        pki_path(cluster, "ca.key"),
        key_path,
        cert_path,
        user,
        orgs,
    )
    document = kubeconfig_document(
        f"https://{server}",
        pki_path(cluster, "ca.crt").read_text(),
        user,
        cluster=cluster.cluster_name,
        cert_pem=cert_path.read_text(),
        key_pem=key_path.read_text(),
    )
    write_private(host_path(f"{K8S_DIR}/{name}"), document)
    key_path.unlink()
    cert_path.unlink()


def generate_leaf_certs(
    cluster: ClusterConfigFields, node: str, advertise: str, shared_exist: bool
) -> None:
    """apiserver, apiserver-kubelet-client, front-proxy-client (+ the CAs when not shared)."""
    version = kube_version()
    algorithm = cluster.encryption_algorithm
    keys = [
        (pki_path(cluster, "apiserver.key"), algorithm),
        (pki_path(cluster, "apiserver-kubelet-client.key"), algorithm),
        (pki_path(cluster, "front-proxy-client.key"), algorithm),
        (pki_path(cluster, "etcd/healthcheck-client.key"), algorithm),
    ]
    if not shared_exist:
        keys += [
            (pki_path(cluster, "ca.key"), algorithm),
            (pki_path(cluster, "front-proxy-ca.key"), algorithm),
            (pki_path(cluster, "etcd/ca.key"), algorithm),
            (pki_path(cluster, "sa.key"), "RSA-2048"),
        ]
    new_keys(keys)
    if not shared_exist:
        out('[certs] Generating "ca" certificate and key')
        make_ca(pki_path(cluster, "ca.key"), pki_path(cluster, "ca.crt"), "kubernetes")
    names, ips = apiserver_sans(cluster, node, advertise)
    out('[certs] Generating "apiserver" certificate and key')
    out(
        f"[certs] apiserver serving cert is signed for DNS names [{' '.join(names)}] and IPs "
        f"[{' '.join(ips)}]"
    )
    issue_cert(
        pki_path(cluster, "ca.crt"),
        pki_path(cluster, "ca.key"),
        pki_path(cluster, "apiserver.key"),
        pki_path(cluster, "apiserver.crt"),
        "kube-apiserver",
        server=True,
        client=False,
        dns_names=names,
        ip_addresses=ips,
    )
    out('[certs] Generating "apiserver-kubelet-client" certificate and key')
    issue_cert(
        pki_path(cluster, "ca.crt"),
        pki_path(cluster, "ca.key"),
        pki_path(cluster, "apiserver-kubelet-client.key"),
        pki_path(cluster, "apiserver-kubelet-client.crt"),
        "kube-apiserver-kubelet-client",
        [admin_group(version)],
    )
    if not shared_exist:
        out('[certs] Generating "front-proxy-ca" certificate and key')
        make_ca(
            pki_path(cluster, "front-proxy-ca.key"),
            pki_path(cluster, "front-proxy-ca.crt"),
            "front-proxy-ca",
        )
    out('[certs] Generating "front-proxy-client" certificate and key')
    issue_cert(
        pki_path(cluster, "front-proxy-ca.crt"),
        pki_path(cluster, "front-proxy-ca.key"),
        pki_path(cluster, "front-proxy-client.key"),
        pki_path(cluster, "front-proxy-client.crt"),
        "front-proxy-client",
    )
    if not shared_exist:
        out('[certs] Generating "etcd/ca" certificate and key')
        make_ca(pki_path(cluster, "etcd/ca.key"), pki_path(cluster, "etcd/ca.crt"), "etcd-ca")
        out("[certs] sealos-lab stand-in: no etcd runs; the apiservers replicate their own state")
        out('[certs] Generating "sa" key and public key')
        write_private(
            pki_path(cluster, "sa.pub"), public_key_pem(pki_path(cluster, "sa.key")), 0o644
        )
    else:
        out(f'[certs] Valid certificates and keys now exist in "{cluster.cert_dir}"')
        out('[certs] Using the existing "sa" key')
    # etcdctl's client certificate (the stand-in etcdctl reaches the members API with it).
    out('[certs] Generating "etcd/healthcheck-client" certificate and key')
    issue_cert(
        pki_path(cluster, "etcd/ca.crt"),
        pki_path(cluster, "etcd/ca.key"),
        pki_path(cluster, "etcd/healthcheck-client.key"),
        pki_path(cluster, "etcd/healthcheck-client.crt"),
        "kube-etcd-healthcheck-client",
    )


def write_control_plane_kubeconfigs(
    cluster: ClusterConfigFields, node: str, advertise: str, port: int, with_kubelet: bool
) -> None:
    version = kube_version()
    server = server_endpoint(cluster, advertise, port)
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


def upload_cert_bundle(client: ApiClient, cluster: ClusterConfigFields, key: str) -> None:
    bundle = {name: pki_path(cluster, name).read_text() for name in SHARED_CERTS}
    sealed = seal(key, json.dumps(bundle).encode())
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "data": {"sealed": sealed, "expiration": rfc3339(time.time() + 2 * 3600)},
    }
    client.call("PUT", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs", secret)


def download_cert_bundle(boot: ApiClient, cluster: ClusterConfigFields, key: str) -> None:
    """A control-plane join's shared certificates, from the kubeadm-certs Secret (sealed)."""
    out(
        '[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the '
        '"kube-system" Namespace'
    )
    try:
        secret = boot.call("GET", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
        bundle = json.loads(unseal(key, secret["data"]["sealed"]))
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
        write_private(pki_path(cluster, name), pem, 0o600 if name.endswith(".key") else 0o644)


def require_shared_certs(cluster: ClusterConfigFields) -> None:
    """Without a certificate key, the shared certificates must have been copied beforehand."""
    missing = [n for n in SHARED_CERTS if not pki_path(cluster, n).exists()]
    if missing:
        path = f"{cluster.cert_dir}/{missing[0]}"
        raise KubeadmFailure(
            "error execution phase control-plane-prepare/certs: error creating PKI assets: "
            f"failure loading {missing[0]}: couldn't load the certificate file {path}: "
            f"open {path}: no such file or directory"
        )
