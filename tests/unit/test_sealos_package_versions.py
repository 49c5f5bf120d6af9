"""The version table of `sealos package build`, checked against real kubeadm output [MK]."""

from __future__ import annotations

import pytest

from sealos.errors import SpecError
from sealos.kubeversion import KubeVersion
from sealos.package_versions import kubeadm_images, pause_image, runtime


def test_images_match_kubeadm_config_images_list():
    # kubeadm v1.28.15 config images list (minikube's generated table)
    assert kubeadm_images(KubeVersion.parse("v1.28.15")) == [
        "registry.k8s.io/kube-apiserver:v1.28.15",
        "registry.k8s.io/kube-controller-manager:v1.28.15",
        "registry.k8s.io/kube-scheduler:v1.28.15",
        "registry.k8s.io/kube-proxy:v1.28.15",
        "registry.k8s.io/coredns/coredns:v1.10.1",
        "registry.k8s.io/pause:3.9",
        "registry.k8s.io/etcd:3.5.15-0",
    ]
    assert pause_image(KubeVersion.parse("v1.31.0")) == "registry.k8s.io/pause:3.10"
    old = kubeadm_images(KubeVersion.parse("v1.24.8"))
    assert old[0].startswith("k8s.gcr.io/") and old[-1] == "k8s.gcr.io/etcd:3.5.5-0"
    mine = kubeadm_images(KubeVersion.parse("v1.30.5"), "lab.local:5000")
    assert "lab.local:5000/coredns:v1.11.3" in mine  # no coredns/ sub-path off the default


def test_runtime_pins_and_the_supported_range():
    assert runtime(KubeVersion.parse("v1.28.15")).containerd == "1.7.11"
    with pytest.raises(SpecError, match=r"supported are v1\.24\.0 to v1\.31\.x"):
        runtime(KubeVersion.parse("v1.20.15"))
