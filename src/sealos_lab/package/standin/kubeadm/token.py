"""Bootstrap tokens: their Secret, the join command, and `kubeadm token create|list|delete`."""

from __future__ import annotations

import re
import time
from typing import Any

from ..apiclient import ApiError, ConnectError, parse_rfc3339, rfc3339, split_server
from ..cliflags import ParsedFlags
from ..pki import new_bootstrap_token, spki_pin
from ..versions import control_plane_flag, join_line_indent
from .common import KubeadmFailure, cluster_client, kube_version, load_config, out
from .plans import TokenSpec, validate_token

_TOKEN_ID = re.compile(r"^([a-z0-9]{6})$")
_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")


def token_secret(spec: TokenSpec) -> dict[str, Any]:
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


def join_command(
    endpoint: str, token: str, pin: str, control_plane: bool = False, key: str = ""
) -> str:
    version = kube_version()
    indent = join_line_indent(version)
    command = (
        f"kubeadm join {endpoint} --token {token} \\\n{indent}--discovery-token-ca-cert-hash {pin} "
    )
    if control_plane:
        command += f"\\\n{indent}--{control_plane_flag(version)} "
        if key:
            command += f"--certificate-key {key}"
    return command


def run_token_create(parsed: ParsedFlags) -> int:
    """kubeadm token create [TOKEN] [--print-join-command]."""
    config = load_config(parsed)
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
    client, kubeconfig = cluster_client(parsed)
    try:
        client.call("POST", "/api/v1/namespaces/kube-system/secrets", token_secret(spec))
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
    command = join_command(f"{host}:{port}", spec.token, pin, bool(key), key)
    command = command.replace("\\\n", "").replace("\t", "")
    out(command)
    return 0


def run_token_list(parsed: ParsedFlags) -> int:
    """kubeadm token list."""
    client, _config = cluster_client(parsed)
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
    for item in parsed.args:
        # kubeadm takes a token ID or a whole token, nothing else
        if not (_TOKEN_ID.match(item) or _TOKEN.match(item)):
            raise KubeadmFailure(
                f'given token didn\'t match pattern "{_TOKEN_ID.pattern}" or "{_TOKEN.pattern}"'
            )
    client, _config = cluster_client(parsed)
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
