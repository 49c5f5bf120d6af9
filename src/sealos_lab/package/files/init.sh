#!/bin/sh
# kube/shell/init.sh of the sealos-lab offline package: prepares this host for kubeadm the way the
# real package's script does (binaries, kubelet unit, sysctls, kernel modules, images), and says
# what it did. The binaries are the lab's stand-ins for kubeadm, kubelet and kubectl.
# Run it as the original: `cd kube/shell && sh init.sh` (any working directory works).
# Idempotent: running it again changes nothing that is already in place.
# Test mode: SEALOS_STANDIN_ROOT=/dir writes everything under /dir and touches no kernel setting.
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

# 1. Binaries.
mkdir -p "$ROOT/usr/bin"
for bin in kubeadm kubelet kubectl; do
    cp "$KUBE/bin/$bin" "$ROOT/usr/bin/.$bin.new"
    chmod 0755 "$ROOT/usr/bin/.$bin.new"
    mv -f "$ROOT/usr/bin/.$bin.new" "$ROOT/usr/bin/$bin"
done
say "copied kubeadm kubelet kubectl to /usr/bin"

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

# 3. Sysctls: forwarding, and bridged traffic through iptables where the bridge module exists.
mkdir -p "$ROOT/etc/sysctl.d"
cat > "$ROOT/etc/sysctl.d/k8s.conf" <<'EOF'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
EOF
if [ -n "$ROOT" ]; then
    say "wrote /etc/sysctl.d/k8s.conf (not applied in test mode)"
else
    if sysctl -q -w net.ipv4.ip_forward=1 >/dev/null 2>&1; then
        say "sysctl net.ipv4.ip_forward=1: set"
    else
        say "sysctl net.ipv4.ip_forward=1: not permitted here (continuing)"
    fi
    if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
        modprobe br_netfilter >/dev/null 2>&1 || true
    fi
    if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
        if sysctl -q -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 \
            >/dev/null 2>&1; then
            say "sysctl net.bridge.bridge-nf-call-ip{,6}tables=1: set"
        else
            say "sysctl net.bridge.bridge-nf-call-ip{,6}tables: not permitted here (continuing)"
        fi
    else
        say "net.bridge.bridge-nf-call-iptables: br_netfilter is not available here (continuing)"
    fi
fi

# 4. IPVS and conntrack modules: loaded where the kernel has them (VMs), skipped where it has not
# (lab containers share a host kernel without IPVS).
MODULES="ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack"
mkdir -p "$ROOT/etc/modules-load.d"
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

# 5. Swap off, as kubeadm's preflight wants.
if [ -z "$ROOT" ]; then
    if swapoff -a >/dev/null 2>&1; then
        say "swap: off"
    else
        say "swap: swapoff not permitted here (continuing)"
    fi
fi

# 6. Images: the real package loads kube/images into the container runtime.
if [ -z "$ROOT" ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    say "images: a docker engine runs here, but kube/images holds no real images; nothing loaded"
else
    say "images: no container runtime on this host; kube/images/images.tar not loaded (the stand-ins need no images)"
fi

say "done"
