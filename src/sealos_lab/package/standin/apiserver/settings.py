"""What one stand-in apiserver serves as, read from the static pod manifest kubeadm wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass
class ApiserverSettings:
    """What one apiserver needs, read from its static pod manifest and its member file."""

    node_name: str
    url: str
    bind_port: int
    cert_file: str
    key_file: str
    client_ca_file: str
    ca_key_file: str
    peer_cert_file: str
    peer_key_file: str
    state_dir: str
    kubernetes_version: str
    etcd_manifest: str = ""


def settings_from_manifest(manifest: Path, state_dir: Path) -> ApiserverSettings:
    """Flags of the kube-apiserver static pod manifest kubeadm wrote, plus member.json."""
    pod = yaml.safe_load(manifest.read_text())
    container = pod["spec"]["containers"][0]
    flags: dict[str, str] = {}
    for arg in container.get("command", [])[1:]:
        name, _, value = str(arg).lstrip("-").partition("=")
        flags[name] = value
    member = json.loads((state_dir / "member.json").read_text())
    image = str(container.get("image", ""))
    version = image.rsplit(":", 1)[-1] if ":" in image else ""
    ca_file = flags["client-ca-file"]
    return ApiserverSettings(
        node_name=member["name"],
        url=member["url"],
        bind_port=int(flags.get("secure-port", "6443")),
        cert_file=flags["tls-cert-file"],
        key_file=flags["tls-private-key-file"],
        client_ca_file=ca_file,
        ca_key_file=str(Path(ca_file).with_suffix(".key")),
        peer_cert_file=flags["kubelet-client-certificate"],
        peer_key_file=flags["kubelet-client-key"],
        state_dir=str(state_dir),
        kubernetes_version=version,
        etcd_manifest=str(manifest.parent / "etcd.yaml"),
    )
