#!/bin/sh
# kube/shell/init.sh of the sealos-lab offline package: prepares this host for kubeadm the way the
# real package's script does (binaries, kubelet unit, sysctls, kernel modules, images), and says
# what it did. The binaries are the lab's stand-ins for kubeadm, kubelet and kubectl.
# Run it as the original: `cd kube/shell && sh init.sh` (any working directory works).
# Idempotent: running it again changes nothing that is already in place.
# Test mode: SEALOS_STANDIN_ROOT=/dir writes everything under /dir and touches no kernel setting.
# It fails (one line on stderr, exit 1) where the host can't meet kubeadm's preconditions: a
# sysctl that can't be set, swap that stays on.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
KUBE=$(cd "$HERE/.." && pwd)
ROOT=${SEALOS_STANDIN_ROOT:-}
VERSION=$(cat "$KUBE/version" 2>/dev/null || echo unknown)

say() { echo "[init.sh] $*"; }

say "sealos-lab offline package $VERSION: kubeadm, kubelet and kubectl are stand-ins, not Kubernetes"
if [ -n "$ROOT" ]; then
    say "test mode: all paths under $ROOT; kernel settings are left alone"
elif [ ! -d /run/systemd/system ]; then
    # Not a lab host: refuse before touching anything (the stand-ins need systemd).
    echo "init.sh: this host does not run systemd; run it on a lab host, or set SEALOS_STANDIN_ROOT=DIR for test mode" >&2
    exit 1
fi

# 1. Binaries: the stand-ins to /usr/bin (the kubelet unit's ExecStart), crictl (kubeadm's preflight
# asks for it) to /usr/local/bin, where the real package puts it.
mkdir -p "$ROOT/usr/bin" "$ROOT/usr/local/bin"
for bin in kubeadm kubelet kubectl crictl; do
    dest="$ROOT/usr/bin"
    [ "$bin" != crictl ] || dest="$ROOT/usr/local/bin"
    cp "$KUBE/bin/$bin" "$dest/.$bin.new"
    chmod 0755 "$dest/.$bin.new"
    mv -f "$dest/.$bin.new" "$dest/$bin"
done
say "copied kubeadm kubelet kubectl to /usr/bin, crictl to /usr/local/bin"

# 2. The kubelet unit and kubeadm's drop-in, enabled but not started: kubeadm starts it once it has
# written /var/lib/kubelet/config.yaml (until then the kubelet would only exit and be restarted).
mkdir -p "$ROOT/etc/systemd/system/kubelet.service.d"
cp "$KUBE/conf/kubelet.service" "$ROOT/etc/systemd/system/kubelet.service"
cp "$KUBE/conf/10-kubeadm.conf" "$ROOT/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
chmod 0644 "$ROOT/etc/systemd/system/kubelet.service" \
    "$ROOT/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
if [ -n "$ROOT" ] || [ "${SEALOS_STANDIN_NO_SYSTEMD:-}" = 1 ]; then
    say "wrote /etc/systemd/system/kubelet.service (+ 10-kubeadm.conf); systemctl not used in test mode"
else
    systemctl daemon-reload
    systemctl enable kubelet.service >/dev/null 2>&1
    say "installed kubelet.service (+ 10-kubeadm.conf drop-in): enabled, not started (kubeadm starts it)"
fi

# 3. Kernel modules kubeadm's checks need (overlay, br_netfilter), kept across reboots, and the
# sysctls: forwarding on every release, bridged traffic through iptables up to 1.29 (kubeadm's
# preflight checked it until then). A sysctl that can't be set fails here, with the fix.
MINOR=$(sed -n 's/^v[0-9]*\.\([0-9]*\)\..*/\1/p' "$KUBE/version" 2>/dev/null)
MINOR=${MINOR:-99}
mkdir -p "$ROOT/etc/modules-load.d" "$ROOT/etc/sysctl.d"
printf '%s\n' overlay br_netfilter > "$ROOT/etc/modules-load.d/k8s.conf"
cat > "$ROOT/etc/sysctl.d/k8s.conf" <<'EOF'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
EOF
if [ -n "$ROOT" ]; then
    say "wrote /etc/modules-load.d/k8s.conf and /etc/sysctl.d/k8s.conf (not applied in test mode)"
else
    for module in overlay br_netfilter; do
        # already loaded where the kernel is shared (lab containers can't load modules)
        modprobe "$module" >/dev/null 2>&1 || true
    done
    if ! sysctl -q -w net.ipv4.ip_forward=1 >/dev/null 2>&1 \
        || [ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" != 1 ]; then
        echo "init.sh: net.ipv4.ip_forward can't be set to 1 on this host; kubeadm and the kubelet need it: allow it (a container needs its own writable /proc/sys/net) and run again" >&2
        exit 1
    fi
    say "sysctl net.ipv4.ip_forward=1: set"
    if [ "$MINOR" -le 29 ]; then
        if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
            echo "init.sh: net.bridge.bridge-nf-call-iptables does not exist: the br_netfilter module is not loaded and can't be loaded here; load it on the host (modprobe br_netfilter) and run again" >&2
            exit 1
        fi
        if ! sysctl -q -w net.bridge.bridge-nf-call-iptables=1 >/dev/null 2>&1 \
            || [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)" != 1 ]; then
            echo "init.sh: net.bridge.bridge-nf-call-iptables can't be set to 1 on this host; kubeadm 1.$MINOR needs it: allow it and run again" >&2
            exit 1
        fi
        sysctl -q -w net.bridge.bridge-nf-call-ip6tables=1 >/dev/null 2>&1 || true
        say "sysctl net.bridge.bridge-nf-call-iptables=1: set"
    elif [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
        sysctl -q -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 \
            >/dev/null 2>&1 || true
    fi
fi

# 4. IPVS and conntrack modules: loaded where the kernel has them (VMs), skipped where it has not
# (lab containers share a host kernel without IPVS).
MODULES="ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack"
printf '%s\n' $MODULES > "$ROOT/etc/modules-load.d/ipvs.conf"
if [ -n "$ROOT" ]; then
    say "wrote /etc/modules-load.d/ipvs.conf (modules not loaded in test mode)"
else
    loaded=""
    missing=""
    for module in $MODULES; do
        if modprobe "$module" >/dev/null 2>&1; then
            loaded="$loaded $module"
        else
            missing="$missing $module"
        fi
    done
    if [ -n "$loaded" ]; then
        say "kernel modules loaded:$loaded"
    fi
    if [ -n "$missing" ]; then
        say "kernel modules not available here:$missing (continuing)"
    fi
fi

# 5. Swap off, now and after a reboot: the swap lines of /etc/fstab are kept, commented out behind
# the marker the real package uses (`sealos clean` restores them). Swap that stays on fails here.
SWAP_MARKER='#sealos-swap-off# '
FSTAB="$ROOT/etc/fstab"
if [ -f "$FSTAB" ] && awk '$1 !~ /^#/ && $3 == "swap" { f = 1 } END { exit !f }' "$FSTAB"; then
    awk -v m="$SWAP_MARKER" '$1 !~ /^#/ && $3 == "swap" { print m $0; next } { print }' \
        "$FSTAB" >"$FSTAB.sealos-part"
    cat "$FSTAB.sealos-part" >"$FSTAB" # in place: the file keeps its owner, mode and inode
    rm -f "$FSTAB.sealos-part"
    say "swap: its /etc/fstab lines commented out (marked '$SWAP_MARKER')"
fi
if [ -z "$ROOT" ]; then
    swapoff -a >/dev/null 2>&1 || true
    if [ "$(awk 'NR > 1' /proc/swaps 2>/dev/null | wc -l)" -ne 0 ]; then
        echo "init.sh: swap is still on ($(awk 'NR > 1 { print $1 }' /proc/swaps | tr '\n' ' ')); the kubelet refuses to start with swap: turn it off (swapoff -a) and run again" >&2
        exit 1
    fi
    say "swap: off"
fi

# 6. Images: the real package loads kube/images into the container runtime; so does this one where
# containerd runs (its one tiny image carries every name kubeadm asks the runtime for).
if [ -z "$ROOT" ] && command -v ctr >/dev/null 2>&1 && systemctl is-active --quiet containerd; then
    # The runtime is the host's: remember which images were new, so `sealos clean` removes just
    # those (/var/lib/sealos/images.imported, in sealos's own folder).
    had=$(ctr -n k8s.io images ls -q 2>/dev/null)
    if out=$(ctr -n k8s.io images import "$KUBE/images/images.tar" 2>&1); then
        mkdir -p /var/lib/sealos
        ctr -n k8s.io images ls -q 2>/dev/null | while read -r ref; do
            [ -n "$ref" ] || continue
            printf '%s\n' "$had" | grep -qxF -- "$ref" || printf '%s\n' "$ref"
        done >>/var/lib/sealos/images.imported
        sort -u -o /var/lib/sealos/images.imported /var/lib/sealos/images.imported
        say "images: kube/images/images.tar imported into containerd (namespace k8s.io)"
    else
        echo "init.sh: ctr could not import kube/images/images.tar: $out" >&2
        exit 1
    fi
else
    say "images: no container runtime runs on this host; kube/images/images.tar not loaded"
fi

say "done"
