"""Every path sealos creates or reads on a host, in one place; and what `sealos clean` removes,
as data (`CLEAN_FOOTPRINT`): each path with the rule that proves it is ours. The clean script
(`clean_script.py`) is rendered from these; a path not listed here is never removed.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

HOME = "/root"
PACKAGE_DIR = "/root/kube"  # the unpacked offline package
INIT_SCRIPT = "/root/kube/shell/init.sh"
CNI_MANIFEST = "/root/kube/conf/net/calico.yaml"
CNI_MANIFEST_RENDERED = "/root/kube/conf/net/calico.sealos.yaml"
KUBEADM_CONFIG = "/root/kubeadm-config.yaml"  # rendered (or --kubeadm-config) for `kubeadm init`

STATE_DIR = "/var/lib/sealos"  # our markers: what finished on this host
# Written by init and join on a host before their first change there: sealos started on this host,
# so what kubeadm left there is an interrupted run of sealos (it may be reset) and the footprint's
# by-path removals apply. Without it (or the older markers below) a Kubernetes install is not ours.
MARK_STARTED = "/var/lib/sealos/started"
MARK_PACKAGE = (
    "/var/lib/sealos/package.sha256"  # package unpacked and init.sh done (holds its SHA-256)
)
MARK_INIT = "/var/lib/sealos/init.done"  # `kubeadm init` finished on the first master
MARK_JOIN = "/var/lib/sealos/join.done"  # `kubeadm join` finished on this master or node
KUBEADM_LOCK = "/var/lib/sealos/kubeadm.lock"  # one kubeadm init/join/reset at a time per host
# Any of these on a host: sealos started there (MARK_STARTED; the others by sealos-py before it).
SEALOS_MARKERS = (MARK_STARTED, MARK_PACKAGE, MARK_INIT, MARK_JOIN)
# sha256sum lines of the files the package's init.sh installed (written after it ran): clean
# removes such a file, once kube/ is gone, only while it still has that SHA-256.
MARK_INSTALLED = "/var/lib/sealos/installed.sha256"
# The image references a package's init.sh imported into a container runtime the host had before
# (one per line, those that were not there yet): clean removes just these images from it.
MARK_IMAGES = "/var/lib/sealos/images.imported"
# sha256sum line of root's kubectl config as sealos wrote it (a copy of admin.conf).
MARK_KUBECONFIG = "/var/lib/sealos/kubeconfig.sha256"

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

ETCD_MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
# etcd's manifest as it was while --force-new-cluster is in it (outside the manifests folder,
# which the kubelet reads whole); put back right after
ETCD_MANIFEST_SAVED = "/var/lib/sealos/etcd.yaml.before-force-new-cluster"
ETCD_PKI = "/etc/kubernetes/pki/etcd"  # kubeadm's etcd CA and the clients it signs
ETCDCTL_IN_PACKAGE = "/root/kube/bin/etcdctl"  # when the package carries one (else PATH's)

HOSTS_FILE = "/etc/hosts"
PART = ".sealos-part"  # suffix of a file being written; renamed into place when complete
EXIT_BUSY = 75  # a remote step found another run's kubeadm holding KUBEADM_LOCK

SYSTEMD_DIR = "/etc/systemd/system"
KUBELET_UNIT = f"{SYSTEMD_DIR}/kubelet.service"
KUBELET_DROPINS = f"{SYSTEMD_DIR}/kubelet.service.d"
KUBELET_WANTS = f"{SYSTEMD_DIR}/multi-user.target.wants/kubelet.service"
BIN_DIR = "/usr/bin"
PACKAGE_BINARIES = ("kubeadm", "kubelet", "kubectl")  # every sealos package installs these
# Where a package of `sealos package build` puts the runtime (containerd's getting-started).
LOCAL_BIN = "/usr/local/bin"  # containerd, ctr, its shims, crictl
LOCAL_SBIN = "/usr/local/sbin"  # runc
CNI_BIN = "/opt/cni/bin"  # CNI plugins
CONTAINERD_UNIT = f"{SYSTEMD_DIR}/containerd.service"
CONTAINERD_WANTS = f"{SYSTEMD_DIR}/multi-user.target.wants/containerd.service"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CONTAINERD_DATA = ("/var/lib/containerd", "/run/containerd", "/opt/containerd")
FSTAB = "/etc/fstab"
# First line of the files init.sh writes where a user's own file could be (containerd's config).
CONFIG_MARKER = "# written by sealos package build; sealos clean removes this file"
# Prefix init.sh puts before the swap lines of /etc/fstab it turns off; clean takes it away.
SWAP_MARKER = "#sealos-swap-off# "
# package folder (under kube/) -> the host folders whose files clean compares with it
SAME_AS_PACKAGE_DIRS = {"bin": (BIN_DIR, LOCAL_BIN, LOCAL_SBIN), "cni/bin": (CNI_BIN,)}
KUBECTL_CONFIG = f"{HOME}/.kube/config"
CNI_CONF_DIR = "/etc/cni/net.d"
# What the CNI sealos applies (the package's calico.yaml: calico's install-cni) writes there.
CNI_CONF_FILES = tuple(
    f"{CNI_CONF_DIR}/{n}" for n in ("10-calico.conflist", "calico-kubeconfig", "calico-tls")
)
# What the package's init.sh writes besides binaries and units (sealos packages write these; the
# lab's package writes ipvs.conf).
SYSTEM_FILES = (
    "/etc/sysctl.d/k8s.conf",
    "/etc/modules-load.d/k8s.conf",
    "/etc/modules-load.d/ipvs.conf",
)
KUBECTL_CACHE = f"{HOME}/.kube/cache"

# What `kubeadm reset` says it leaves (kube-proxy's rules and links, the CNI's): clean removes them
# on a host that is ours, each known by kube-proxy's or calico's own names.
KUBE_PROXY_LINK = "kube-ipvs0"  # kube-proxy's IPVS mode binds every service address to it
KUBE_PROXY_NFT_TABLE = "kube-proxy"  # kube-proxy's nftables mode (1.29+), in ip and ip6
NETWORK_CHAIN_PREFIXES = ("KUBE-", "cali-")  # kube-proxy's and calico's chains (iptables, nft)
CNI_LINKS = ("cali*", "tunl0", "vxlan.calico")  # calico's veths, IPIP and VXLAN devices

# --- what clean removes, and why each is ours ------------------------------------------------
# Every rule but BY_MARKER holds only on a host sealos started on (one of SEALOS_MARKERS there),
# or when the user says so (`clean --not-a-member`): elsewhere the paths are someone else's.
BY_PATH = "made at this path by sealos, kubeadm or the package's init.sh"
SAME_AS_PACKAGE = "byte-identical to the file of the package's kube/bin"
SAME_AS_PACKAGE_OR_RECORDED = (
    "byte-identical to the file of the package's kube/bin, or (kube/ gone) of the SHA-256 "
    "recorded in MARK_INSTALLED after init.sh"
)
BY_CHECKSUM = "its SHA-256 is the package's, as init recorded it"
WHEN_EMPTY = "a folder of such paths, removed only when nothing else is in it"
BY_MARKER = "the line carries sealos's marker"
SAME_AS_ADMIN_CONF = (
    "byte-identical to /etc/kubernetes/admin.conf (compared before kubeadm reset), or of the "
    "SHA-256 recorded in MARK_KUBECONFIG when sealos wrote it"
)
WITH_OUR_KUBECONFIG = "kubectl's cache, removed only together with a config that is ours"
AS_INIT_SH_WROTE = (
    "carries sealos's marker line, or has the SHA-256 recorded in MARK_INSTALLED after init.sh "
    "wrote it (an init.sh that did not finish recorded nothing: then by path)"
)
BY_CNI_NAME = "a file the CNI sealos applies (calico's install-cni) writes, by its name"
WITH_OUR_CONTAINERD = (
    "made at this path by the containerd the package's init.sh installed: only where "
    "containerd's config.toml carries sealos's marker (a runtime the host had is left alone)"
)


@dataclass(frozen=True)
class Removal:
    """Paths `clean` removes from a host (shell globs allowed), the rule that makes them ours,
    and who put them there."""

    paths: tuple[str, ...]
    rule: str
    made_by: str


LVSCARE_KEEPER = Removal(
    (LVSCARE_UNIT, LVSCARE_WANTS, LVSCARE_MANIFEST), BY_PATH, "sealos (lvscare's unit or pod)"
)
LVSCARE_BUNDLE = Removal((LVSCARE_BIN, LVSCARE_BIN + PART), BY_PATH, "sealos (the lvscare bundle)")
KUBELET_SERVICE = Removal(
    (KUBELET_WANTS, KUBELET_UNIT, KUBELET_DROPINS), BY_PATH, "the package's init.sh"
)
HOSTS_LINE = Removal((HOSTS_FILE,), BY_MARKER, "sealos (the apiserver name's line only)")
OTHER_PACKAGE_BINARIES = Removal(
    tuple(f"{d}/*" for dirs in SAME_AS_PACKAGE_DIRS.values() for d in dirs),
    SAME_AS_PACKAGE,
    "the package's init.sh (any file of kube/bin or kube/cni/bin: containerd, runc, crictl, CNI)",
)
CONTAINERD_SERVICE = Removal(
    (CONTAINERD_WANTS, CONTAINERD_UNIT),
    WITH_OUR_CONTAINERD,
    "the package's init.sh (containerd's unit)",
)
CONTAINERD_FILES = Removal(
    CONTAINERD_DATA,
    WITH_OUR_CONTAINERD,
    "containerd, installed by the package (images, snapshots, socket)",
)
CONTAINERD_CONFIG_FILE = Removal(
    (CONTAINERD_CONFIG,), BY_MARKER, "the package's init.sh (its first line is the marker)"
)
FSTAB_SWAP_LINES = Removal(
    (FSTAB,), BY_MARKER, "the package's init.sh (swap lines it commented out are restored)"
)
KUBE_BINARIES = Removal(
    tuple(f"{BIN_DIR}/{b}" for b in PACKAGE_BINARIES),
    SAME_AS_PACKAGE_OR_RECORDED,
    "the package's init.sh",
)
KUBE_BINARY_PARTS = Removal(
    tuple(f"{BIN_DIR}/{b}{PART}" for b in PACKAGE_BINARIES),
    BY_PATH,
    "the package's init.sh (a binary it was writing)",
)
PACKAGE_FILE = Removal((f"{HOME}/*.tar.gz",), BY_CHECKSUM, "sealos (the uploaded package)")
# Cluster data: kubeadm's and the kubelet's folders, the CNI's config, sealos's files.
CLUSTER_DATA = Removal(
    (
        KUBE_DIR,
        "/var/lib/kubelet",
        "/var/lib/etcd",
        "/var/lib/cni",
        "/var/run/kubernetes",
        KUBEADM_CONFIG,
        PACKAGE_DIR,
    ),
    BY_PATH,
    "kubeadm, the kubelet, the CNI and sealos",
)
KUBECTL_FILES = Removal((KUBECTL_CONFIG,), SAME_AS_ADMIN_CONF, "sealos (root's kubectl config)")
KUBECTL_CACHE_FILES = Removal((KUBECTL_CACHE,), WITH_OUR_KUBECONFIG, "kubectl, with our config")
CNI_FILES = Removal(CNI_CONF_FILES, BY_CNI_NAME, "the CNI (calico's install-cni)")
# What the package's init.sh writes besides the binaries (sealos packages all write these).
PACKAGE_SYSTEM_FILES = Removal(SYSTEM_FILES, AS_INIT_SH_WROTE, "the package's init.sh")
MARKERS = Removal((STATE_DIR,), BY_PATH, "sealos (what finished on this host)")

# Folders the paths above were in: removed last, and only when nothing else is in them.
EMPTY_FOLDERS = Removal(
    (CNI_BIN, "/opt/cni", CNI_CONF_DIR, "/etc/cni", f"{HOME}/.kube", "/etc/containerd"),
    WHEN_EMPTY,
    "init.sh, kubeadm, the CNI (the folders of the files above)",
)

CLEAN_FOOTPRINT = (
    LVSCARE_KEEPER,
    LVSCARE_BUNDLE,
    KUBELET_SERVICE,
    CONTAINERD_SERVICE,
    HOSTS_LINE,
    OTHER_PACKAGE_BINARIES,
    KUBE_BINARIES,
    KUBE_BINARY_PARTS,
    PACKAGE_FILE,
    CLUSTER_DATA,
    KUBECTL_FILES,
    KUBECTL_CACHE_FILES,
    CNI_FILES,
    PACKAGE_SYSTEM_FILES,
    CONTAINERD_FILES,
    CONTAINERD_CONFIG_FILE,
    FSTAB_SWAP_LINES,
    MARKERS,
    EMPTY_FOLDERS,
)


# What init.sh installs that clean may need to recognise once kube/ is gone (MARK_INSTALLED).
INSTALLED_RECORDED = (*(f"{BIN_DIR}/{b}" for b in PACKAGE_BINARIES), *SYSTEM_FILES)


def package_file(name: str) -> str:
    """Where the offline package file lives on a host (beside the unpacked folder)."""
    return f"{HOME}/{name}"


def q(value: object) -> str:
    """Quote one argument for the remote shell."""
    return shlex.quote(str(value))
