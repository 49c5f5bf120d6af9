"""What differs between Kubernetes releases: kubeadm API version, flag names, CRI socket.

Facts from ../shared/schemas/kubeadm-flags.json and the `kubernetesVersions` of each kubeadm API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sealos.errors import SpecError

OLDEST_MINOR = 14  # upload-certs and --certificate-key first appeared in 1.14

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True, order=True)
class KubeVersion:
    """A Kubernetes release, e.g. v1.14.1."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> KubeVersion:
        """Parse `v1.14.1` or `1.14.1`; refuse releases sealos cannot install."""
        m = _VERSION.match(text.strip())
        if not m:
            raise SpecError(
                f"--version {text!r} is not a release like v1.14.1; give the full version."
            )
        v = cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if v.major != 1 or v.minor < OLDEST_MINOR:
            raise SpecError(
                f"--version {text} is older than v1.{OLDEST_MINOR}.0, "
                "the first release that can share "
                "control-plane certificates; use v1.14.0 or newer."
            )
        return v

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    def at_least(self, minor: int) -> bool:
        """True from Kubernetes 1.<minor> on."""
        return self.minor >= minor

    @property
    def kubeadm_api(self) -> str:
        """The kubeadm config API this release reads (the newest one it does not deprecate)."""
        if self.minor <= 14:
            return "kubeadm.k8s.io/v1beta1"
        if self.minor <= 21:
            return "kubeadm.k8s.io/v1beta2"
        if self.minor <= 30:
            return "kubeadm.k8s.io/v1beta3"
        return "kubeadm.k8s.io/v1beta4"

    @property
    def upload_certs_flag(self) -> str:
        """`kubeadm init` flag that uploads control-plane certificates (renamed in 1.15)."""
        return "--experimental-upload-certs" if self.minor <= 14 else "--upload-certs"

    @property
    def control_plane_flag(self) -> str:
        """`kubeadm join` flag that joins as a control plane (renamed in 1.15)."""
        return "--experimental-control-plane" if self.minor <= 14 else "--control-plane"

    @property
    def certificate_key_in_config(self) -> bool:
        """v1beta1 (1.14) has no certificateKey field: the key can only be passed as a flag."""
        return self.minor >= 15

    @property
    def default_cri_socket(self) -> str:
        """kubeadm's built-in CRI socket: dockershim until 1.23, containerd (unix://) from 1.24."""
        if self.minor <= 23:
            return "/var/run/dockershim.sock"
        return "unix:///var/run/containerd/containerd.sock"
