"""kubeadm's flags per release, and the plan an init or join carries out (from flags or --config).

Flag availability (kubeadm-flags.json and upstream options/constant.go history):
- upload certs: --experimental-upload-certs 1.14 (1.15: deprecated alias), --upload-certs 1.15+;
- control-plane join: --experimental-control-plane 1.14 (1.15 alias), --control-plane 1.15+;
- --control-plane-endpoint on init from 1.16; --experimental-patches 1.19-1.21, --patches 1.22+.
Mixing --config with other flags (validation.ValidateMixedArguments / isAllowedFlag): allowed are
config, ignore-preflight-errors, dry-run, kubeconfig, node-name, kubeconfig-dir, the upload-certs
flag, print-join-command, rootfs, v, any skip-*; plus cri-socket until 1.21 (PR #101600 disallowed
it in 1.22) and certificate-key on 1.14 only (PR #78542 disallowed it in 1.15; v1beta1 had no
certificateKey field). "log-file" was added to the list in a later release; it is treated as
allowed from 1.26 (the exact release was not pinned).
"""

from __future__ import annotations

from typing import Optional

from ..cliflags import Flag, ParsedFlags
from ..versions import KubeVersion, upload_certs_flag
from .plans import (
    DEFAULT_CERT_DIR,
    DEFAULT_DNS_DOMAIN,
    DEFAULT_SERVICE_SUBNET,
    DEFAULT_TOKEN_GROUPS,
    DEFAULT_TOKEN_TTL,
    DEFAULT_TOKEN_USAGES,
)

GLOBAL_FLAGS = {
    "v": Flag("v", "int", short="v"),
    "rootfs": Flag("rootfs"),
    "log-file": Flag("log-file"),
    "log-file-max-size": Flag("log-file-max-size", "int"),
    "skip-headers": Flag("skip-headers", "bool"),
    "skip-log-headers": Flag("skip-log-headers", "bool"),
    "add-dir-header": Flag("add-dir-header", "bool"),
    "help": Flag("help", "bool", short="h"),
}


def _flags(*items: Flag) -> dict[str, Flag]:
    return {**GLOBAL_FLAGS, **{f.name: f for f in items}}


def _ha_flags(version: KubeVersion, name: str) -> list[Flag]:
    """--experimental-NAME on 1.14 (a deprecated alias on 1.15), --NAME from 1.15."""
    names = [f"experimental-{name}"] if version.minor <= 15 else []
    names += [name] if version.minor >= 15 else []
    return [Flag(n, "bool") for n in names]


def _patches_flags(version: KubeVersion) -> list[Flag]:
    """--experimental-patches 1.19-1.21, --patches from 1.22."""
    if 19 <= version.minor <= 21:
        return [Flag("experimental-patches")]
    return [Flag("patches")] if version.minor >= 22 else []


def init_flags(version: KubeVersion) -> dict[str, Flag]:
    """Flags of `kubeadm init` in this release."""
    items = [
        Flag("apiserver-advertise-address"),
        Flag("apiserver-bind-port", "int", default=6443),
        Flag("apiserver-cert-extra-sans", "strings"),
        Flag("cert-dir", default=DEFAULT_CERT_DIR),
        Flag("certificate-key"),
        Flag("config"),
        Flag("cri-socket"),
        Flag("dry-run", "bool"),
        Flag("feature-gates"),
        Flag("ignore-preflight-errors", "strings"),
        Flag("image-repository"),
        Flag("kubernetes-version", default="stable-1"),
        Flag("node-name"),
        Flag("pod-network-cidr"),
        Flag("service-cidr", default=DEFAULT_SERVICE_SUBNET),
        Flag("service-dns-domain", default=DEFAULT_DNS_DOMAIN),
        Flag("skip-certificate-key-print", "bool"),
        Flag("skip-phases", "strings"),
        Flag("skip-token-print", "bool"),
        Flag("token"),
        Flag("token-ttl", "duration", default=DEFAULT_TOKEN_TTL),
    ]
    items += _ha_flags(version, "upload-certs")
    if version.minor >= 16:
        items.append(Flag("control-plane-endpoint"))
    return _flags(*items, *_patches_flags(version))


def join_flags(version: KubeVersion) -> dict[str, Flag]:
    """Flags of `kubeadm join` in this release."""
    items = [
        Flag("apiserver-advertise-address"),
        Flag("apiserver-bind-port", "int", default=6443),
        Flag("certificate-key"),
        Flag("config"),
        Flag("cri-socket"),
        Flag("discovery-file"),
        Flag("discovery-token"),
        Flag("discovery-token-ca-cert-hash", "strings"),
        Flag("discovery-token-unsafe-skip-ca-verification", "bool"),
        Flag("ignore-preflight-errors", "strings"),
        Flag("node-name"),
        Flag("skip-phases", "strings"),
        Flag("tls-bootstrap-token"),
        Flag("token"),
    ]
    items += _ha_flags(version, "control-plane")
    return _flags(*items, *_patches_flags(version))


def token_create_flags(version: KubeVersion) -> dict[str, Flag]:
    """Flags of `kubeadm token create` (--certificate-key from 1.17)."""
    items = [
        Flag("config"),
        Flag("description"),
        Flag("groups", "strings", default=DEFAULT_TOKEN_GROUPS),
        Flag("print-join-command", "bool"),
        Flag("ttl", "duration", default=DEFAULT_TOKEN_TTL),
        Flag("usages", "strings", default=DEFAULT_TOKEN_USAGES),
        Flag("kubeconfig", default="/etc/kubernetes/admin.conf"),
        Flag("dry-run", "bool"),
    ]
    if version.minor >= 17:
        items.append(Flag("certificate-key"))
    return _flags(*items)


def token_flags() -> dict[str, Flag]:
    """Flags of `kubeadm token list|delete`."""
    return _flags(
        Flag("kubeconfig", default="/etc/kubernetes/admin.conf"),
        Flag("dry-run", "bool"),
        Flag("output", short="o", default="text"),
    )


def upload_certs_phase_flags(version: KubeVersion) -> dict[str, Flag]:
    """Flags of `kubeadm init phase upload-certs`."""
    return _flags(
        Flag(upload_certs_flag(version), "bool"),
        Flag("certificate-key"),
        Flag("config"),
        Flag("kubeconfig", default="/etc/kubernetes/admin.conf"),
        Flag("skip-certificate-key-print", "bool"),
    )


def reset_flags(version: KubeVersion) -> dict[str, Flag]:
    """Flags of `kubeadm reset` (--config from 1.31, with v1beta4 ResetConfiguration)."""
    items = [
        Flag("force", "bool", short="f"),
        Flag("cert-dir", default=DEFAULT_CERT_DIR),
        Flag("cri-socket"),
        Flag("ignore-preflight-errors", "strings"),
        Flag("kubeconfig", default="/etc/kubernetes/admin.conf"),
        Flag("skip-phases", "strings"),
    ]
    if version.minor >= 31:
        items.append(Flag("config"))
    return _flags(*items)


def mixed_flag_error(parsed: ParsedFlags, version: KubeVersion) -> Optional[str]:
    """kubeadm's refusal to mix --config with flags the config file should carry, or None."""
    if not parsed.was_set("config"):
        return None
    allowed = {
        "config",
        "ignore-preflight-errors",
        "dry-run",
        "kubeconfig",
        "node-name",
        "kubeconfig-dir",
        "print-join-command",
        "rootfs",
        "v",
        upload_certs_flag(version),
    }
    if version.minor <= 21:
        allowed.add("cri-socket")
    if version.minor == 15:
        allowed.update({"upload-certs", "experimental-upload-certs"})
    if version.minor <= 14:
        allowed.add("certificate-key")
    if version.minor >= 26:
        allowed.add("log-file")
    mixed = sorted(n for n in parsed.changed if n not in allowed and not n.startswith("skip-"))
    if mixed:
        return f"can not mix '--config' with arguments [{' '.join(mixed)}]"
    return None
