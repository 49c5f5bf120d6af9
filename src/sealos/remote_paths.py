"""Every path sealos creates or reads on a host, in one place, so `clean` removes exactly these."""

from __future__ import annotations

import shlex

HOME = "/root"
PACKAGE_DIR = "/root/kube"  # the unpacked offline package
INIT_SCRIPT = "/root/kube/shell/init.sh"
CNI_MANIFEST = "/root/kube/conf/net/calico.yaml"
CNI_MANIFEST_RENDERED = "/root/kube/conf/net/calico.sealos.yaml"
KUBEADM_CONFIG = "/root/kubeadm-config.yaml"  # rendered (or --kubeadm-config) for `kubeadm init`

STATE_DIR = "/var/lib/sealos"  # our markers: what finished on this host
MARK_PACKAGE = (
    "/var/lib/sealos/package.sha256"  # package unpacked and init.sh done (holds its SHA-256)
)
MARK_INIT = "/var/lib/sealos/init.done"  # `kubeadm init` finished on the first master
MARK_JOIN = "/var/lib/sealos/join.done"  # `kubeadm join` finished on this master or node
KUBEADM_LOCK = "/var/lib/sealos/kubeadm.lock"  # one kubeadm init/join/reset at a time per host

LVSCARE_BIN = "/usr/local/bin/lvscare"
LVSCARE_UNIT = "/etc/systemd/system/lvscare.service"
LVSCARE_WANTS = "/etc/systemd/system/multi-user.target.wants/lvscare.service"  # = enabled
LVSCARE_MANIFEST = "/etc/kubernetes/manifests/kube-sealyun-lvscare.yaml"

KUBE_DIR = "/etc/kubernetes"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
# Files an interrupted `kubeadm init/join` leaves; any of them means `kubeadm reset -f` first.
KUBEADM_LEFTOVERS = (
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/bootstrap-kubelet.conf",
    "/etc/kubernetes/pki/ca.crt",
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/etcd.yaml",
    "/var/lib/etcd/member",
)

HOSTS_FILE = "/etc/hosts"


def package_file(name: str) -> str:
    """Where the offline package file lives on a host (beside the unpacked folder)."""
    return f"{HOME}/{name}"


def q(value: object) -> str:
    """Quote one argument for the remote shell."""
    return shlex.quote(str(value))
