"""Kubernetes versions and what differs between them, as the stand-ins must show it.

Each function answers one question about one release; the sources (upstream PRs, templates) are
named next to the answer. Where upstream could not be pinned exactly, the comment says so.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, NamedTuple, Optional


class KubeVersion(NamedTuple):
    """A Kubernetes release such as v1.20.15."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    @property
    def minor_text(self) -> str:
        """ "1.20" for v1.20.15."""
        return f"{self.major}.{self.minor}"


_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.\-+]*)?$")

# The releases this package can build stand-ins for (the schemas cover 1.14 .. 1.36).
FIRST_SUPPORTED_MINOR = 14
LAST_SUPPORTED_MINOR = 36


def parse_kube_version(text: str) -> Optional[KubeVersion]:
    """KubeVersion of "v1.20.15" / "1.20.15", or None when the text is not a version."""
    match = _VERSION_RE.match(text.strip())
    if not match:
        return None
    return KubeVersion(int(match.group(1)), int(match.group(2)), int(match.group(3)))


def minor_number(text: str) -> int:
    """14 for "1.14" (the schemas' release notation)."""
    return int(text.split(".")[1])


def api_minor_range(schema: dict[str, Any]) -> tuple[int, Optional[int]]:
    """(first, last) minor release reading a kubeadm API version; last None = still read."""
    versions = schema.get("kubernetesVersions", {})
    first = minor_number(versions["introduced"])
    last_text = str(versions.get("lastAccepted") or "")
    last = minor_number(last_text) if re.match(r"^\d+\.\d+$", last_text) else None
    return first, last


def flag_names(flags_data: dict[str, Any], version: KubeVersion) -> dict[str, Any]:
    """The kubeadm-flags.json entry that applies to a release (the closest one at or below it)."""
    entries = flags_data["versions"]
    best = None
    for key in entries:
        if minor_number(key) <= version.minor and (best is None or minor_number(key) > best):
            best = minor_number(key)
    if best is None:
        best = min(minor_number(key) for key in entries)
    entry = dict(entries[f"1.{best}"])
    if best != version.minor:
        # Deprecated aliases were kept for exactly one cycle (PR #78452, removed by PR #79327).
        entry.pop("deprecatedAliasesStillAccepted", None)
    return entry


def upload_certs_flag(version: KubeVersion) -> str:
    """--experimental-upload-certs on 1.14, --upload-certs from 1.15 (PR #78452)."""
    return "experimental-upload-certs" if version.minor <= 14 else "upload-certs"


def control_plane_flag(version: KubeVersion) -> str:
    """--experimental-control-plane on 1.14, --control-plane from 1.15 (PR #78452)."""
    return "experimental-control-plane" if version.minor <= 14 else "control-plane"


def deprecated_ha_aliases(version: KubeVersion) -> list[str]:
    """1.15 still accepts the experimental spellings, with a deprecation notice."""
    if version.minor == 15:
        return ["experimental-upload-certs", "experimental-control-plane"]
    return []


def control_plane_labels(version: KubeVersion) -> list[str]:
    """Node labels kubeadm's mark-control-plane phase applies.

    "master" until 1.19; 1.20 added "control-plane" next to it (kubeadm KEP 2067); 1.24 dropped
    "master". kubectl shows them sorted in the ROLES column.
    """
    if version.minor <= 19:
        return ["node-role.kubernetes.io/master"]
    if version.minor <= 23:
        return ["node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"]
    return ["node-role.kubernetes.io/control-plane"]


def control_plane_taints(version: KubeVersion) -> list[str]:
    """Taint keys kubeadm puts on control-plane nodes (effect NoSchedule)."""
    if version.minor <= 23:
        return ["node-role.kubernetes.io/master"]
    if version.minor == 24:
        return ["node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane"]
    return ["node-role.kubernetes.io/control-plane"]


def join_line_indent(version: KubeVersion) -> str:
    """Continuation indent of the printed join command.

    Four spaces up to 1.20; a tab from 1.21 (PR #97413 cleaned the whitespace and made
    `token create --print-join-command` print single spaces).
    """
    return "    " if version.minor <= 20 else "\t"


def shows_root_kubeconfig_hint(version: KubeVersion) -> bool:
    """init's "Alternatively, if you are the root user ... export KUBECONFIG" lines (from 1.20)."""
    return version.minor >= 20


def kubectl_prints_short_version(version: KubeVersion) -> bool:
    """kubectl version prints "Client Version: v1.x.y" lines from 1.28 (--short became default)."""
    return version.minor >= 28


def discovery_fails_fast(version: KubeVersion) -> bool:
    """Since PR #85468 (1.18) a wrong CA pin or token signature fails at once.

    Before that, every discovery error was retried until the discovery timeout (5m0s).
    """
    return version.minor >= 18


def checks_duplicate_node_name(version: KubeVersion) -> bool:
    """join refuses a name already used by a Ready node (added in the 1.18 cycle)."""
    return version.minor >= 18


def admin_group(version: KubeVersion) -> str:
    """Group of the admin.conf client certificate (1.29 moved it off system:masters)."""
    return "system:masters" if version.minor <= 28 else "kubeadm:cluster-admins"


def writes_super_admin_conf(version: KubeVersion) -> bool:
    """1.29+ writes /etc/kubernetes/super-admin.conf (system:masters) on the first control plane."""
    return version.minor >= 29


def kubelet_config_map_name(version: KubeVersion) -> str:
    """The ConfigMap holding the cluster's KubeletConfiguration (unversioned from 1.24)."""
    return f"kubelet-config-{version.minor_text}" if version.minor < 24 else "kubelet-config"


def old_api_message_has_kind(version: KubeVersion) -> bool:
    """The "old API spec" error names the kind in newer releases (pinned approximately to 1.27)."""
    return version.minor >= 27


def default_cri_socket(flags_data: dict[str, Any], version: KubeVersion) -> str:
    """kubeadm's compiled-in fallback CRI socket."""
    return str(flag_names(flags_data, version)["defaultCriSocket"])


def container_runtime_version(version: KubeVersion) -> str:
    """CONTAINER-RUNTIME column of `kubectl get nodes -o wide` (no runtime runs in the lab)."""
    runtime = "docker" if version.minor <= 23 else "containerd"
    return f"{runtime}://sealos-lab-stand-in"


_GO_VERSIONS = {
    14: "go1.12.1",
    15: "go1.12.5",
    16: "go1.12.9",
    17: "go1.13.4",
    18: "go1.13.8",
    19: "go1.15",
    20: "go1.15.15",
    21: "go1.16.15",
    22: "go1.16.15",
    23: "go1.17.13",
    24: "go1.19.12",
    25: "go1.20.10",
    26: "go1.21.3",
    27: "go1.21.13",
    28: "go1.22.8",
    29: "go1.22.10",
    30: "go1.22.10",
    31: "go1.22.10",
    32: "go1.23.4",
    33: "go1.24.0",
    34: "go1.24.4",
    35: "go1.25.0",
    36: "go1.25.3",
}


def version_info(version: KubeVersion) -> dict[str, str]:
    """The fields of Kubernetes' version.Info for a stand-in of this release."""
    commit = hashlib.sha1(f"sealos-lab-stand-in {version}".encode(), usedforsecurity=False)
    return {
        "major": str(version.major),
        "minor": str(version.minor),
        "gitVersion": str(version),
        "gitCommit": commit.hexdigest(),
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": _GO_VERSIONS.get(version.minor, "go1.22"),
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def version_info_struct(version: KubeVersion) -> str:
    """version.Info printed the Go way: &version.Info{Major:"1", Minor:"20", ...}."""
    info = version_info(version)
    order = [
        ("Major", "major"),
        ("Minor", "minor"),
        ("GitVersion", "gitVersion"),
        ("GitCommit", "gitCommit"),
        ("GitTreeState", "gitTreeState"),
        ("BuildDate", "buildDate"),
        ("GoVersion", "goVersion"),
        ("Compiler", "compiler"),
        ("Platform", "platform"),
    ]
    return "version.Info{" + ", ".join(f'{go}:"{info[key]}"' for go, key in order) + "}"


def joins_etcd_as_learner(version: KubeVersion) -> bool:
    """A control-plane join adds its etcd member as a learner, promoted once caught up.

    kubeadm's EtcdLearnerMode feature gate: alpha (off) in 1.27, beta and on by default in 1.29,
    GA in 1.32 (kubernetes.io blog 2023-09-25 "kubeadm: Use etcd Learner to Join a Control Plane
    Node Safely"; beta/GA from the kubeadm changelogs as remembered, not pinned to a PR here).
    Up to 1.28 the new member votes from the moment it is added.
    """
    return version.minor >= 29
