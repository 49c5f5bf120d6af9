#!/bin/sh
# /init of the lab VMs' initramfs (busybox). Loads the virtio drivers, mounts the root disk, then
#   lab.mode=run:  hands over to /run/sealos-lab/init (one command, no systemd, see vm_run_stage.sh)
#   lab.mode=host: copies the host's own files over /, writes its network config, boots systemd.
# Disks are found by the serial number qemu gives them, not by their order.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for ko in $(cat /lab/modules); do insmod "/lab/ko/$ko"; done

fail() {
    echo "sealos-lab initramfs: $*" >/dev/console
    sleep 1
    poweroff -f
}

param() {
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1="*) echo "${word#*=}"; return 0 ;; esac
    done
    return 1
}

disk() {
    tries=0
    while [ "$tries" -lt 200 ]; do
        for s in /sys/block/vd*/serial; do
            if [ -e "$s" ] && [ "$(cat "$s")" = "$1" ]; then
                d=${s%/serial}
                echo "/dev/${d##*/}"
                return 0
            fi
        done
        sleep 0.05
        tries=$((tries + 1))
    done
    return 1
}

mode=$(param lab.mode) || fail "no lab.mode on the kernel command line"
root=$(disk lab-root) || fail "no root disk"
mkdir -p /newroot
mount -t ext4 -o rw "$root" /newroot || fail "cannot mount the root disk $root"

case "$mode" in
run)
    mount -t tmpfs -o mode=0755 tmpfs /newroot/run
    mkdir -p /newroot/run/sealos-lab /newroot/mnt/share
    cp /lab/run-stage /newroot/run/sealos-lab/init
    chmod 0755 /newroot/run/sealos-lab/init
    cat /sys/firmware/qemu_fw_cfg/by_name/opt/sealos-lab/command/raw \
        >/newroot/run/sealos-lab/command || fail "no command given"
    if share=$(disk lab-share); then
        mount -t ext4 -o rw "$share" /newroot/mnt/share || fail "cannot mount the shared folder"
    fi
    init=/run/sealos-lab/init
    ;;
host)
    if files=$(disk lab-files); then
        mkdir -p /files
        mount -t ext4 -o ro "$files" /files || fail "cannot mount the host's files"
        for entry in /files/* /files/.[!.]*; do
            [ -e "$entry" ] || [ -L "$entry" ] || continue
            [ "$entry" = /files/lost+found ] && continue
            cp -a "$entry" /newroot/ || fail "cannot copy $entry"
        done
        umount /files
    fi
    mac=$(param lab.mac) || fail "no lab.mac"
    addr=$(param lab.ip) || fail "no lab.ip"
    net=/newroot/etc/systemd/network
    mkdir -p "$net"
    {
        echo "[Match]"
        echo "MACAddress=$mac"
        echo "[Network]"
        echo "Address=$addr"
        if gw=$(param lab.gw); then echo "Gateway=$gw"; fi
        echo "LinkLocalAddressing=no"
        echo "IPv6AcceptRA=no"
    } >"$net/10-sealos-lab.network"
    wants=/newroot/etc/systemd/system
    mkdir -p "$wants/multi-user.target.wants" "$wants/sockets.target.wants"
    ln -sf /lib/systemd/system/systemd-networkd.service \
        "$wants/multi-user.target.wants/systemd-networkd.service"
    ln -sf /lib/systemd/system/systemd-networkd.socket \
        "$wants/sockets.target.wants/systemd-networkd.socket"
    # An empty machine-id means "first boot" to systemd; give each VM its own, once.
    if [ ! -s /newroot/etc/machine-id ]; then
        tr -d '-' </proc/sys/kernel/random/uuid >/newroot/etc/machine-id
    fi
    init=/sbin/init
    ;;
*)
    fail "unknown lab.mode $mode"
    ;;
esac

mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot "$init"
