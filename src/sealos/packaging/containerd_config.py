"""containerd's /etc/containerd/config.toml for kubeadm, rendered from Python data: the systemd
cgroup driver (the kubelet's default since 1.22) and the package's pause image as the sandbox
image (containerd's built-in default differs from kubeadm's) [WEB-CRT][CTRD docs/cri/config.md].
One function per config version: containerd 1.6/1.7 read version 2, containerd 2.x version 3.
"""

from __future__ import annotations

import json
from typing import Any, Union

from sealos.remote_paths import CONFIG_MARKER as MARKER

Value = Union[str, bool, int]


def config_v2(pause: str) -> dict[str, Any]:
    """containerd 1.6 and 1.7 (`version = 2`)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return {
        "version": 2,
        cri: {"sandbox_image": pause},
        f"{cri}.containerd.runtimes.runc": {"runtime_type": "io.containerd.runc.v2"},
        f"{cri}.containerd.runtimes.runc.options": {"SystemdCgroup": True},
    }


def config_v3(pause: str) -> dict[str, Any]:
    """containerd 2.x (`version = 3`)."""
    runtime = "plugins.'io.containerd.cri.v1.runtime'"
    return {
        "version": 3,
        f"{runtime}.containerd.runtimes.runc": {"runtime_type": "io.containerd.runc.v2"},
        f"{runtime}.containerd.runtimes.runc.options": {"SystemdCgroup": True},
        "plugins.'io.containerd.cri.v1.images'.pinned_images": {"sandbox": pause},
    }


def render(containerd_version: str, pause: str) -> str:
    """The config.toml for this containerd release, with sealos's marker on its first line."""
    major = int(containerd_version.split(".")[0])
    data = config_v3(pause) if major >= 2 else config_v2(pause)
    lines = [MARKER]
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml(value)}")
    for table, values in tables:
        lines += ["", f"[{table}]"] + [f"  {k} = {_toml(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _toml(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a TOML basic string is a JSON string for these values
