"""`kubeadm init phase ...`: the stand-in implements upload-certs only."""

from __future__ import annotations

from ..apiclient import ApiError, ConnectError
from ..cliflags import ParsedFlags
from ..pki import new_certificate_key
from ..versions import upload_certs_flag
from .certs import upload_cert_bundle
from .common import KubeadmFailure, cluster_client, kube_version, load_config, out
from .plans import DEFAULT_CERT_DIR, ClusterConfigFields


def run_upload_certs_phase(parsed: ParsedFlags) -> int:
    """kubeadm init phase upload-certs --upload-certs (1.14: --experimental-upload-certs)."""
    version = kube_version()
    config = load_config(parsed)
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
    client, _kubeconfig = cluster_client(parsed)
    out(
        '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" '
        "Namespace"
    )
    try:
        upload_cert_bundle(client, ClusterConfigFields(cert_dir=cert_dir), key)
    except (ApiError, ConnectError, OSError) as exc:
        raise KubeadmFailure(
            f"error execution phase upload-certs: error uploading certs: {exc}"
        ) from None
    finally:
        client.close()
    out("[upload-certs] Using certificate key:")
    out(key if not parsed.values.get("skip-certificate-key-print") else "<value withheld>")
    return 0
