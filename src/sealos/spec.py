"""The cluster spec: what the user asked for, from flags or from cluster.yaml (flags win).

Secrets (SSH password, key passphrase) live only in `Credentials`, which is never serialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from sealos.addresses import DEFAULT_SSH_PORT, Bastion, HostAddress, parse_bastion, parse_hosts
from sealos.errors import SpecError
from sealos.kubeversion import KubeVersion
from sealos.redaction import redact_url

DEFAULT_VIP = "10.103.97.2"
DEFAULT_APISERVER = "apiserver.cluster.local"
DEFAULT_POD_CIDR = "100.64.0.0/10"
# Not Kubernetes' usual 10.96.0.0/12: that range holds the default VIP 10.103.97.2, and a VIP inside
# the service range can be handed to a Service as its ClusterIP. A /16 keeps 10.96.0.1 and .10.
DEFAULT_SVC_CIDR = "10.96.0.0/16"
DEFAULT_LVSCARE_IMAGE = "docker.io/library/python:3.11-slim"
DEFAULT_CONCURRENCY = 20
LVSCARE_MODES = ("systemd", "static-pod")
PASSWORD_ENV = "SEALOS_PASSWORD"  # noqa: S105 (a variable name)
PK_PASSWORD_ENV = "SEALOS_PK_PASSWORD"  # noqa: S105 (a variable name)
SUDO_PASSWORD_ENV = "SEALOS_SUDO_PASSWORD"  # noqa: S105 (a variable name)
# The jump host's own password when it differs from the targets' (else theirs is used).
BASTION_PASSWORD_ENV = "SEALOS_BASTION_PASSWORD"  # noqa: S105 (a variable name)
ASK = "-"  # `--passwd -`: ask for it
# How new SSH host keys are met (OpenSSH's StrictHostKeyChecking): accept-new (default) takes a
# key no known_hosts file or pin of sealos knows and refuses one that differs; strict takes only
# known keys; tofu trusts sealos's own pins only (known_hosts files are not read).
HOST_KEY_POLICIES = ("accept-new", "strict", "tofu")

# cluster.yaml keys, in the order --print-config writes them.
FILE_KEYS = (
    "masters",
    "nodes",
    "user",
    "port",
    "pk",
    "bastion",
    "version",
    "pkg",
    "pkgUrl",
    "pkgSha256",
    "vip",
    "apiserver",
    "kubeadmConfig",
    "criSocket",
    "podCIDR",
    "serviceCIDR",
    "certSANs",
    "repo",
    "withoutCNI",
    "lvscareMode",
    "lvscareImage",
    "concurrency",
)
_SECRET_KEYS = {"passwd", "password", "pkPasswd", "pkPassword", "passphrase"}


@dataclass
class Credentials:
    """How to log in over SSH. Never written to a file or a log."""

    user: str = "root"
    password: Optional[str] = field(default=None, repr=False)
    key_path: Optional[Path] = None
    key_passphrase: Optional[str] = field(default=None, repr=False)
    host_key_policy: str = HOST_KEY_POLICIES[0]
    bastion_password: Optional[str] = field(default=None, repr=False)  # SEALOS_BASTION_PASSWORD
    # sudo's password for a user that is not root (SEALOS_SUDO_PASSWORD, else the SSH password)
    sudo_password: Optional[str] = field(default=None, repr=False)

    @property
    def sudo(self) -> bool:
        """True when commands run as root through sudo (the login user is not root)."""
        return self.user != "root"

    def secrets(self) -> list[str]:
        """The secret strings a log must never show."""
        found = (self.password, self.key_passphrase, self.bastion_password, self.sudo_password)
        return [s for s in found if s]

    def for_bastion(self, bastion: Bastion) -> Credentials:
        """How to log in to the jump host: its USER@ if given, else the targets' user; the
        password SEALOS_BASTION_PASSWORD if set, else the targets'; the same key (--pk)."""
        return Credentials(
            user=bastion.user or self.user,
            password=self.bastion_password or self.password,
            key_path=self.key_path,
            key_passphrase=self.key_passphrase,
            host_key_policy=self.host_key_policy,
        )


@dataclass
class ClusterSpec:
    """Everything `sealos init` needs to know, already parsed and typed."""

    masters: list[HostAddress]
    nodes: list[HostAddress] = field(default_factory=list)
    credentials: Credentials = field(default_factory=Credentials)
    version: Optional[KubeVersion] = None
    pkg: Optional[Path] = None
    pkg_url: Optional[str] = None
    pkg_sha256: Optional[str] = None
    vip: str = DEFAULT_VIP
    apiserver: str = DEFAULT_APISERVER
    kubeadm_config: Optional[Path] = None
    cri_socket: Optional[str] = None  # None: the runtime that answers (kubeadm's detection)
    pod_cidr: str = DEFAULT_POD_CIDR
    svc_cidr: str = DEFAULT_SVC_CIDR
    cert_sans: list[str] = field(default_factory=list)
    repo: Optional[str] = None
    without_cni: bool = False
    lvscare_mode: str = "systemd"
    lvscare_image: str = DEFAULT_LVSCARE_IMAGE
    concurrency: int = DEFAULT_CONCURRENCY
    ssh_port: int = DEFAULT_SSH_PORT
    connect_timeout: float = 10.0
    bastion: Optional[Bastion] = None  # every host is reached through this jump host

    @property
    def all_hosts(self) -> list[HostAddress]:
        """Masters first, then nodes."""
        return [*self.masters, *self.nodes]

    @property
    def package_name(self) -> str:
        """File name of the offline package, e.g. kube1.14.1.tar.gz (from --pkg or --pkg-url)."""
        if self.pkg is not None:
            return self.pkg.name
        if self.pkg_url:
            return url_file_name(self.pkg_url) or "kube.tar.gz"
        return "kube.tar.gz"


def url_file_name(url: str) -> str:
    """The last segment of the URL's path, as given (empty when the path ends in `/`)."""
    path = url.split("#", 1)[0].split("?", 1)[0]
    if "://" in path:
        path = path.split("://", 1)[1]
        path = path.split("/", 1)[1] if "/" in path else ""
    return path.rsplit("/", 1)[-1]


PACKAGE_SUFFIXES = (".tar.gz", ".tgz")


def package_name_problem(name: str, flag: str = "--pkg-url") -> Optional[str]:
    """Why `name` cannot be the package's file name on the hosts, or None. The file lands in
    /root and clean removes it there, so a name like `.ssh` would make clean remove /root/.ssh,
    and `kube` is the folder the package unpacks into."""
    fix = "give the package file, e.g. kube1.20.15.tar.gz"
    if not name:
        return f"{flag} ends in `/` and so names a folder; {fix}."
    if "/" in name or "\\" in name:
        return f"the package name {name!r} holds a slash; {fix}."
    if name.startswith("."):
        return f"the package name {name!r} starts with a dot (a hidden file in /root); {fix}."
    if name == "kube":
        return f"the package name {name!r} is the folder the package unpacks into; {fix}."
    if not name.endswith(PACKAGE_SUFFIXES) or name in PACKAGE_SUFFIXES:
        return f"the package name {name!r} does not end in .tar.gz or .tgz; {fix}."
    return None


def defaults() -> dict[str, Any]:
    """The file-form settings with every default filled in."""
    return {
        "masters": [],
        "nodes": [],
        "user": "root",
        "port": DEFAULT_SSH_PORT,
        "pk": None,
        "bastion": None,
        "version": None,
        "pkg": None,
        "pkgUrl": None,
        "pkgSha256": None,
        "vip": DEFAULT_VIP,
        "apiserver": DEFAULT_APISERVER,
        "kubeadmConfig": None,
        "criSocket": None,
        "podCIDR": DEFAULT_POD_CIDR,
        "serviceCIDR": DEFAULT_SVC_CIDR,
        "certSANs": [],
        "repo": None,
        "withoutCNI": False,
        "lvscareMode": "systemd",
        "lvscareImage": DEFAULT_LVSCARE_IMAGE,
        "concurrency": DEFAULT_CONCURRENCY,
    }


def load_file(path: Path) -> dict[str, Any]:
    """Read cluster.yaml into the file-form settings; unknown keys and passwords are refused."""
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror}; check the -f path.") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise SpecError(f"{path} is not valid YAML ({_first_line(e)}); fix the file.") from None
    if not isinstance(data, dict):
        raise SpecError(
            f"{path} must be a mapping of settings (as printed by `sealos init --print-config`)."
        )
    secret = sorted(set(data) & _SECRET_KEYS)
    if secret:
        raise SpecError(
            f"{path} holds {secret[0]!r}: passwords are never read from files; "
            f"use {PASSWORD_ENV}, --passwd - (prompt) or --pk."
        )
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise SpecError(
            f"{path}: unknown setting {unknown[0]!r}; the settings are: {', '.join(FILE_KEYS)}."
        )
    return data


def merge(file_values: dict[str, Any], cli_values: dict[str, Any]) -> dict[str, Any]:
    """Defaults, overlaid by the file, overlaid by the flags the user actually typed."""
    merged = defaults()
    merged.update({k: v for k, v in file_values.items() if v is not None})
    merged.update(cli_values)
    return merged


def to_values(spec: ClusterSpec) -> dict[str, Any]:
    """The file-form settings of a spec (no secrets): what the state file keeps for join/clean."""
    key = spec.credentials.key_path
    return {
        "masters": [str(h) for h in spec.masters],
        "nodes": [str(h) for h in spec.nodes],
        "user": spec.credentials.user,
        "port": spec.ssh_port,
        "pk": str(key) if key else None,
        "bastion": str(spec.bastion) if spec.bastion else None,
        "version": str(spec.version) if spec.version else None,
        "pkg": str(spec.pkg) if spec.pkg else None,
        # Credentials in the URL (user:pw@, a signed query) are never saved.
        "pkgUrl": redact_url(spec.pkg_url) if spec.pkg_url else None,
        "pkgSha256": spec.pkg_sha256,
        "vip": spec.vip,
        "apiserver": spec.apiserver,
        "kubeadmConfig": str(spec.kubeadm_config) if spec.kubeadm_config else None,
        "criSocket": spec.cri_socket,
        "podCIDR": spec.pod_cidr,
        "serviceCIDR": spec.svc_cidr,
        "certSANs": list(spec.cert_sans),
        "repo": spec.repo,
        "withoutCNI": spec.without_cni,
        "lvscareMode": spec.lvscare_mode,
        "lvscareImage": spec.lvscare_image,
        "concurrency": spec.concurrency,
    }


def to_yaml(values: dict[str, Any]) -> str:
    """The file form of the settings, with a header that explains it (for --print-config)."""
    ordered = {k: _plain(values.get(k)) for k in FILE_KEYS}
    header = (
        "# sealos cluster spec: the settings of `sealos init` flags; use with -f FILE.\n"
        "# Flags given on the command line win over this file.\n"
        f"# The SSH password is never read from here: use {PASSWORD_ENV}, --passwd - or --pk.\n"
    )
    return header + yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def build(values: dict[str, Any], credentials: Credentials) -> ClusterSpec:
    """Turn merged file-form settings into a typed spec; syntax errors raise SpecError."""
    port = _int(values.get("port"), "--port", 1, 65535)
    masters = parse_hosts(_list(values.get("masters")), port, "--master")
    nodes = parse_hosts(_list(values.get("nodes")), port, "--node")
    version = KubeVersion.parse(str(values["version"])) if values.get("version") else None
    mode = str(values.get("lvscareMode") or "systemd")
    if mode not in LVSCARE_MODES:
        raise SpecError(f"--lvscare-mode {mode!r} is not one of {', '.join(LVSCARE_MODES)}.")
    concurrency = _int(values.get("concurrency"), "--concurrency", 1, 1000)
    sha = values.get("pkgSha256")
    bastion = parse_bastion(str(values["bastion"])) if values.get("bastion") else None
    return ClusterSpec(
        masters=masters,
        nodes=nodes,
        credentials=credentials,
        version=version,
        pkg=_path(values.get("pkg")),
        pkg_url=values.get("pkgUrl") or None,
        pkg_sha256=str(sha).lower() if sha else None,
        vip=str(values.get("vip") or DEFAULT_VIP),
        apiserver=str(values.get("apiserver") or DEFAULT_APISERVER),
        kubeadm_config=_path(values.get("kubeadmConfig")),
        cri_socket=values.get("criSocket") or None,
        pod_cidr=str(values.get("podCIDR") or DEFAULT_POD_CIDR),
        svc_cidr=str(values.get("serviceCIDR") or DEFAULT_SVC_CIDR),
        cert_sans=[str(s) for s in _list(values.get("certSANs"))],
        repo=values.get("repo") or None,
        without_cni=bool(values.get("withoutCNI")),
        lvscare_mode=mode,
        lvscare_image=str(values.get("lvscareImage") or DEFAULT_LVSCARE_IMAGE),
        concurrency=concurrency,
        ssh_port=port,
        bastion=bastion,
    )


def credentials_from(
    user: str,
    passwd: Optional[str],
    pk: Optional[str],
    pk_passwd: Optional[str],
    prompt: Any = None,
    host_key_policy: str = HOST_KEY_POLICIES[0],
) -> Credentials:
    """Credentials from flags, SEALOS_PASSWORD / SEALOS_PK_PASSWORD, or a prompt (`--passwd -`,
    `--pk-passwd -`, no echo)."""
    password = passwd
    if password == ASK:
        if prompt is None:
            raise SpecError(
                "--passwd - needs a terminal to ask for the password; use SEALOS_PASSWORD instead."
            )
        password = prompt(f"SSH password for {user}: ")
    elif password is None:
        password = os.environ.get(PASSWORD_ENV) or None
    passphrase = pk_passwd
    if passphrase == ASK:
        if prompt is None:
            raise SpecError(
                f"--pk-passwd - needs a terminal to ask for the passphrase; use {PK_PASSWORD_ENV}."
            )
        passphrase = prompt(f"Passphrase for {pk}: ")
    elif passphrase is None and pk:
        passphrase = os.environ.get(PK_PASSWORD_ENV) or None
    key_path = Path(pk).expanduser() if pk else None
    return Credentials(
        user=user or "root",
        password=password,
        key_path=key_path,
        key_passphrase=passphrase,
        host_key_policy=host_key_policy,
        bastion_password=os.environ.get(BASTION_PASSWORD_ENV) or None,
        sudo_password=os.environ.get(SUDO_PASSWORD_ENV) or password,
    )


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _path(value: Any) -> Optional[Path]:
    return Path(str(value)).expanduser() if value else None


def _int(value: Any, flag: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SpecError(f"{flag} {value!r} is not a whole number.") from None
    if not low <= number <= high:
        raise SpecError(f"{flag} {number} is out of range; give a number from {low} to {high}.")
    return number


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
