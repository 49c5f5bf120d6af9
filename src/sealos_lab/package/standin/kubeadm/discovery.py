"""Token discovery of `kubeadm join`: cluster-info, its JWS signature and the CA pin."""

from __future__ import annotations

import time
from pathlib import Path

from ..apiclient import ApiClient, ApiError, ConnectError
from ..decoder import format_go_duration
from ..pki import PkiError, jws_valid, kubeconfig_document, parse_kubeconfig, spki_pin
from ..versions import discovery_fails_fast
from .common import KubeadmFailure, env_seconds, kube_version
from .plans import JoinPlan

DISCOVERY_RETRY = 5.0


class _Retry(Exception):
    """A discovery error kubeadm retries until the discovery timeout."""


def discover_cluster_info(plan: JoinPlan) -> tuple[str, str]:
    """(kubeconfig text of cluster-info, CA PEM), validated like kubeadm's token discovery."""
    version = kube_version()
    token_id, _, token_secret = plan.token.partition(".")
    endpoint = plan.endpoint
    timeout = plan.discovery_timeout
    if timeout == 300.0:
        timeout = env_seconds("SEALOS_STANDIN_DISCOVERY_TIMEOUT", timeout)
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


def bootstrap_kubeconfig(cluster_info: str, token: str) -> str:
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
