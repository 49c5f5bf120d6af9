#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian 12 machine (root), then the project
# itself into .venv. Idempotent: a second run installs nothing and takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    debootstrap systemd-container            # lab hosts: rootfs + systemd-nspawn
    qemu-system-x86 qemu-utils e2fsprogs      # lab VMs: real IPVS under Debian's kernel
    busybox-static cpio kmod
    iproute2 nftables ipvsadm                 # kernel plumbing and independent observers
    openssh-client openssh-server sshpass curl openssl  # reaching hosts like a user would; sshd for unit tests of the SSH layer
    iputils-ping hyperfine python3-venv
    python3-yaml                              # the lab package's stand-ins run on the system python3
    skopeo                                    # sealos package build pulls images; the lab's mirror pushes them
)

# The lab's release mirror serves arm64 downloads too: Debian's arm64 containerd, runc and CNI
# plugins, fetched with `apt-get download` (never installed), need dpkg to know arm64.
need_update=0
if [ "$(dpkg --print-architecture)" != arm64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "setup: dpkg --add-architecture arm64 (for the lab's release mirror; nothing arm64 gets installed)"
    dpkg --add-architecture arm64
    need_update=1
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})) || ((need_update)); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
fi
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[dev]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi
