#!/bin/sh
# kube/shell/init.sh of a package built by `sealos package build`: prepares this host for kubeadm.
# It installs containerd, runc, crictl and the CNI plugins with containerd's unit and config, the
# kubelet unit and kubeadm's drop-in, sysctls and kernel modules (kept across reboots), turns swap
# off (also in /etc/fstab), starts containerd and imports the package's images.
# Run it as sealos does: `cd kube/shell && sh init.sh` (any working directory works).
# Idempotent: a file is replaced only when it differs; a second run changes nothing.
# Every path it writes is in sealos's remote_paths.CLEAN_FOOTPRINT: `sealos clean` removes it.
# Test mode: SEALOS_INIT_ROOT=/dir writes the files under /dir and runs no systemctl, sysctl,
# modprobe, swapoff or ctr.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

HERE=$(cd "$(dirname "$0")" && pwd)
KUBE=$(cd "$HERE/.." && pwd)
ROOT=${SEALOS_INIT_ROOT:-}
VERSION=$(cat "$KUBE/version" 2>/dev/null || echo unknown)
MARKER='# written by sealos package build; sealos clean removes this file'
SWAP_MARKER='#sealos-swap-off# '
MODULES="overlay br_netfilter ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack"
CONFIG="$ROOT/etc/containerd/config.toml"
UNITS="$ROOT/etc/systemd/system"

say() { echo "[init.sh] $*"; }
fail() {
    echo "init.sh: $*" >&2
    exit 1
}
real() { [ -z "$ROOT" ]; }

# install_file SRC DEST MODE: replace DEST only when it differs (written aside, then renamed, so
# a running binary is never overwritten in place); counts the files it changed.
changed=0
install_file() {
    if cmp -s "$1" "$2"; then return 0; fi
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2.sealos-part"
    chmod "$3" "$2.sealos-part"
    mv -f "$2.sealos-part" "$2"
    changed=$((changed + 1))
}

# install_text DEST: stdin to DEST (mode 0644), only when it differs.
install_text() {
    tmp=$(mktemp)
    cat >"$tmp"
    install_file "$tmp" "$1" 0644
    rm -f "$tmp"
}

say "sealos offline package $VERSION"
if real && [ ! -d /run/systemd/system ]; then
    fail "this host does not run systemd; the package's containerd and kubelet are systemd units"
fi
# Before changing anything: a containerd config that is not ours is the user's; never replace it.
if [ -e "$CONFIG" ] && ! grep -qxF "$MARKER" "$CONFIG"; then
    fail "/etc/containerd/config.toml exists and was not written by sealos; move it away (this package's containerd needs its own config) and run again"
fi

# 1. Binaries: Kubernetes' to /usr/bin (the kubelet unit's ExecStart), containerd's and crictl to
# /usr/local/bin, runc to /usr/local/sbin (containerd's getting-started), CNI plugins to /opt/cni/bin.
for f in "$KUBE"/bin/*; do
    b=$(basename "$f")
    case "$b" in
    kubeadm | kubelet | kubectl) dest=/usr/bin ;;
    runc) dest=/usr/local/sbin ;;
    *) dest=/usr/local/bin ;;
    esac
    install_file "$f" "$ROOT$dest/$b" 0755
done
for f in "$KUBE"/cni/bin/*; do
    [ -f "$f" ] || continue
    install_file "$f" "$ROOT/opt/cni/bin/$(basename "$f")" 0755
done
say "binaries: $changed installed or updated (kubeadm kubelet kubectl, containerd, runc, crictl, CNI plugins)"

# 2. containerd's unit and config (systemd cgroups, the package's pause image).
install_file "$KUBE/conf/containerd.service" "$UNITS/containerd.service" 0644
install_file "$KUBE/conf/config.toml" "$CONFIG" 0644
install_file "$KUBE/conf/kubelet.service" "$UNITS/kubelet.service" 0644
install_file "$KUBE/conf/10-kubeadm.conf" "$UNITS/kubelet.service.d/10-kubeadm.conf" 0644
say "units: containerd.service, kubelet.service (+ 10-kubeadm.conf); /etc/containerd/config.toml"

# 3. Kernel modules and sysctls, now and after a reboot.
# (a here-document, not a pipe: install_text must run in this shell to count what it changed)
install_text "$ROOT/etc/modules-load.d/k8s.conf" <<MODULES
$(printf '%s\n' $MODULES)
MODULES
install_text "$ROOT/etc/sysctl.d/k8s.conf" <<'SYSCTL'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
SYSCTL
if real; then
    loaded=""
    missing=""
    for module in $MODULES; do
        if modprobe "$module" >/dev/null 2>&1; then
            loaded="$loaded $module"
        else
            missing="$missing $module"
        fi
    done
    [ -z "$loaded" ] || say "kernel modules loaded:$loaded"
    [ -z "$missing" ] || say "kernel modules not available here:$missing (continuing)"
    if sysctl -q -p "$ROOT/etc/sysctl.d/k8s.conf" >/dev/null 2>&1; then
        say "sysctls: ip_forward and bridge-nf-call-iptables set"
    else
        # lab containers may not write every sysctl; kubeadm's preflight says which one matters
        sysctl -q -w net.ipv4.ip_forward=1 >/dev/null 2>&1 || true
        say "sysctls: not all could be set here (continuing; kubeadm's preflight checks them)"
    fi
fi

# 4. Swap off, now and in /etc/fstab (the lines are kept, commented out behind a marker that
# `sealos clean` removes again).
FSTAB="$ROOT/etc/fstab"
if [ -f "$FSTAB" ] && awk '$1 !~ /^#/ && $3 == "swap" { f = 1 } END { exit !f }' "$FSTAB"; then
    awk -v m="$SWAP_MARKER" '$1 !~ /^#/ && $3 == "swap" { print m $0; next } { print }' \
        "$FSTAB" >"$FSTAB.sealos-part"
    cat "$FSTAB.sealos-part" >"$FSTAB" # in place: the file keeps its owner, mode and inode
    rm -f "$FSTAB.sealos-part"
    say "swap: its /etc/fstab lines commented out (marked '$SWAP_MARKER')"
fi
if real; then
    if swapoff -a >/dev/null 2>&1; then say "swap: off"; else say "swap: swapoff not permitted here (continuing)"; fi
fi

if ! real; then
    say "test mode: files written under $ROOT; containerd not started, images not imported"
    exit 0
fi

# 5. containerd running (restarted when a file of this run changed: a binary, its unit or config);
# kubelet enabled but not started: kubeadm starts it once /var/lib/kubelet/config.yaml exists.
systemctl daemon-reload || fail "systemctl daemon-reload failed"
systemctl enable containerd.service >/dev/null 2>&1 || fail "systemctl enable containerd.service failed"
if [ "$changed" -gt 0 ] && systemctl is-active --quiet containerd.service; then
    action=restart
else
    action=start
fi
systemctl "$action" containerd.service ||
    fail "containerd did not $action; see journalctl -u containerd"
tries=0
until ctr version >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 30 ] || fail "containerd did not answer on /run/containerd/containerd.sock within 30 s; see journalctl -u containerd"
    sleep 1
done
systemctl enable kubelet.service >/dev/null 2>&1 || fail "systemctl enable kubelet.service failed"
say "containerd: running; kubelet.service enabled (kubeadm starts it)"

# 6. Images, named by their archives' RepoTags (an import of an image already there changes nothing).
n=0
for f in "$KUBE"/images/*.tar; do
    [ -f "$f" ] || continue
    out=$(ctr -n k8s.io images import "$f" 2>&1) || fail "ctr could not import $f: $out"
    n=$((n + 1))
done
say "images: $n imported into containerd (namespace k8s.io)"
say "done"
